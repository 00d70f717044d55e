//! One token refresh per session: requests that find the same access token expired share one
//! exchange at the provider, in one process and across every process on the session store.
//!
//! Why: with refresh-token rotation (Keycloak, Auth0, Okta, oidc-provider's
//! `rotateRefreshToken`) a refresh token works once; a second exchange of it is taken for theft
//! and the provider revokes the whole grant, which logs the user out. A page that fires several
//! requests after the access token expired would otherwise do exactly that, and so would two
//! instances of the app behind a load balancer that each get one of those requests.
//!
//! # In one process
//!
//! Refreshes are keyed by broker, session (its ID hash) and the SHA-256 of the refresh token
//! being exchanged (that token is what may be used only once). The first request spawns the
//! refresh as a task; every request presenting the same refresh token awaits that task's
//! result, also requests that arrive up to [`REUSE_WINDOW`] after it started (their sessions
//! were loaded before the new tokens were saved, so they still hold the old refresh token), as
//! long as the result is newer than their access token and still fresh.
//!
//! # Across processes
//!
//! When the session backend offers [leases](flamingo_session::backend::Leases) (memory, file
//! and Redis do, also Redis Cluster), the task first takes the lease named for the broker and
//! the session's ID hash, for `core.auth.web.refreshLease` (default
//! [`DEFAULT_LEASE_TIME`], see [`config`](crate::config)):
//!
//! - **The holder** reads the session from the store again (when it already holds other,
//!   still fresh tokens, those are the result and nothing is exchanged), exchanges the refresh
//!   token while a background task renews the lease every third of its time, writes the new
//!   tokens straight to the store (only that key, merged; see below), and then releases the
//!   lease. The write comes first, so whoever sees the lease free can read the new tokens.
//! - **A waiter** (the lease is held by another process, or by a task of this process that
//!   refreshes with an older refresh token) polls the stored session, by its ID through the
//!   backend, until it holds other tokens (the result; the provider is not called) or the login
//!   is gone from it (logged out meanwhile: the login is over), and tries to take the lease
//!   whenever it may have been freed (a holder that crashed frees it when its time runs out).
//!   It gives up after [`MAX_WAIT`] with a provider failure (502); the session keeps its tokens.
//!
//! On a custom backend without leases the refresh is shared within each process only.
//!
//! # Whatever the process
//!
//! When the provider answers `invalid_grant`, the session is read again before the login is
//! given up: another request or instance may have stored new tokens meanwhile.
//!
//! The new tokens are written to the store by the refresh itself, not only with the request's
//! session at the end of the request, so they survive a cancelled request and other processes
//! read them at once. That write never brings back a login that ended meanwhile: it is a merge
//! of the login's key into the session under its ID, made only when the stored session still
//! holds the login, and a session that was logged out has a new ID (or was purged), so the
//! backend answers [`SaveOutcome::Gone`](flamingo_session::backend::SaveOutcome::Gone) for the
//! old one and writes nothing. Each request then puts the result into its own session (the same
//! value); the middleware's save of a logged-out session is refused the same way.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use flamingo_session::{
    backend::{Leases, SessionBackend, SessionId},
    SessionRepository,
};
use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use sha2::{Digest as _, Sha256};

use crate::{
    broker::oidc::{self, OidcBroker, RefreshError, RefreshOutcome as Outcome},
    log::Escaped,
    logout_records::record_sid,
    session_data::{oidc_session_key, OidcSessionData},
};

/// How long after a refresh started its result is handed to requests that present the refresh
/// token it exchanged.
pub const REUSE_WINDOW: Duration = Duration::from_secs(60);

/// The time of a refresh lease (`core.auth.web.refreshLease`) unless configured: how long the
/// other processes wait for a holder that died before one of them refreshes instead. The
/// holder renews it every third of that time while its exchange runs, so a slow provider does
/// not lose it.
///
/// # Examples
///
/// ```
/// assert_eq!(flamingo_auth::refresh::DEFAULT_LEASE_TIME, std::time::Duration::from_secs(5));
/// ```
pub const DEFAULT_LEASE_TIME: Duration = crate::config::DEFAULT_REFRESH_LEASE;

/// The longest a request waits for another process's refresh of its session before it fails
/// with a provider error (502), keeping the session's tokens.
///
/// # Examples
///
/// ```
/// assert!(flamingo_auth::refresh::MAX_WAIT > flamingo_auth::refresh::DEFAULT_LEASE_TIME);
/// ```
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The first wait between two reads of the stored session while another process refreshes; it
/// doubles up to [`POLL_MAX`].
const POLL_START: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(200);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    broker: String,
    /// The session's ID hash: a result is never handed to another session.
    session: Option<String>,
    refresh_token: [u8; 32],
}

struct Slot {
    outcome: Shared<BoxFuture<'static, Outcome>>,
    started: Instant,
}

/// The token refreshes of the app's sessions: one exchange per session's tokens at a time in
/// this process (a shared future), and across the processes of a store with leases.
pub(crate) struct Refresher {
    /// The refreshes in flight (and just finished) in this process.
    slots: Mutex<HashMap<Key, Slot>>,
    store: Store,
}

/// Where a refresh reads and writes the session outside its request, and how it shares the
/// refresh with other processes.
#[derive(Clone)]
pub(crate) struct Store {
    pub(crate) repository: SessionRepository,
    pub(crate) backend: Arc<dyn SessionBackend>,
    /// `core.auth.web.refreshLease`.
    pub(crate) lease_time: Duration,
    /// How long a login's records live (the back-channel `sid` record a refresh renews).
    pub(crate) login_lifetime: Duration,
}

/// What a refresh task needs; all owned, so the task outlives the request that started it.
struct Job {
    broker: Arc<OidcBroker>,
    data: OidcSessionData,
    session: Option<SessionId>,
    store: Store,
}

impl Job {
    fn session_hash(&self) -> String {
        self.session
            .as_ref()
            .map_or_else(|| "new".to_owned(), SessionId::hash)
    }
}

impl Refresher {
    pub(crate) fn new(store: Store) -> Self {
        Refresher {
            slots: Mutex::default(),
            store,
        }
    }
}

#[async_trait::async_trait(?Send)]
impl oidc::Refresher for Refresher {
    /// Joins the refresh of the same refresh token in flight (or finished within
    /// [`REUSE_WINDOW`]), else starts one.
    async fn refresh(
        &self,
        broker: Arc<OidcBroker>,
        session: Option<SessionId>,
        data: OidcSessionData,
    ) -> Outcome {
        let key = Key {
            broker: broker.name().to_owned(),
            session: session.as_ref().map(SessionId::hash),
            refresh_token: Sha256::digest(data.refresh_token.as_deref().unwrap_or_default()).into(),
        };
        let job = Job {
            broker,
            data,
            session,
            store: self.store.clone(),
        };
        let outcome = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.retain(|_, slot| slot.started.elapsed() < REUSE_WINDOW);
            let joinable = slots.get(&key).filter(|slot| match slot.outcome.peek() {
                // In flight: the refresh token is being exchanged; never exchange it twice.
                None => true,
                // Finished: only new tokens that this request does not have yet and that are
                // still fresh (without rotation the same refresh token is used again later).
                Some(Outcome::Refreshed(new)) => {
                    new.access_token != job.data.access_token && !oidc::needs_refresh(new)
                }
                Some(_) => false,
            });
            match joinable {
                Some(slot) => {
                    tracing::debug!(broker = %key.broker, "joining the token refresh of this session");
                    slot.outcome.clone()
                }
                None => {
                    let task = tokio::spawn(run(job));
                    let outcome = async move {
                        task.await.unwrap_or_else(|err| {
                            Outcome::Failed(format!("the refresh task ended: {err}"))
                        })
                    }
                    .boxed()
                    .shared();
                    slots.insert(
                        key,
                        Slot {
                            outcome: outcome.clone(),
                            started: Instant::now(),
                        },
                    );
                    outcome
                }
            }
        };
        outcome.await
    }
}

/// The refresh task: the lease (when the backend has leases and the session is stored), then
/// re-read, exchange, re-read on `invalid_grant`, write through, release.
async fn run(job: Job) -> Outcome {
    let (Some(session), Some(leases)) = (&job.session, job.store.backend.leases()) else {
        return exchange_or_reuse(&job).await;
    };
    let name = lease_name(job.broker.name(), session);
    let holder = openidconnect::CsrfToken::new_random().secret().clone();
    if let Turn::Done(outcome) = take_turn(&job, leases, &name, &holder).await {
        return outcome;
    }
    let renewal = Renewal::start(&job, name.clone(), holder.clone());
    let outcome = exchange_or_reuse(&job).await;
    // The new tokens are stored (or the refresh failed): whoever sees the lease free next can
    // read them.
    drop(renewal);
    if let Err(err) = leases.release(&name, &holder).await {
        tracing::warn!(broker = %job.broker.name(), session = %job.session_hash(), error = %Escaped(&err),
            "releasing the refresh lease failed; it frees itself when its time runs out");
    }
    outcome
}

/// The lease of the refresh of `session`'s tokens at `broker`: the ID hash, never the ID.
fn lease_name(broker: &str, session: &SessionId) -> String {
    format!(
        "flamingo.auth.refresh\u{1f}{broker}\u{1f}{}",
        session.hash()
    )
}

/// Whether this task holds the lease now, or another process's refresh settled the matter.
enum Turn {
    Ours,
    Done(Outcome),
}

/// Takes the lease, or waits for the holder's tokens: polls the stored session until it holds
/// other tokens or no login, trying the lease again each time (it is free once the holder
/// released it or died).
async fn take_turn(job: &Job, leases: &dyn Leases, name: &str, holder: &str) -> Turn {
    let started = Instant::now();
    let mut pause = POLL_START;
    let mut waited = false;
    loop {
        match leases.acquire(name, holder, job.store.lease_time).await {
            Ok(true) => {
                if waited {
                    tracing::debug!(broker = %job.broker.name(), session = %job.session_hash(),
                        "the other refresh ended without storing new tokens; refreshing here");
                }
                return Turn::Ours;
            }
            Ok(false) => {}
            Err(err) => {
                return Turn::Done(Outcome::Failed(format!(
                    "taking the refresh lease failed: {}",
                    Escaped(&err)
                )))
            }
        }
        if !waited {
            tracing::debug!(broker = %job.broker.name(), session = %job.session_hash(),
                "another request or instance refreshes this session; waiting for its tokens");
            waited = true;
        }
        if started.elapsed() >= MAX_WAIT {
            return Turn::Done(Outcome::Failed(format!(
                "the refresh of this session by another instance did not end within {MAX_WAIT:?}"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
        match stored(job).await {
            Stored::Newer(data) => {
                tracing::debug!(broker = %job.broker.name(), session = %job.session_hash(),
                    "taking the tokens another instance stored");
                return Turn::Done(Outcome::Refreshed(data));
            }
            Stored::Ended => return Turn::Done(ended()),
            Stored::Unchanged => {}
        }
    }
}

/// Renews a held lease every third of its time until dropped.
struct Renewal(tokio::task::JoinHandle<()>);

impl Renewal {
    fn start(job: &Job, name: String, holder: String) -> Renewal {
        let backend = job.store.backend.clone();
        let time = job.store.lease_time;
        let broker = job.broker.name().to_owned();
        let session = job.session_hash();
        Renewal(tokio::spawn(async move {
            let every = (time / 3).max(Duration::from_millis(10));
            loop {
                tokio::time::sleep(every).await;
                let Some(leases) = backend.leases() else {
                    return;
                };
                match leases.renew(&name, &holder, time).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(broker = %broker, session = %session,
                            "the refresh lease ran out while the exchange ran; another instance may refresh too");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(broker = %broker, session = %session, error = %Escaped(&err),
                            "renewing the refresh lease failed; trying again");
                    }
                }
            }
        }))
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn ended() -> Outcome {
    Outcome::Refused("the login ended in another request meanwhile".to_owned())
}

async fn exchange_or_reuse(job: &Job) -> Outcome {
    match stored(job).await {
        Stored::Newer(data) => {
            tracing::debug!(broker = %job.broker.name(), "another request already refreshed the tokens");
            return Outcome::Refreshed(data);
        }
        // Logged out (or refused) elsewhere: asking the provider would only bring it back.
        Stored::Ended => return ended(),
        Stored::Unchanged => {}
    }
    let new_data = match job.broker.exchange_refresh_token(&job.data).await {
        Ok(new_data) => new_data,
        Err(RefreshError::Refused {
            invalid_grant,
            reason,
        }) => {
            if invalid_grant {
                if let Stored::Newer(data) = stored(job).await {
                    tracing::info!(broker = %job.broker.name(), "refresh token already used; taking the tokens another request stored");
                    return Outcome::Refreshed(data);
                }
            }
            return Outcome::Refused(reason);
        }
        Err(RefreshError::Failed(err)) => return Outcome::Failed(Escaped(&err).to_string()),
    };
    write_through(job, &new_data).await;
    renew_sid_record(job, &new_data).await;
    Outcome::Refreshed(Box::new(new_data))
}

/// Keeps the provider session's `sid` record of back-channel logout alive while the login is in
/// use (see [`record_sid`]).
async fn renew_sid_record(job: &Job, data: &OidcSessionData) {
    // The raw ID token's claims (`id_token_claims` holds the mapped ones).
    let claims = oidc::jwt_payload(&data.raw_id_token).unwrap_or_default();
    if let Some(sid) = claims.get("sid").and_then(|sid| sid.as_str()) {
        let leases = job.store.backend.leases();
        record_sid(
            leases,
            job.broker.name(),
            sid,
            &data.subject,
            job.store.login_lifetime,
        )
        .await;
    }
}

/// What the store holds for the login being refreshed.
enum Stored {
    /// Another, still fresh login than the one being refreshed: another request's refresh.
    Newer(Box<OidcSessionData>),
    /// No session, or no login in it: logged out (or refused) meanwhile.
    Ended,
    /// The same login, or nothing known (a session not stored yet, a failed read).
    Unchanged,
}

/// Reads the login of the session from the store again.
async fn stored(job: &Job) -> Stored {
    let Some(id) = &job.session else {
        return Stored::Unchanged;
    };
    let key = oidc_session_key(job.broker.name());
    let stored = match job.store.repository.load(id).await {
        Ok(Some(session)) => match session.load::<OidcSessionData>(&key) {
            Ok(Some(stored)) => stored,
            Ok(None) => return Stored::Ended,
            Err(_) => return Stored::Unchanged,
        },
        Ok(None) => return Stored::Ended,
        Err(err) => {
            tracing::warn!(broker = %job.broker.name(), session = %job.session_hash(), error = %Escaped(&err), "re-reading the session failed");
            return Stored::Unchanged;
        }
    };
    let other = stored.refresh_token != job.data.refresh_token
        || stored.access_token != job.data.access_token;
    if other && !oidc::needs_refresh(&stored) {
        Stored::Newer(Box::new(stored))
    } else {
        Stored::Unchanged
    }
}

/// Stores the new tokens in the session's stored state (only that key, merged), unless the
/// login ended meanwhile.
async fn write_through(job: &Job, new_data: &OidcSessionData) {
    let Some(id) = &job.session else {
        return;
    };
    let key = oidc_session_key(job.broker.name());
    let repository = &job.store.repository;
    let ended = || {
        tracing::debug!(broker = %job.broker.name(), session = %job.session_hash(), "the session ended during the refresh; the new tokens are not stored");
    };
    let saved = async {
        let Some(mut session) = repository.load(id).await? else {
            ended();
            return Ok(());
        };
        if !matches!(session.load::<OidcSessionData>(&key), Ok(Some(_))) {
            tracing::debug!(broker = %job.broker.name(), session = %job.session_hash(), "logged out during the refresh; the new tokens are not stored");
            return Ok(());
        }
        session
            .store(&key, new_data.clone())
            .map_err(flamingo_session::backend::BackendError::other)?;
        // A session deleted since the load (a logout renews the ID) is not written.
        match repository.save(&mut session).await {
            Err(flamingo_session::backend::BackendError::Ended) => {
                ended();
                Ok(())
            }
            saved => saved.map(drop),
        }
    };
    if let Err(err) = saved.await {
        tracing::warn!(broker = %job.broker.name(), session = %job.session_hash(), error = %Escaped(&err), "writing the refreshed tokens to the store failed; the request's session carries them");
    }
}

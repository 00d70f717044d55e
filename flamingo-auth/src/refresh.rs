//! One token refresh per session: requests that find the same access token expired share one
//! exchange at the provider, and a cross-process lock can be plugged in ([`RefreshLock`]).
//!
//! Why: with refresh-token rotation (Keycloak, Auth0, Okta, oidc-provider's
//! `rotateRefreshToken`) a refresh token works once; a second exchange of it is taken for theft
//! and the provider revokes the whole grant, which logs the user out. A page that fires several
//! requests after the access token expired would otherwise do exactly that.
//!
//! How, in one process: refreshes are keyed by broker, session (its ID hash) and the SHA-256 of
//! the refresh token being exchanged (that token is what may be used only once). The
//! first request spawns the exchange as a task; every request presenting the same refresh token
//! awaits that task's result, also requests that arrive up to [`REUSE_WINDOW`] after it started
//! (their sessions were loaded before the new tokens were saved, so they still hold the old
//! refresh token), as long as the result is newer than their access token and still fresh.
//! The task:
//!
//! 1. takes the [`RefreshLock`], when one is configured (none by default);
//! 2. reads the session from the store again: when it already holds other tokens that are still
//!    fresh (another process refreshed), those are the result and nothing is exchanged;
//! 3. exchanges the refresh token;
//! 4. when the provider answers `invalid_grant`, reads the session again before giving up (another
//!    request or process may have stored new tokens meanwhile);
//! 5. writes the new tokens straight to the store (only that key, merged), so they survive a
//!    cancelled request and later requests load them, then releases the lock.
//!
//! Each request then puts the result into its own session (the same value).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use flamingo_session::{backend::SessionId, SessionRepository};
use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use sha2::{Digest as _, Sha256};

use crate::{
    broker::OidcBroker,
    error::BoxError,
    log::Escaped,
    session_data::{oidc_session_key, OidcSessionData},
};

/// How long after a refresh started its result is handed to requests that present the refresh
/// token it exchanged.
pub const REUSE_WINDOW: Duration = Duration::from_secs(60);

/// A lock that lets one process at a time refresh the tokens of a session (for apps whose
/// instances share a Redis or file session store). Register one with
/// [`AuthBuilder::refresh_lock`](crate::AuthBuilder::refresh_lock); without one, refreshes are
/// shared within a process only.
///
/// [`acquire`](Self::acquire) waits until the caller holds the lock for (`session`, `broker`)
/// and returns its lease; auth releases it after the new tokens were written to the store. A
/// lock should have a lease time (so a crashed holder does not block the session forever) that
/// it renews while the lease is held, since a token exchange may take up to the provider's
/// request timeout. After acquiring, auth reads the session again and uses the tokens the
/// previous holder stored, so a waiter never exchanges a refresh token that was already used.
///
/// # Errors
///
/// An error from `acquire` fails the refresh as a provider failure (502), and the session keeps
/// its tokens.
///
/// # Examples
///
/// A lock that serialises refreshes in this process only (what a Redis lock would do across
/// processes):
///
/// ```
/// use std::sync::Arc;
/// use futures_util::future::BoxFuture;
/// use flamingo_auth::{BoxError, RefreshLease, RefreshLock};
/// use flamingo_session::backend::SessionId;
///
/// #[derive(Default)]
/// struct LocalLock(Arc<tokio::sync::Mutex<()>>);
///
/// struct LocalLease(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>);
///
/// impl RefreshLease for LocalLease {
///     fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
///         Box::pin(async move { drop(self) })
///     }
/// }
///
/// impl RefreshLock for LocalLock {
///     fn acquire(
///         &self,
///         _session: &SessionId,
///         _broker: &str,
///     ) -> BoxFuture<'static, Result<Box<dyn RefreshLease>, BoxError>> {
///         let mutex = self.0.clone();
///         Box::pin(async move {
///             let lease: Box<dyn RefreshLease> = Box::new(LocalLease(mutex.lock_owned().await));
///             Ok(lease)
///         })
///     }
/// }
/// ```
pub trait RefreshLock: Send + Sync + 'static {
    /// Waits for the lock of `session`'s refresh at `broker` and returns the lease.
    fn acquire(
        &self,
        session: &SessionId,
        broker: &str,
    ) -> BoxFuture<'static, Result<Box<dyn RefreshLease>, BoxError>>;
}

/// A held [`RefreshLock`].
pub trait RefreshLease: Send {
    /// Gives the lock up (after the new tokens were stored).
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// What a shared refresh ended with; every request of the session gets a clone.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// New (or another request's fresher) tokens.
    Refreshed(Box<OidcSessionData>),
    /// The provider refused the refresh token, or the refreshed ID token was rejected: the login
    /// is over.
    Refused(String),
    /// The provider could not be asked (network, lock): the login stays, the request fails.
    Failed(String),
}

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

/// The refreshes in flight (and just finished) in this process.
#[derive(Default)]
pub(crate) struct Refreshes {
    slots: Mutex<HashMap<Key, Slot>>,
}

/// What a refresh task needs; all owned, so the task outlives the request that started it.
pub(crate) struct Job {
    pub(crate) broker: Arc<OidcBroker>,
    pub(crate) data: OidcSessionData,
    pub(crate) session: Option<SessionId>,
    pub(crate) repository: SessionRepository,
    pub(crate) lock: Option<Arc<dyn RefreshLock>>,
}

impl Refreshes {
    /// The outcome of refreshing `job.data`: joins the refresh of the same refresh token in
    /// flight (or finished within [`REUSE_WINDOW`]), else starts one.
    pub(crate) async fn refresh(&self, job: Job, refresh_token: &str) -> Outcome {
        let key = Key {
            broker: job.broker.name().to_owned(),
            session: job.session.as_ref().map(SessionId::hash),
            refresh_token: Sha256::digest(refresh_token.as_bytes()).into(),
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
                    new.access_token != job.data.access_token
                        && !crate::broker::oidc::needs_refresh(new)
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

/// The refresh task: lock, re-read, exchange, re-read on `invalid_grant`, write through, unlock.
async fn run(job: Job) -> Outcome {
    let lease = match (&job.lock, &job.session) {
        (Some(lock), Some(session)) => match lock.acquire(session, job.broker.name()).await {
            Ok(lease) => Some(lease),
            Err(err) => {
                return Outcome::Failed(format!("the refresh lock failed: {}", Escaped(&err)))
            }
        },
        _ => None,
    };
    let outcome = exchange_or_reuse(&job).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    outcome
}

async fn exchange_or_reuse(job: &Job) -> Outcome {
    if let Some(stored) = newer_stored(job).await {
        tracing::debug!(broker = %job.broker.name(), "another request already refreshed the tokens");
        return Outcome::Refreshed(Box::new(stored));
    }
    let outcome = match job.broker.exchange_refresh_token(&job.data).await {
        Ok(new_data) => Outcome::Refreshed(Box::new(new_data)),
        Err(crate::broker::oidc::RefreshError::Refused {
            invalid_grant,
            reason,
        }) => {
            if invalid_grant {
                if let Some(stored) = newer_stored(job).await {
                    tracing::info!(broker = %job.broker.name(), "refresh token already used; taking the tokens another request stored");
                    return Outcome::Refreshed(Box::new(stored));
                }
            }
            return Outcome::Refused(reason);
        }
        Err(crate::broker::oidc::RefreshError::Failed(err)) => {
            return Outcome::Failed(Escaped(&err).to_string())
        }
    };
    if let Outcome::Refreshed(new_data) = &outcome {
        write_through(job, new_data).await;
    }
    outcome
}

/// The login data stored for the session now, when it is another, still fresh login than the
/// one being refreshed.
async fn newer_stored(job: &Job) -> Option<OidcSessionData> {
    let id = job.session.as_ref()?;
    let key = oidc_session_key(job.broker.name());
    let stored = match job.repository.load(id).await {
        Ok(Some(session)) => session.load::<OidcSessionData>(&key).ok().flatten()?,
        Ok(None) => return None,
        Err(err) => {
            tracing::warn!(broker = %job.broker.name(), error = %Escaped(&err), "re-reading the session failed");
            return None;
        }
    };
    let other = stored.refresh_token != job.data.refresh_token
        || stored.access_token != job.data.access_token;
    (other && !crate::broker::oidc::needs_refresh(&stored)).then_some(stored)
}

/// Stores the new tokens in the session's stored state (only that key).
async fn write_through(job: &Job, new_data: &OidcSessionData) {
    let Some(id) = &job.session else {
        return;
    };
    let key = oidc_session_key(job.broker.name());
    let saved = async {
        let Some(mut session) = job.repository.load(id).await? else {
            return Ok(());
        };
        if !matches!(session.load::<OidcSessionData>(&key), Ok(Some(_))) {
            // Logged out meanwhile: do not bring the login back.
            return Ok(());
        }
        session
            .store(&key, new_data.clone())
            .map_err(flamingo_session::backend::BackendError::other)?;
        job.repository.save(&mut session).await.map(drop)
    };
    if let Err(err) = saved.await {
        tracing::warn!(broker = %job.broker.name(), error = %Escaped(&err), "writing the refreshed tokens to the store failed; the request's session carries them");
    }
}

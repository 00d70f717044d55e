//! One request's session: loaded on first extraction, written back after the handler.

use std::{cell::RefCell, collections::HashSet, rc::Rc, sync::Arc, time::Duration};

use actix_web::{cookie::Cookie, http::StatusCode, HttpMessage as _, HttpRequest, ResponseError};

use super::{
    cookie::{CookieCodec, Ticket},
    data::Data,
};
pub(crate) use crate::backend::unix_now;
use crate::{
    backend::{BackendError, SaveOutcome, SessionBackend, SessionChange, SessionId, SessionOwner},
    config::SaveMode,
};

/// What the middleware knows of the app's sessions; one per worker, put into each request's
/// extensions (an `Rc` clone: no allocation).
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn SessionBackend>,
    pub(crate) codec: CookieCodec,
    pub(crate) mode: SaveMode,
    pub(crate) max_age: Duration,
    /// `max.lifetime`, `None` when off.
    pub(crate) max_lifetime: Option<Duration>,
    /// How old a cookie may get before a request that uses the session slides the expiry.
    pub(crate) touch_interval: Duration,
}

/// The request's session: put into its extensions on the first extraction, loaded once, and
/// shared by every extractor of the request (one allocation for all of it).
pub(crate) struct Slot {
    /// Set once the state was loaded; a failed load leaves it unset, so the next extractor tries
    /// again.
    loaded: tokio::sync::OnceCell<()>,
    state: RefCell<State>,
}

impl Slot {
    /// The loaded state; `None` while no extractor loaded it.
    pub(crate) fn loaded(&self) -> Option<&RefCell<State>> {
        self.loaded.initialized().then_some(&self.state)
    }
}

impl std::ops::Deref for Slot {
    type Target = RefCell<State>;

    fn deref(&self) -> &RefCell<State> {
        &self.state
    }
}

/// The session data of one request and what the request did to it.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) mode: SaveMode,
    /// The stored session this request arrived with; `None` for a new one.
    pub(crate) ticket: Option<Ticket>,
    pub(crate) data: Data,
    /// Keys read in save mode `OnRead`: saved back as they are, which slides their expiry on
    /// backends that keep one per key.
    pub(crate) read: HashSet<String>,
    /// `clear_all` ran: the whole state replaces what is stored.
    pub(crate) cleared: bool,
    /// `renew` ran: the data moves to a new ID.
    pub(crate) renewed: bool,
    /// `purge` ran: the stored session is deleted; what is stored afterwards starts a new one.
    pub(crate) purged: bool,
    /// `renew_for` ran: the new session goes into this owner's index.
    pub(crate) owner: Option<SessionOwner>,
}

impl State {
    fn new(mode: SaveMode, ticket: Option<Ticket>, data: Data) -> State {
        State {
            mode,
            ticket,
            data,
            read: HashSet::new(),
            cleared: false,
            renewed: false,
            purged: false,
            owner: None,
        }
    }

    /// An empty state of the same mode, left behind when the middleware takes this one.
    pub(crate) fn emptied(&self) -> State {
        State::new(self.mode, None, Data::default())
    }

    /// The ID the handler sees: none for a new, renewed or purged session.
    pub(crate) fn id(&self) -> Option<&SessionId> {
        match &self.ticket {
            Some(ticket) if !self.renewed && !self.purged => Some(&ticket.id),
            _ => None,
        }
    }

    pub(crate) fn mark_read(&mut self, key: &str) {
        if !self.read.contains(key) {
            self.read.insert(key.to_owned());
        }
    }

    /// Whether the request changed what is stored (or, in `OnRead`, read something).
    fn changed(&self) -> bool {
        self.cleared || self.data.changed() || !self.read.is_empty()
    }
}

/// Why the session could not be loaded: the store is unreachable. Answered with 503.
#[derive(Debug, thiserror::Error)]
#[error("session store unavailable, try again shortly")]
pub struct SessionUnavailable;

impl ResponseError for SessionUnavailable {
    fn status_code(&self) -> StatusCode {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The session of `req` under our middleware: loaded on the first call, shared afterwards.
/// `None` when the middleware is not in front of this request.
pub(crate) async fn extract(req: &HttpRequest) -> Option<Result<Rc<Slot>, SessionUnavailable>> {
    let shared = req.app_data::<Rc<Shared>>()?;
    let slot = {
        let mut extensions = req.extensions_mut();
        match extensions.get::<Rc<Slot>>() {
            Some(slot) => slot.clone(),
            None => {
                let slot = Rc::new(Slot {
                    loaded: tokio::sync::OnceCell::new(),
                    state: RefCell::new(State::new(shared.mode, None, Data::default())),
                });
                extensions.insert(slot.clone());
                slot
            }
        }
    };
    let loaded = slot
        .loaded
        .get_or_try_init(|| async {
            let loaded = load(shared, req).await?;
            *slot.state.borrow_mut() = loaded;
            Ok(())
        })
        .await;
    Some(loaded.map(|()| slot.clone()))
}

async fn load(shared: &Shared, req: &HttpRequest) -> Result<State, SessionUnavailable> {
    let fresh = || State::new(shared.mode, None, Data::default());
    let Some(ticket) = shared
        .codec
        .find(req.headers())
        .and_then(|value| shared.codec.open(value))
    else {
        return Ok(fresh());
    };
    if let Some(limit) = shared.max_lifetime {
        if unix_now().saturating_sub(ticket.created) >= limit.as_secs() {
            tracing::info!(session = %ticket.id, "session reached flamingo.session.max.lifetime");
            if let Err(err) = shared.backend.delete(&ticket.id).await {
                tracing::warn!(session = %ticket.id, error = %err, "could not delete a session past its lifetime");
            }
            return Ok(fresh());
        }
    }
    match shared.backend.load_shared(&ticket.id).await {
        Ok(Some(data)) => Ok(State::new(shared.mode, Some(ticket), Data::loaded(data))),
        Ok(None) => Ok(fresh()),
        Err(err @ BackendError::Corrupt(_)) => {
            tracing::warn!(
                backend = shared.backend.name(),
                session = %ticket.id,
                error = %err,
                "corrupt session data: starting a fresh session"
            );
            Ok(fresh())
        }
        Err(err) => {
            tracing::error!(
                backend = shared.backend.name(),
                session = %ticket.id,
                error = %err,
                "session load failed"
            );
            Err(SessionUnavailable)
        }
    }
}

/// Why the changes of a request could not be written.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// The store failed (logged where it happened); answered with 503.
    Store,
    /// The session would exceed `store.length`; answered with 413.
    TooLarge {
        size: usize,
        limit: usize,
        key: Option<String>,
    },
}

impl CommitError {
    pub(crate) fn into_error(self) -> actix_web::Error {
        match self {
            CommitError::TooLarge { size, limit, key } => {
                let at = key
                    .map(|k| format!(" (at session key {k:?})"))
                    .unwrap_or_default();
                actix_web::error::InternalError::new(
                    format!(
                        "the session would grow to {size} bytes{at}, over \
                         flamingo.session.store.length ({limit} bytes); nothing was saved"
                    ),
                    StatusCode::PAYLOAD_TOO_LARGE,
                )
                .into()
            }
            CommitError::Store => actix_web::error::InternalError::new(
                "session store unavailable, try again shortly",
                StatusCode::SERVICE_UNAVAILABLE,
            )
            .into(),
        }
    }
}

/// What the response must do with the cookie.
pub(crate) enum CookieAction {
    Keep,
    Set(Cookie<'static>),
}

impl Shared {
    /// The store TTL (and cookie Max-Age) for a session created at `created`.
    fn ttl(&self, created: u64, now: u64) -> Duration {
        match self.max_lifetime {
            Some(limit) => {
                let left = limit.saturating_sub(Duration::from_secs(now.saturating_sub(created)));
                self.max_age.min(left).max(Duration::from_secs(1))
            }
            None => self.max_age,
        }
    }

    fn failed(&self, err: BackendError, largest: Option<String>) -> CommitError {
        match err {
            BackendError::TooLarge { size, limit } => CommitError::TooLarge {
                size,
                limit,
                key: largest,
            },
            err => {
                tracing::error!(backend = self.backend.name(), error = %err, "session save failed");
                CommitError::Store
            }
        }
    }

    /// Whether the request's session needs any store I/O or cookie after the handler: not for
    /// a session that was only read (within the touch interval) or a new one left empty.
    pub(crate) fn must_write(&self, state: &State) -> bool {
        if state.purged || state.renewed || state.changed() {
            return true;
        }
        match &state.ticket {
            None => !state.data.is_empty(),
            Some(old) => unix_now().saturating_sub(old.issued) >= self.touch_interval.as_secs(),
        }
    }

    /// Writes what the request changed and says what to do with the cookie.
    pub(crate) async fn commit(&self, mut state: State) -> Result<CookieAction, CommitError> {
        let now = unix_now();
        let changed = state.changed();
        let old = state.ticket.take();
        if state.purged {
            if let Some(old) = &old {
                self.backend
                    .delete(&old.id)
                    .await
                    .map_err(|err| self.failed(err, None))?;
            }
            if state.data.is_empty() {
                return Ok(match old {
                    Some(_) => CookieAction::Set(self.codec.removal()),
                    None => CookieAction::Keep,
                });
            }
            return self.create(state, now, None).await;
        }
        match old {
            None if state.data.is_empty() => Ok(CookieAction::Keep),
            None => self.create(state, now, None).await,
            Some(old) if state.renewed => self.create(state, now, Some(&old.id)).await,
            Some(old) => {
                let due = now.saturating_sub(old.issued) >= self.touch_interval.as_secs();
                let ttl = self.ttl(old.created, now);
                let outcome = if changed {
                    let largest = largest_key(&state);
                    let change = take_change(&mut state);
                    self.backend
                        .save(&old.id, change, ttl)
                        .await
                        .map_err(|err| self.failed(err, largest))?
                } else if due {
                    self.backend
                        .touch(&old.id, ttl)
                        .await
                        .map_err(|err| self.failed(err, None))?
                } else {
                    return Ok(CookieAction::Keep);
                };
                match outcome {
                    SaveOutcome::Saved if due => Ok(CookieAction::Set(
                        self.codec.issue(&Ticket { issued: now, ..old }, ttl),
                    )),
                    SaveOutcome::Saved => Ok(CookieAction::Keep),
                    SaveOutcome::Gone => {
                        if changed {
                            tracing::warn!(
                                backend = self.backend.name(),
                                session = %old.id,
                                "the session ended while the request ran (logout, renew or expiry); its changes were dropped"
                            );
                        }
                        Ok(CookieAction::Keep)
                    }
                }
            }
        }
    }

    /// Stores the request's data as a new session (new, renewed, or written after a purge) and
    /// deletes `old` once the new one exists.
    async fn create(
        &self,
        mut state: State,
        now: u64,
        old: Option<&SessionId>,
    ) -> Result<CookieAction, CommitError> {
        let largest = largest_key(&state);
        let ttl = self.ttl(now, now);
        let data = state.data.take();
        let created = match (&state.owner, self.backend.index()) {
            (Some(owner), Some(index)) => index.create_owned(owner, data, ttl).await,
            _ => self.backend.create(data, ttl).await,
        };
        let id = created.map_err(|err| self.failed(err, largest))?;
        if let Some(old) = old {
            self.backend
                .delete(old)
                .await
                .map_err(|err| self.failed(err, None))?;
        }
        Ok(CookieAction::Set(self.codec.issue(
            &Ticket {
                id,
                created: now,
                issued: now,
            },
            self.ttl(now, now),
        )))
    }
}

/// What the request changed, taken out of its state: the whole data (`Always`, or after
/// `clear_all`) or the changed keys.
fn take_change(state: &mut State) -> SessionChange {
    if state.cleared || state.mode == SaveMode::Always {
        return SessionChange::Replace(state.data.take());
    }
    state.data.take_merge(state.read.drain())
}

/// The key with the largest value, for what a 413 names: among the keys the request wrote or
/// read, else among all it sees.
fn largest_key(state: &State) -> Option<String> {
    let size = |(key, value): &(&str, &str)| key.len() + value.len();
    let read = state
        .read
        .iter()
        .filter_map(|key| Some((key.as_str(), state.data.get(key)?)));
    state
        .data
        .written()
        .chain(read)
        .max_by_key(size)
        .or_else(|| state.data.iter().max_by_key(size))
        .map(|(key, _)| key.to_owned())
}

//! The [`Session`] extractor: Flamingo's `web.Session` API over `actix_session::Session`.

use std::{collections::BTreeSet, future::Ready, rc::Rc};

use actix_session::SessionExt as _;
use actix_web::{dev::Payload, FromRequest, HttpMessage as _, HttpRequest, ResponseError};
use serde::{Deserialize, Serialize};

use crate::{
    backend::key_hash,
    config::SaveMode,
    value::{self, DecodeError, EnvelopeRef, SessionValue},
};

/// Prefix of the keys flamingo-session keeps for itself inside the session state.
pub(crate) const RESERVED_PREFIX: &str = "__flamingo.";
/// Holds the session ID while a request runs (put there by [`BackendStore`](crate::BackendStore)
/// on load, removed before anything is written).
pub(crate) const ID_KEY: &str = "__flamingo.id";
/// Holds the keys a request changed, in the save modes that merge (removed before writing).
pub(crate) const DIRTY_KEY: &str = "__flamingo.dirty";
/// When the session was last written (unix seconds); kept in the store so that read-only
/// requests can slide the expiry without writing on every request.
pub(crate) const TOUCHED_KEY: &str = "__flamingo.touched";
/// Flamingo's default flash key.
pub const DEFAULT_FLASH_KEY: &str = "_flash";
/// The type name flash lists are stored under.
const FLASHES_TYPE: &str = "flamingo.Flashes";

/// What the middleware tells the extractor about this request's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionSettings {
    pub(crate) save_mode: SaveMode,
}

/// The keys a request changed, for the merging save modes.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct DirtyKeys {
    /// Set by `clear_all`: the whole state replaces what is stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) all: bool,
    /// Keys written, deleted (or, in `OnRead`, read) by the request.
    #[serde(default)]
    pub(crate) keys: BTreeSet<String>,
}

/// Why a session operation failed. Messages name the session key (the name under which a value
/// is stored) and the types involved; never the session ID or a stored value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The stored value has another type than the one requested.
    #[error("session key {key:?} holds a {stored}, not a {requested}")]
    TypeMismatch {
        /// The session key.
        key: String,
        /// The type name stored with the value.
        stored: String,
        /// The type name that was requested.
        requested: String,
    },
    /// The stored value names the requested type but does not decode as it (the type changed
    /// shape since the value was stored).
    #[error("session key {key:?} does not decode as {type_name}: {source}")]
    Decode {
        /// The session key.
        key: String,
        /// The requested type name.
        type_name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The stored value was not written by flamingo-session (no type envelope).
    #[error("session key {key:?} does not hold a flamingo session value: {source}")]
    NotAValue {
        /// The session key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The value could not be encoded.
    #[error("value of type {type_name} for session key {key:?} cannot be encoded: {source}")]
    Encode {
        /// The session key.
        key: String,
        /// The value's type name.
        type_name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Keys starting with `__flamingo.` belong to flamingo-session.
    #[error("session key {key:?} is reserved: keys starting with \"__flamingo.\" belong to flamingo-session")]
    ReservedKey {
        /// The session key.
        key: String,
    },
}

impl ResponseError for SessionError {}

impl SessionError {
    pub(crate) fn from_decode(key: &str, requested: &str, err: DecodeError) -> Self {
        match err {
            DecodeError::Mismatch { stored } => SessionError::TypeMismatch {
                key: key.to_owned(),
                stored,
                requested: requested.to_owned(),
            },
            DecodeError::Value(source) => SessionError::Decode {
                key: key.to_owned(),
                type_name: requested.to_owned(),
                source,
            },
            DecodeError::NotEnvelope(source) => SessionError::NotAValue {
                key: key.to_owned(),
                source,
            },
        }
    }
}

/// Decodes a stored text as `T` with errors naming `key`.
pub(crate) fn decode_stored<T: SessionValue>(key: &str, text: &str) -> Result<T, SessionError> {
    value::decode::<T>(text)
        .map_err(|err| SessionError::from_decode(key, &T::session_type_name(), err))
}

pub(crate) fn check_key(key: &str) -> Result<(), SessionError> {
    if key.starts_with(RESERVED_PREFIX) {
        return Err(SessionError::ReservedKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// The session of the current request, with Flamingo's `web.Session` operations.
///
/// Extract it in a handler. Values are typed: anything implementing [`SessionValue`] (your
/// `#[derive(SessionValue)]` types and the common std types) can be stored, and loading a value as
/// another type is [`SessionError::TypeMismatch`].
///
/// Changes are written by the middleware after the handler ran; how depends on
/// `flamingo.session.saveMode` ([`SaveMode`]).
///
/// # Examples
///
/// ```
/// use actix_web::{get, HttpResponse};
/// use flamingo_session::{Session, SessionError};
///
/// #[get("/counter")]
/// async fn counter(session: Session) -> Result<HttpResponse, SessionError> {
///     let count = session.load::<u64>("count")?.unwrap_or(0) + 1;
///     session.store("count", count)?;
///     Ok(HttpResponse::Ok().json(serde_json::json!({ "count": count })))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: actix_session::Session,
    mode: SaveMode,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id_hash", &self.id_hash())
            .field("save_mode", &self.mode)
            .field("keys", &self.keys())
            .finish()
    }
}

impl FromRequest for Session {
    type Error = actix_web::Error;
    type Future = Ready<Result<Session, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Session::from_request_ref(req)))
    }
}

impl Session {
    /// The session of `req`, for code that has the request but is not an extractor (guards,
    /// middleware).
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::HttpRequest;
    /// use flamingo_session::Session;
    ///
    /// fn is_known_visitor(req: &HttpRequest) -> bool {
    ///     Session::from_request_ref(req).load::<bool>("visited").ok().flatten().unwrap_or(false)
    /// }
    /// ```
    pub fn from_request_ref(req: &HttpRequest) -> Session {
        let mode = req
            .extensions()
            .get::<Rc<SessionSettings>>()
            .map(|s| s.save_mode)
            .unwrap_or_default();
        Session::from_actix(req.get_session(), mode)
    }

    /// Wraps an `actix_session::Session` (for example one set up with another actix-session
    /// store), tracking changes for `mode`.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_session::SessionExt as _;
    /// use flamingo_session::{SaveMode, Session};
    ///
    /// let req = actix_web::test::TestRequest::default().to_http_request();
    /// let session = Session::from_actix(req.get_session(), SaveMode::Always);
    /// assert!(session.keys().is_empty());
    /// ```
    pub fn from_actix(inner: actix_session::Session, mode: SaveMode) -> Session {
        Session { inner, mode }
    }

    /// The underlying actix-session session.
    pub fn actix(&self) -> &actix_session::Session {
        &self.inner
    }

    /// The save mode this session tracks changes for.
    pub fn save_mode(&self) -> SaveMode {
        self.mode
    }

    /// Loads the value stored under `key` (Flamingo's `Load`). `Ok(None)` when nothing is stored.
    ///
    /// In save mode `OnRead` the key is marked changed, as in Flamingo.
    ///
    /// # Errors
    ///
    /// [`SessionError::TypeMismatch`] when the value was stored as another type,
    /// [`SessionError::Decode`] when it no longer fits its type, [`SessionError::NotAValue`] when
    /// the entry was not written by flamingo-session.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn greeting(session: &Session) -> Result<String, SessionError> {
    ///     let name = session.load::<String>("name")?.unwrap_or_else(|| "guest".into());
    ///     Ok(format!("hello, {name}"))
    /// }
    /// ```
    pub fn load<T: SessionValue>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let result = {
            let entries = self.inner.entries();
            match entries.get(key) {
                None => Ok(None),
                Some(text) => decode_stored::<T>(key, text).map(Some),
            }
        };
        if self.mode == SaveMode::OnRead && !key.starts_with(RESERVED_PREFIX) {
            self.mark_dirty(key);
        }
        result
    }

    /// Loads the value under `key`, or `None` when it is missing or unreadable (Flamingo's `Try`).
    /// An unreadable value is logged as a warning with the key and the error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn cart_size(session: &Session) -> usize {
    ///     session.try_load::<Vec<String>>("cart").map_or(0, |items| items.len())
    /// }
    /// ```
    pub fn try_load<T: SessionValue>(&self, key: &str) -> Option<T> {
        match self.load(key) {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(error = %err, "session value ignored");
                None
            }
        }
    }

    /// Stores `value` under `key` (Flamingo's `Store`), replacing what was there.
    ///
    /// # Errors
    ///
    /// [`SessionError::ReservedKey`] for keys starting with `__flamingo.`, and
    /// [`SessionError::Encode`] when the value cannot be serialised.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn remember_language(session: &Session, lang: &str) -> Result<(), SessionError> {
    ///     session.store("lang", lang.to_owned())
    /// }
    /// ```
    pub fn store<T: SessionValue>(&self, key: &str, value: T) -> Result<(), SessionError> {
        check_key(key)?;
        let name = T::session_type_name();
        self.inner
            .insert(
                key,
                EnvelopeRef {
                    t: &name,
                    v: &value,
                },
            )
            .map_err(|err| SessionError::Encode {
                key: key.to_owned(),
                type_name: name.to_string(),
                source: serde_json::Error::io(std::io::Error::other(err.to_string())),
            })?;
        self.mark_dirty(key);
        Ok(())
    }

    /// Removes `key` (Flamingo's `Delete`); removing a missing key is fine.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn forget_cart(session: &Session) {
    ///     session.delete("cart");
    /// }
    /// ```
    pub fn delete(&self, key: &str) {
        if key.starts_with(RESERVED_PREFIX) {
            return;
        }
        self.inner.remove(key);
        self.mark_dirty(key);
    }

    /// The keys stored in this session, sorted (Flamingo's `Keys`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn has_anything(session: &Session) -> bool {
    ///     !session.keys().is_empty()
    /// }
    /// ```
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .inner
            .entries()
            .keys()
            .filter(|k| !k.starts_with(RESERVED_PREFIX))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// The stored text of every key, for dynamic decoding through the
    /// [registry](crate::registry::Registry), e.g. on a debug page.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::{registry::Registry, Session};
    ///
    /// fn dump(session: &Session) -> Vec<(String, serde_json::Value)> {
    ///     session
    ///         .raw_entries()
    ///         .into_iter()
    ///         .map(|(key, text)| {
    ///             let json = Registry::global().decode(&text).map(|d| d.json).unwrap_or_default();
    ///             (key, json)
    ///         })
    ///         .collect()
    /// }
    /// ```
    pub fn raw_entries(&self) -> Vec<(String, String)> {
        let mut entries: Vec<(String, String)> = self
            .inner
            .entries()
            .iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        entries.sort();
        entries
    }

    /// Removes every key (Flamingo's `ClearAll`). The next save replaces the whole stored
    /// session, in every save mode.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn reset(session: &Session) {
    ///     session.clear_all();
    /// }
    /// ```
    pub fn clear_all(&self) {
        let id = self.inner.entries().get(ID_KEY).cloned();
        self.inner.clear();
        if let Some(id) = id {
            let _ = self.inner.insert(ID_KEY, id);
        }
        if self.mode != SaveMode::Always {
            self.write_dirty(&DirtyKeys {
                all: true,
                keys: BTreeSet::new(),
            });
        }
    }

    /// Appends a flash message under the default key `_flash` (Flamingo's `AddFlash`).
    ///
    /// # Errors
    ///
    /// As [`store`](Self::store), and as [`load`](Self::load) when `_flash` holds something that
    /// is not a flash list.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn saved(session: &Session) -> Result<(), SessionError> {
    ///     session.add_flash("Saved.".to_owned())
    /// }
    /// ```
    pub fn add_flash<T: SessionValue>(&self, value: T) -> Result<(), SessionError> {
        self.add_flash_to(DEFAULT_FLASH_KEY, value)
    }

    /// Appends a flash message under `key` (Flamingo's `AddFlash(value, key)`).
    ///
    /// # Errors
    ///
    /// As [`add_flash`](Self::add_flash).
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn warn(session: &Session) -> Result<(), SessionError> {
    ///     session.add_flash_to("warnings", "Disk almost full".to_owned())
    /// }
    /// ```
    pub fn add_flash_to<T: SessionValue>(&self, key: &str, value: T) -> Result<(), SessionError> {
        check_key(key)?;
        let mut list = self.flash_list(key)?;
        let name = T::session_type_name();
        let item = serde_json::to_value(EnvelopeRef {
            t: &name,
            v: &value,
        })
        .map_err(|source| SessionError::Encode {
            key: key.to_owned(),
            type_name: name.to_string(),
            source,
        })?;
        list.push(item);
        self.inner
            .insert(
                key,
                EnvelopeRef {
                    t: FLASHES_TYPE,
                    v: &list,
                },
            )
            .map_err(|err| SessionError::Encode {
                key: key.to_owned(),
                type_name: FLASHES_TYPE.to_owned(),
                source: serde_json::Error::io(std::io::Error::other(err.to_string())),
            })?;
        self.mark_dirty(key);
        Ok(())
    }

    /// Takes the flash messages under `_flash`: they are returned once and removed (Flamingo's
    /// `Flashes`).
    ///
    /// # Errors
    ///
    /// [`SessionError::TypeMismatch`] when a flash has another type; then nothing is removed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn messages(session: &Session) -> Result<Vec<String>, SessionError> {
    ///     session.flashes::<String>()
    /// }
    /// ```
    pub fn flashes<T: SessionValue>(&self) -> Result<Vec<T>, SessionError> {
        self.flashes_from(DEFAULT_FLASH_KEY)
    }

    /// Takes the flash messages under `key`.
    ///
    /// # Errors
    ///
    /// As [`flashes`](Self::flashes).
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn warnings(session: &Session) -> Result<Vec<String>, SessionError> {
    ///     session.flashes_from::<String>("warnings")
    /// }
    /// ```
    pub fn flashes_from<T: SessionValue>(&self, key: &str) -> Result<Vec<T>, SessionError> {
        let list = self.flash_list(key)?;
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(list.len());
        for item in &list {
            let text = item.to_string();
            out.push(decode_stored::<T>(key, &text)?);
        }
        self.delete(key);
        Ok(out)
    }

    fn flash_list(&self, key: &str) -> Result<Vec<serde_json::Value>, SessionError> {
        let entries = self.inner.entries();
        let Some(text) = entries.get(key) else {
            return Ok(Vec::new());
        };
        let env: value::EnvelopeIn<'_> =
            serde_json::from_str(text).map_err(|source| SessionError::NotAValue {
                key: key.to_owned(),
                source,
            })?;
        if env.t != FLASHES_TYPE {
            return Err(SessionError::TypeMismatch {
                key: key.to_owned(),
                stored: env.t.into_owned(),
                requested: FLASHES_TYPE.to_owned(),
            });
        }
        serde_json::from_str(env.v.get()).map_err(|source| SessionError::Decode {
            key: key.to_owned(),
            type_name: FLASHES_TYPE.to_owned(),
            source,
        })
    }

    /// The session ID this request arrived with, `None` for a new session (its ID is assigned
    /// when it is first saved) or after [`renew`](Self::renew). Treat it as a secret: log
    /// [`id_hash`](Self::id_hash) instead.
    ///
    /// Only sessions stored through flamingo-session's backends know their ID.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn is_new(session: &Session) -> bool {
    ///     session.id().is_none()
    /// }
    /// ```
    pub fn id(&self) -> Option<String> {
        self.inner.entries().get(ID_KEY).cloned()
    }

    /// Hex SHA-256 of the session ID (Flamingo's `IDHash`): stable for the session and safe for
    /// logs and traces.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn log_visit(session: &Session) {
    ///     tracing::info!(session = session.id_hash().as_deref().unwrap_or("new"), "visit");
    /// }
    /// ```
    pub fn id_hash(&self) -> Option<String> {
        self.inner.entries().get(ID_KEY).map(|id| key_hash(id))
    }

    /// Gives the session a new ID and keeps its data; the old ID stops working. Call it when the
    /// privilege level changes (login) against session fixation.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{Session, SessionError};
    /// fn login(session: &Session, user: &str) -> Result<(), SessionError> {
    ///     session.renew();
    ///     session.store("user", user.to_owned())
    /// }
    /// ```
    pub fn renew(&self) {
        self.inner.remove(ID_KEY);
        self.inner.renew();
    }

    /// Deletes the session from the store and removes the cookie (logout).
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn logout(session: &Session) {
    ///     session.purge();
    /// }
    /// ```
    pub fn purge(&self) {
        self.inner.purge();
    }

    fn mark_dirty(&self, key: &str) {
        if self.mode == SaveMode::Always {
            return;
        }
        let mut dirty = self.read_dirty();
        if dirty.all || dirty.keys.contains(key) {
            return;
        }
        dirty.keys.insert(key.to_owned());
        self.write_dirty(&dirty);
    }

    fn read_dirty(&self) -> DirtyKeys {
        self.inner
            .entries()
            .get(DIRTY_KEY)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    }

    fn write_dirty(&self, dirty: &DirtyKeys) {
        // A BTreeSet of strings always serialises.
        let _ = self.inner.insert(DIRTY_KEY, dirty);
    }
}

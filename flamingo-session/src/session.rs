//! The [`Session`] extractor: Flamingo's `web.Session` API over the request's session.

use std::rc::Rc;

use actix_session::SessionExt as _;
use actix_web::{dev::Payload, FromRequest, HttpRequest, ResponseError};
use futures_util::future::LocalBoxFuture;

use crate::{
    backend::{SessionId, SessionOwner},
    config::SaveMode,
    middleware::{state::Slot, SessionUnavailable},
    value::{self, DecodeError, EnvelopeRef, SessionValue},
};

/// Prefix of the session keys flamingo-session keeps for itself (a backend's bookkeeping, such
/// as the Redis backend's `__flamingo.size`): no value can be stored under such a key.
pub(crate) const RESERVED_PREFIX: &str = "__flamingo";
/// Flamingo's default flash key.
pub const DEFAULT_FLASH_KEY: &str = "_flash";
/// The type name flash lists are stored under.
const FLASHES_TYPE: &str = "flamingo.Flashes";

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
    /// Keys starting with `__flamingo` belong to flamingo-session.
    #[error("session key {key:?} is reserved: keys starting with \"__flamingo\" belong to flamingo-session")]
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
    value::decode_remembered::<T>(text)
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
    backing: Backing,
}

/// Where a session's data lives while a request runs.
#[derive(Clone)]
enum Backing {
    /// Under our [`SessionMiddleware`](crate::middleware::SessionMiddleware).
    Own(Rc<Slot>),
    /// Under actix-session's own `SessionMiddleware`: its state, replaced as a whole on save.
    Actix(actix_session::Session),
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("save_mode", &self.save_mode())
            .field("keys", &self.keys())
            .finish()
    }
}

impl FromRequest for Session {
    type Error = SessionUnavailable;
    type Future = LocalBoxFuture<'static, Result<Session, SessionUnavailable>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Session::extract(&req).await })
    }
}

impl Session {
    /// The session of `req`, loaded from the store on the first call in a request and shared by
    /// every later call (and every extractor built on it): for code that has the request but is
    /// not an extractor itself.
    ///
    /// Under actix-session's own `SessionMiddleware` (see [`middleware::compat`]) this is that
    /// middleware's session.
    ///
    /// # Errors
    ///
    /// [`SessionUnavailable`] (503) when the store cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::HttpRequest;
    /// use flamingo_session::Session;
    ///
    /// async fn is_known_visitor(req: &HttpRequest) -> bool {
    ///     match Session::extract(req).await {
    ///         Ok(session) => session.try_load::<bool>("visited").unwrap_or(false),
    ///         Err(_) => false,
    ///     }
    /// }
    /// ```
    ///
    /// [`middleware::compat`]: crate::middleware::compat
    pub async fn extract(req: &HttpRequest) -> Result<Session, SessionUnavailable> {
        match crate::middleware::state::extract(req).await {
            Some(state) => state.map(|state| Session {
                backing: Backing::Own(state),
            }),
            None => Ok(Session::from_actix(req.get_session())),
        }
    }

    /// Wraps an `actix_session::Session` (under actix-session's own middleware, with any of its
    /// stores). Every save then replaces the whole stored state, so no write is lost whichever
    /// API (ours or actix-session's) made it.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_session::SessionExt as _;
    /// use flamingo_session::Session;
    ///
    /// let req = actix_web::test::TestRequest::default().to_http_request();
    /// let session = Session::from_actix(req.get_session());
    /// assert!(session.keys().is_empty());
    /// ```
    pub fn from_actix(inner: actix_session::Session) -> Session {
        Session {
            backing: Backing::Actix(inner),
        }
    }

    /// The save mode this session tracks changes for: `flamingo.session.saveMode` under our
    /// middleware, [`SaveMode::Always`] under actix-session's.
    pub fn save_mode(&self) -> SaveMode {
        match &self.backing {
            Backing::Own(state) => state.borrow().mode,
            Backing::Actix(_) => SaveMode::Always,
        }
    }

    /// Runs `f` on the stored text of `key`.
    fn with_text<R>(&self, key: &str, f: impl FnOnce(Option<&str>) -> R) -> R {
        match &self.backing {
            Backing::Own(state) => {
                let mut state = state.borrow_mut();
                if state.mode == SaveMode::OnRead && !key.starts_with(RESERVED_PREFIX) {
                    state.mark_read(key);
                }
                f(state.data.get(key))
            }
            Backing::Actix(session) => f(session.entries().get(key).map(String::as_str)),
        }
    }

    fn put_text(&self, key: &str, text: String) {
        match &self.backing {
            Backing::Own(state) => {
                state.borrow_mut().data.set(key, text);
            }
            Backing::Actix(session) => {
                // A RawValue serialises as the JSON text it holds: actix-session stores it as is.
                if let Ok(raw) = serde_json::value::RawValue::from_string(text) {
                    let _ = session.insert(key, raw);
                }
            }
        }
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
        self.with_text(key, |text| {
            let Some(text) = text else {
                return Ok(None);
            };
            match decode_stored::<T>(key, text) {
                Ok(value) => Ok(Some(value)),
                // Not JSON at all: garbage written into the store by something else. The value
                // is treated as missing (the next store replaces it) instead of failing every
                // request of the session. Checked only on this error path, so values this
                // process wrote are never validated twice.
                Err(SessionError::NotAValue { .. })
                    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() =>
                {
                    tracing::warn!(
                        key = %key.escape_debug(),
                        "corrupt session value (not JSON) ignored"
                    );
                    Ok(None)
                }
                Err(err) => Err(err),
            }
        })
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
    /// [`SessionError::ReservedKey`] for keys starting with `__flamingo`, and
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
        let text = value::encode(&value).map_err(|source| SessionError::Encode {
            key: key.to_owned(),
            type_name: T::session_type_name().into_owned(),
            source,
        })?;
        self.put_text(key, text);
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
        match &self.backing {
            Backing::Own(state) => {
                state.borrow_mut().data.remove(key);
            }
            Backing::Actix(session) => {
                session.remove(key);
            }
        }
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
        let mut keys: Vec<String> = match &self.backing {
            Backing::Own(state) => state
                .borrow()
                .data
                .iter()
                .map(|(key, _)| key.to_owned())
                .collect(),
            Backing::Actix(session) => session
                .entries()
                .keys()
                .filter(|k| !k.starts_with(RESERVED_PREFIX))
                .cloned()
                .collect(),
        };
        keys.sort();
        keys
    }

    /// The stored text of every key, sorted by key, for dynamic decoding through the
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
        let mut entries: Vec<(String, String)> = match &self.backing {
            Backing::Own(state) => state
                .borrow()
                .data
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Backing::Actix(session) => session
                .entries()
                .iter()
                .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
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
        match &self.backing {
            Backing::Own(state) => {
                let mut state = state.borrow_mut();
                state.data.clear();
                state.cleared = true;
            }
            Backing::Actix(session) => session.clear(),
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
        let encode_error = |type_name: &str, source| SessionError::Encode {
            key: key.to_owned(),
            type_name: type_name.to_owned(),
            source,
        };
        let item = serde_json::to_value(EnvelopeRef {
            t: &name,
            v: &value,
        })
        .map_err(|source| encode_error(&name, source))?;
        list.push(item);
        let text = serde_json::to_string(&EnvelopeRef {
            t: FLASHES_TYPE,
            v: &list,
        })
        .map_err(|source| encode_error(FLASHES_TYPE, source))?;
        self.put_text(key, text);
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
        self.with_text(key, |text| {
            let Some(text) = text else {
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
        })
    }

    /// The ID of the stored session this request arrived with; `None` for a new session (its ID
    /// is assigned when it is first saved), after [`renew`](Self::renew) or
    /// [`purge`](Self::purge), and under actix-session's own middleware. A secret: its `Debug`
    /// and `Display` are redacted; log [`id_hash`](Self::id_hash).
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::Session;
    /// fn is_new(session: &Session) -> bool {
    ///     session.id().is_none()
    /// }
    /// ```
    pub fn id(&self) -> Option<SessionId> {
        match &self.backing {
            Backing::Own(state) => state.borrow().id().cloned(),
            Backing::Actix(_) => None,
        }
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
        self.id().map(|id| id.hash())
    }

    /// Gives the session a new ID and keeps its data; the old ID stops working. Call it when the
    /// privilege level changes (login) against session fixation. It also restarts
    /// `flamingo.session.max.lifetime`.
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
        match &self.backing {
            Backing::Own(state) => {
                let mut state = state.borrow_mut();
                state.renewed = true;
                state.owner = None;
            }
            Backing::Actix(session) => session.renew(),
        }
    }

    /// Renews the session (as [`renew`](Self::renew)) and stores it, under its new ID, in the
    /// index of `owner`: the backend can then list it and end it with the owner's other
    /// sessions ([`SessionDirectory`](crate::SessionDirectory)). flamingo-auth calls it at login
    /// with the user's broker and subject. A plain `renew` (a logout, say) takes the session out
    /// of the index again.
    ///
    /// On a backend without an index, and under actix-session's own middleware, this is a plain
    /// `renew`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use flamingo_session::{backend::SessionOwner, Session, SessionError};
    /// fn login(session: &Session, user: &str) -> Result<(), Box<dyn std::error::Error>> {
    ///     session.renew_for(SessionOwner::new(format!("local\u{1f}{user}"))?);
    ///     session.store("user", user.to_owned())?;
    ///     Ok(())
    /// }
    /// ```
    pub fn renew_for(&self, owner: SessionOwner) {
        match &self.backing {
            Backing::Own(state) => {
                let mut state = state.borrow_mut();
                state.renewed = true;
                state.owner = Some(owner);
            }
            Backing::Actix(session) => session.renew(),
        }
    }

    /// Deletes the session from the store and removes the cookie (logout). What is stored
    /// afterwards in the same request starts a new session.
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
        match &self.backing {
            Backing::Own(state) => {
                let mut state = state.borrow_mut();
                state.purged = true;
                state.renewed = false;
                state.owner = None;
                state.cleared = false;
                state.data.clear();
                state.read.clear();
            }
            Backing::Actix(session) => session.purge(),
        }
    }
}

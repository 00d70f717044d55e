//! [`SessionId`]: the one type for a session's ID, validated once and never printed.

use std::{fmt, str::FromStr, sync::Arc};

use base64::Engine as _;
use rand::RngCore as _;
use sha2::Digest as _;

/// Shortest ID accepted: 22 characters of base64url carry 132 bits.
const MIN_LEN: usize = 22;
/// Longest ID accepted (actix-session's own stores use 64 characters).
const MAX_LEN: usize = 128;

/// The ID of a stored session: 22 to 128 characters of `[A-Za-z0-9_-]`.
///
/// Every value of this type was validated when it was made, so a backend can use it as a file
/// name or a Redis key without checking it again, and it can never name a path outside a folder.
/// It is a secret (whoever holds it holds the session): its `Debug` and `Display` show only the
/// first characters of its [`hash`](Self::hash), so it cannot leak into a log or an error by
/// accident. [`expose`](Self::expose) gives the text, for a backend and the cookie only.
/// Cloning one counts a reference; it copies nothing.
///
/// # Examples
///
/// ```
/// use flamingo_session::SessionId;
///
/// let id = SessionId::generate();
/// assert_eq!(id.expose().len(), 43);
/// assert!(!format!("{id:?}").contains(id.expose()));
/// assert!("../../etc/passwd".parse::<SessionId>().is_err());
/// assert_eq!(id.expose().parse::<SessionId>().unwrap(), id);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

/// A string that is not a valid [`SessionId`]; says why without repeating it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session ID: {0}")]
pub struct InvalidSessionId(&'static str);

impl SessionId {
    /// The length of an ID made by [`generate_for`](Self::generate_for): the owner's tag and 42
    /// characters of randomness. IDs of [`generate`](Self::generate) have 43.
    pub const OWNED_ID_LEN: usize = 45;

    /// A fresh ID: 32 random bytes (256 bits) from the OS-seeded CSPRNG, base64url without
    /// padding (43 characters).
    pub fn generate() -> SessionId {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let mut text = [0u8; 43];
        let len = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut text)
            .expect("43 characters hold 32 bytes in base64url");
        SessionId(
            std::str::from_utf8(&text[..len])
                .expect("base64 is ASCII")
                .into(),
        )
    }

    /// A fresh ID for a session of `owner`: the owner's three-character
    /// [`tag`](crate::backend::SessionOwner::tag), then 31 random bytes (248 bits) base64url
    /// ([`OWNED_ID_LEN`](Self::OWNED_ID_LEN), 45 characters in all). The tag is what puts an
    /// owner's sessions and index into one Redis Cluster hash slot; the length tells such an ID
    /// from one of [`generate`](Self::generate) (43), see [`is_owned_form`](Self::is_owned_form).
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::{backend::SessionOwner, SessionId};
    ///
    /// let owner = SessionOwner::new("broker\u{1f}subject").unwrap();
    /// let id = SessionId::generate_for(&owner);
    /// assert_eq!(id.expose().len(), SessionId::OWNED_ID_LEN);
    /// assert_eq!(&id.expose()[..3], owner.tag());
    /// assert!(id.is_owned_form());
    /// ```
    pub fn generate_for(owner: &crate::backend::SessionOwner) -> SessionId {
        let mut bytes = [0u8; 31];
        rand::rng().fill_bytes(&mut bytes);
        let mut text = String::with_capacity(Self::OWNED_ID_LEN);
        text.push_str(owner.tag());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
        SessionId(text.into())
    }

    /// Whether this ID has the form [`generate_for`](Self::generate_for) gives an owner's
    /// session ([`OWNED_ID_LEN`](Self::OWNED_ID_LEN) characters). A backend that keeps an owner's
    /// bookkeeping beside the session (the Redis backend's index) uses it to know, without a read,
    /// that a session created by [`generate`](Self::generate) has none: the owner of an ID is set
    /// when it is created and never changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::SessionId;
    ///
    /// assert!(!SessionId::generate().is_owned_form());
    /// ```
    pub fn is_owned_form(&self) -> bool {
        self.0.len() == Self::OWNED_ID_LEN
    }

    /// Checks `text` and makes an ID of it.
    ///
    /// # Errors
    ///
    /// [`InvalidSessionId`] when `text` is shorter than 22 or longer than 128 characters or holds
    /// a character outside `[A-Za-z0-9_-]`.
    pub fn parse(text: &str) -> Result<SessionId, InvalidSessionId> {
        if text.len() < MIN_LEN {
            return Err(InvalidSessionId("too short"));
        }
        if text.len() > MAX_LEN {
            return Err(InvalidSessionId("too long"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidSessionId("a character outside [A-Za-z0-9_-]"));
        }
        Ok(SessionId(text.into()))
    }

    /// The ID's text: for a backend's key or file name and for the cookie. Never log it: log
    /// [`hash`](Self::hash).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the ID (Flamingo's `IDHash`): stable for the session and safe to log.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = flamingo_session::SessionId::generate();
    /// assert_eq!(id.hash().len(), 64);
    /// ```
    pub fn hash(&self) -> String {
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SessionId::parse(text)
    }
}

impl TryFrom<String> for SessionId {
    type Error = InvalidSessionId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        SessionId::parse(&text)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", &self.hash()[..12])
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.expose()), Ok(a));
    }

    #[test]
    fn bad_ids_are_refused_with_a_reason() {
        assert_eq!(
            SessionId::parse("short").unwrap_err().to_string(),
            "not a session ID: too short"
        );
        assert!(SessionId::parse(&"a".repeat(129)).is_err());
        assert!(SessionId::parse(&"a/".repeat(20)).is_err());
        assert!(SessionId::parse(&format!("{}..", "a".repeat(30))).is_err());
        // actix-session's own keys: 64 alphanumeric characters.
        assert!(SessionId::parse(&"A1".repeat(32)).is_ok());
    }

    #[test]
    fn debug_and_display_never_show_the_id() {
        let id = SessionId::generate();
        for shown in [format!("{id:?}"), format!("{id}")] {
            assert!(!shown.contains(id.expose()));
            assert!(shown.starts_with("SessionId("));
        }
    }
}

/// A fast hasher for maps keyed by [`SessionId`] (the memory backend's shards, the file
/// backend's cache) and for the cookie codec's cache of checked cookies: the IDs were made by a
/// backend from random bytes, or came from a cookie whose signature was checked, and only checked
/// cookies are remembered (at most 256), so nobody can fill a map with keys that collide, and a
/// keyed SipHash would only cost time. It folds the bytes a word at a time and mixes the result.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHashing;

impl std::hash::BuildHasher for IdHashing {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`IdHashing`].
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(last) ^ bytes.len() as u64).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser: every bit of the result depends on every bit folded in.
        let mut h = self.0;
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }
}

#[cfg(test)]
mod hasher_tests {
    use std::hash::BuildHasher as _;

    use super::*;

    #[test]
    fn ids_spread_over_buckets_and_shards() {
        let owner = crate::backend::SessionOwner::new("oidc:subject").unwrap();
        for ids in [
            (0..4096).map(|_| SessionId::generate()).collect::<Vec<_>>(),
            // Owned IDs share their first characters.
            (0..4096).map(|_| SessionId::generate_for(&owner)).collect(),
        ] {
            let mut low = [0usize; 64];
            let mut middle = [0usize; 64];
            for id in &ids {
                let h = IdHashing.hash_one(id);
                low[(h % 64) as usize] += 1;
                middle[((h >> 32) % 64) as usize] += 1;
            }
            // 64 expected in each; a bad hash puts hundreds in some and none in others.
            for counts in [low, middle] {
                assert!(
                    counts.iter().all(|&n| (20..=120).contains(&n)),
                    "{counts:?}"
                );
            }
        }
    }
}

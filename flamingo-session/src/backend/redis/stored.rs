//! What the Redis backend stores at a session's key: one JSON object whose members are the
//! session's keys, each with its JSON text as a string, and, for a session of an owner, the owner
//! fields first.

use serde::ser::{Serialize, SerializeMap as _, Serializer};

use crate::backend::{BackendError, SessionState};

/// The prefix of the fields this backend keeps beside the data (the one
/// [`Session`](crate::Session) reserves).
pub(super) const META_PREFIX: &str = "__flamingo.";
/// An owned session's field holding the Redis key of its owner's index.
const OWNER_FIELD: &str = "__flamingo.owner";
/// An owned session's field holding the Unix second it was created.
const CREATED_FIELD: &str = "__flamingo.created";

/// A session as stored: its keys and their JSON texts, and an owner's fields first.
struct Stored<'a> {
    state: &'a SessionState,
    /// The owner's index key and the creation time.
    owner: Option<(&'a str, u64)>,
}

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.state.len() + 2))?;
        if let Some((index, created)) = self.owner {
            map.serialize_entry(OWNER_FIELD, index)?;
            map.serialize_entry(CREATED_FIELD, &created.to_string())?;
        }
        for (key, value) in self.state {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The stored JSON object of `state`, with the owner fields when `owner` is given.
pub(super) fn encode(
    state: &SessionState,
    owner: Option<(&str, u64)>,
) -> Result<Vec<u8>, BackendError> {
    serde_json::to_vec(&Stored { state, owner }).map_err(BackendError::other)
}

/// The session a stored JSON object holds, without the owner fields.
pub(super) fn decode(value: &[u8]) -> Result<SessionState, BackendError> {
    let mut state: SessionState = serde_json::from_slice(value).map_err(|_| {
        BackendError::Corrupt(
            "a stored session is not a JSON object of JSON texts (flamingo.session.backend: \
             redis)"
                .to_owned(),
        )
    })?;
    state.remove(OWNER_FIELD);
    state.remove(CREATED_FIELD);
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_object_round_trips_and_hides_the_owner_fields() {
        let state = SessionState::from([
            ("count".to_owned(), r#"{"t":"u64","v":3}"#.to_owned()),
            ("note".to_owned(), "\"h\u{e9}llo\\n\"".to_owned()),
        ]);
        let plain = encode(&state, None).unwrap();
        assert_eq!(decode(&plain).unwrap(), state);
        let owned = encode(&state, Some(("session:{abc}:owner:x", 1_700_000_000))).unwrap();
        let text = String::from_utf8(owned.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"__flamingo.owner":"session:{abc}:owner:x","__flamingo.created":"1700000000","#
            ),
            "{text}"
        );
        assert_eq!(decode(&owned).unwrap(), state);
    }

    #[test]
    fn anything_else_is_corrupt() {
        for bad in [&b"not json"[..], b"[]", br#"{"a":1}"#, b"{\"a\":\"\x01\"}"] {
            assert!(
                matches!(decode(bad), Err(BackendError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}

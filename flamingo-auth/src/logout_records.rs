//! What back-channel logout remembers: which subject a provider session (`sid`) belongs to, and
//! the logout-token `jti`s seen. Both are leases in the session backend, so every instance sees
//! them; for backends without leases the `jti`s are kept in this process ([`SeenTokens`]).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The lease that records the subject of the provider session `sid` at `broker`, taken at login
/// and renewed by every token refresh, so that a `sid`-only logout token finds the user's sessions
/// for as long as the login is in use.
pub(crate) fn sid_lease(broker: &str, sid: &str) -> String {
    format!("bcl-sid:{broker}:{sid}")
}

/// The lease that records a logout token's `jti` as seen.
pub(crate) fn jti_lease(broker: &str, jti: &str) -> String {
    format!("bcl-jti:{broker}:{jti}")
}

/// The `jti`s seen in this process, for backends without leases.
#[derive(Default)]
pub(crate) struct SeenTokens(Mutex<HashMap<String, Instant>>);

impl SeenTokens {
    /// Records `key` for `ttl`; `false` when it was already recorded and has not expired.
    pub(crate) fn first_time(&self, key: &str, ttl: Duration) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        seen.retain(|_, until| *until > now);
        if seen.contains_key(key) {
            return false;
        }
        seen.insert(key.to_owned(), now + ttl);
        true
    }

    pub(crate) fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_seen_once_until_it_expires() {
        let seen = SeenTokens::default();
        assert!(seen.first_time("a", Duration::from_secs(60)));
        assert!(!seen.first_time("a", Duration::from_secs(60)));
        assert!(seen.first_time("b", Duration::ZERO));
        assert!(seen.first_time("b", Duration::from_secs(60)));
        seen.forget("a");
        assert!(seen.first_time("a", Duration::from_secs(60)));
    }
}

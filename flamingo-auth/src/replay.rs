//! The logout-token `jti`s this process has seen, for session backends without leases
//! (where they are recorded in the store, on every instance).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

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

//! What back-channel logout remembers: which subject a provider session (`sid`) belongs to, and
//! the logout-token `jti`s seen. Both are leases in the session backend, so every instance sees
//! them; for backends without leases the `jti`s are kept in this process ([`SeenTokens`]).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use flamingo_session::backend::Leases;

use crate::log::Escaped;

/// The lease that records the subject of the provider session `sid` at `broker`, taken at login
/// and renewed by every token refresh, so that a `sid`-only logout token finds the user's sessions
/// for as long as the login is in use.
pub(crate) fn sid_lease(broker: &str, sid: &str) -> String {
    format!("bcl-sid:{broker}:{sid}")
}

/// Records that the provider session `sid` at `broker` belongs to `subject`, for `lifetime`: at
/// login, and again at every token refresh while the login is in use (a sliding session outlives
/// the lifetime of the first record). The record is renewed when it is `subject`'s and taken when
/// it is free or ran out; another subject's record is kept. Failures are logged; the login or
/// the refresh goes on.
pub(crate) async fn record_sid(
    leases: Option<&dyn Leases>,
    broker: &str,
    sid: &str,
    subject: &str,
    lifetime: Duration,
) {
    let Some(leases) = leases else {
        tracing::debug!(
            broker,
            "the session backend has no leases: sid-only logout tokens will end nothing"
        );
        return;
    };
    let name = sid_lease(broker, sid);
    let recorded = match leases.renew(&name, subject, lifetime).await {
        Ok(false) => leases.acquire(&name, subject, lifetime).await,
        renewed => renewed,
    };
    match recorded {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            broker,
            "the provider's sid is recorded for another subject; kept the first"
        ),
        Err(err) => {
            tracing::warn!(broker, error = %Escaped(&err), "recording the provider's sid failed")
        }
    }
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

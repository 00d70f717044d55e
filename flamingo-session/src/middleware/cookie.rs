//! The session cookie: the session ID and two times, signed with a key derived from
//! `flamingo.session.secret`.
//!
//! Value: `<id>.<created>.<issued>.<mac>`, where `created` is when the session was created or
//! renewed (unix seconds; `max.lifetime` counts from it), `issued` when this cookie was sent
//! (the store's TTL was set then too, so the expiry needs sliding only once `issued` is old), and
//! `mac` the first 16 bytes of the HMAC-SHA256 of `<name>=<id>.<created>.<issued>`, base64url
//! (22 characters). Half of the hash's length is what RFC 2104 (section 5) recommends as the
//! shortest truncation: forging a tag takes 2^128 tries, while the cookie every request carries
//! is 21 characters shorter than with the whole MAC. Nothing else of the session travels in the
//! cookie; the ID carries the entropy and the MAC stops forged times.

use std::{cell::RefCell, collections::HashMap, hash::BuildHasher as _, time::Duration};

use crate::{
    backend::{IdHashing, SessionId},
    config::{SameSiteSetting, SessionConfig},
};
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How many checked cookies a worker remembers (see [`CookieCodec::open`]).
const VERIFIED_CAPACITY: usize = 256;
/// The bytes of the HMAC-SHA256 a cookie carries (see the module documentation).
const TAG_LEN: usize = 16;

/// What a valid cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(crate) id: SessionId,
    /// Unix seconds: creation or renewal of the session.
    pub(crate) created: u64,
    /// Unix seconds: when this cookie was sent.
    pub(crate) issued: u64,
}

/// Builds, signs and checks session cookies.
pub(crate) struct CookieCodec {
    name: String,
    /// The HMAC keyed once (and over `<name>=`): each cookie clones it instead of hashing the
    /// key again.
    keyed: HmacSha256,
    secure: bool,
    path: String,
    domain: Option<String>,
    same_site: Option<SameSite>,
    persistent: bool,
    /// Cookies whose MAC this worker checked lately, by a keyed hash of the value: a browser
    /// sends the same cookie on every request until the next one is set, so most requests skip
    /// the base64 decoding and the HMAC (BENCHMARKS.md). A hit is confirmed by comparing the
    /// whole value in constant time, so a forged cookie learns nothing from the timing of the
    /// comparison. Bounded: full, it is emptied.
    verified: RefCell<HashMap<u64, (Box<str>, Ticket), IdHashing>>,
}

impl CookieCodec {
    pub(crate) fn new(config: &SessionConfig) -> CookieCodec {
        let mut hasher = Sha256::new();
        hasher.update(b"flamingo-session cookie signing key v2\0");
        hasher.update(config.secret.as_bytes());
        let key: [u8; 32] = hasher.finalize().into();
        let mut keyed = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        keyed.update(config.name.as_bytes());
        keyed.update(b"=");
        CookieCodec {
            name: config.name.clone(),
            keyed,
            secure: config.cookie.secure,
            path: config.cookie.path.clone(),
            domain: config.cookie.domain.clone(),
            same_site: match config.cookie.same_site {
                SameSiteSetting::Lax => Some(SameSite::Lax),
                SameSiteSetting::Strict => Some(SameSite::Strict),
                SameSiteSetting::None => Some(SameSite::None),
                SameSiteSetting::Default => None,
            },
            persistent: config.cookie.persistent,
            verified: RefCell::new(HashMap::with_hasher(IdHashing)),
        }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(payload.as_bytes());
        mac
    }

    /// The value of our cookie in the request's `Cookie` headers, found without parsing (and
    /// percent-decoding) every other cookie: our value never needs decoding.
    pub(crate) fn find<'a>(
        &self,
        headers: &'a actix_web::http::header::HeaderMap,
    ) -> Option<&'a str> {
        // Bytes, not `HeaderValue::to_str`: that checks every byte of every cookie first. Each
        // `name=value` pair is matched against our name and then skipped with `memchr`.
        let name = self.name.as_bytes();
        let value = headers
            .get_all(actix_web::http::header::COOKIE)
            .find_map(|line| {
                let mut rest = line.as_bytes();
                loop {
                    rest = rest.trim_ascii_start();
                    let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
                    let pair = rest[..end].trim_ascii_end();
                    if let Some(value) = pair
                        .strip_prefix(name)
                        .and_then(|after| after.strip_prefix(b"="))
                    {
                        return Some(value);
                    }
                    rest = rest.get(end + 1..)?;
                }
            })?;
        std::str::from_utf8(value)
            .ok()
            .map(|value| value.trim_matches('"'))
    }

    /// The ticket in a cookie value, `None` for anything not signed by us.
    pub(crate) fn open(&self, value: &str) -> Option<Ticket> {
        // Not a keyed hash: a value that collides with a remembered one is compared in full
        // and then checked like any other, and only checked values are remembered.
        let key = IdHashing.hash_one(value);
        if let Some((seen, ticket)) = self.verified.borrow().get(&key) {
            if same_bytes(seen.as_bytes(), value.as_bytes()) {
                return Some(ticket.clone());
            }
        }
        let ticket = self.check(value)?;
        let mut verified = self.verified.borrow_mut();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(key, (value.into(), ticket.clone()));
        Some(ticket)
    }

    /// Checks the MAC of a cookie value and reads its ticket.
    fn check(&self, value: &str) -> Option<Ticket> {
        let (payload, tag) = value.rsplit_once('.')?;
        // A tag is 16 bytes; a longer one fails to decode into the buffer.
        let mut decoded = [0u8; TAG_LEN];
        let len = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(tag, &mut decoded)
            .ok()?;
        if len != TAG_LEN {
            return None;
        }
        self.mac(payload).verify_truncated_left(&decoded).ok()?;
        let mut parts = payload.split('.');
        let id = SessionId::parse(parts.next()?).ok()?;
        let created = parts.next()?.parse().ok()?;
        let issued = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Ticket {
            id,
            created,
            issued,
        })
    }

    /// The cookie carrying `ticket`; `max_age` is the store TTL just set.
    pub(crate) fn issue(&self, ticket: &Ticket, max_age: Duration) -> Cookie<'static> {
        let payload = format!(
            "{}.{}.{}",
            ticket.id.expose(),
            ticket.created,
            ticket.issued
        );
        let mac = self.mac(&payload).finalize().into_bytes();
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..TAG_LEN]);
        let mut cookie = self.base(format!("{payload}.{tag}"));
        if self.persistent {
            cookie.set_max_age(CookieDuration::seconds(
                i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
            ));
        }
        cookie
    }

    /// A cookie that makes the browser forget the session cookie.
    pub(crate) fn removal(&self) -> Cookie<'static> {
        let mut cookie = self.base(String::new());
        cookie.make_removal();
        cookie
    }

    fn base(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.name.clone(), value);
        cookie.set_http_only(true);
        cookie.set_secure(self.secure);
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        if let Some(same_site) = self.same_site {
            cookie.set_same_site(same_site);
        }
        cookie
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their length only: the bytes are
/// compared eight at a time and every difference folded into one word.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a_words, mut b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff = 0u64;
    for (x, y) in (&mut a_words).zip(&mut b_words) {
        diff |= u64::from_le_bytes(x.try_into().expect("8 bytes"))
            ^ u64::from_le_bytes(y.try_into().expect("8 bytes"));
    }
    for (x, y) in a_words.remainder().iter().zip(b_words.remainder()) {
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(secret: &str) -> CookieCodec {
        CookieCodec::new(&SessionConfig {
            secret: secret.into(),
            ..SessionConfig::default()
        })
    }

    fn ticket() -> Ticket {
        Ticket {
            id: SessionId::generate(),
            created: 1_700_000_000,
            issued: 1_700_000_100,
        }
    }

    #[test]
    fn a_cookie_round_trips() {
        let codec = codec("one secret");
        let ticket = ticket();
        let cookie = codec.issue(&ticket, Duration::from_secs(60));
        assert_eq!(codec.open(cookie.value()), Some(ticket));
        assert_eq!(cookie.max_age(), Some(CookieDuration::seconds(60)));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    }

    #[test]
    fn forged_or_foreign_cookies_are_refused() {
        let codec = codec("one secret");
        let cookie = codec.issue(&ticket(), Duration::from_secs(60));
        let value = cookie.value().to_owned();
        assert_eq!(
            codec_open(&codec, &value.replace(".1700000000.", ".1800000000.")),
            None
        );
        assert_eq!(self::codec("another secret").open(&value), None);
        for bad in ["", ".", "abc", "a.b.c.d", &format!("{value}x")] {
            assert_eq!(codec.open(bad), None, "{bad:?}");
        }
        // The tag is the MAC's first 16 bytes; the whole MAC, or fewer bytes, are refused.
        let (payload, tag) = value.rsplit_once('.').unwrap();
        assert_eq!(tag.len(), 22);
        let full = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(codec.mac(payload).finalize().into_bytes());
        assert!(full.starts_with(&tag[..21]));
        assert_eq!(codec.open(&format!("{payload}.{full}")), None);
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(&codec.mac(payload).finalize().into_bytes()[..8]);
        assert_eq!(codec.open(&format!("{payload}.{short}")), None);
    }

    #[test]
    fn a_remembered_cookie_opens_again_and_a_forged_one_never_does() {
        let codec = codec("one secret");
        let cookies: Vec<(Ticket, String)> = (0..VERIFIED_CAPACITY + 10)
            .map(|_| {
                let ticket = ticket();
                let value = codec
                    .issue(&ticket, Duration::from_secs(60))
                    .value()
                    .to_owned();
                (ticket, value)
            })
            .collect();
        for _ in 0..2 {
            for (ticket, value) in &cookies {
                assert_eq!(codec.open(value).as_ref(), Some(ticket));
                let mut forged = value.clone().into_bytes();
                let last = forged.len() - 1;
                forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
                let forged = String::from_utf8(forged).unwrap();
                assert_eq!(codec.open(&forged), None, "a changed MAC is refused");
            }
        }
        assert!(codec.verified.borrow().len() <= VERIFIED_CAPACITY);
        // Another worker's codec with another secret remembers nothing of these.
        assert_eq!(self::codec("another secret").open(&cookies[0].1), None);
    }

    #[test]
    fn our_cookie_is_found_among_others() {
        let codec = codec("one secret");
        let mut headers = actix_web::http::header::HeaderMap::new();
        headers.append(
            actix_web::http::header::COOKIE,
            "theme=dark; flamingo2=x".parse().unwrap(),
        );
        assert_eq!(codec.find(&headers), None);
        headers.append(
            actix_web::http::header::COOKIE,
            "a=1;  flamingo=abc.1.2.sig ; b=2".parse().unwrap(),
        );
        assert_eq!(codec.find(&headers), Some("abc.1.2.sig"));
    }

    #[test]
    fn values_compare_equal_only_when_equal() {
        let a = b"abcdefghijklmnopqrstuvwxyz0123456789-_.ABCDEFGHIJ";
        for len in [0, 1, 7, 8, 9, 16, 43, a.len()] {
            assert!(same_bytes(&a[..len], &a[..len]));
            if len > 0 {
                for i in 0..len {
                    let mut b = a[..len].to_vec();
                    b[i] ^= 1;
                    assert!(!same_bytes(&a[..len], &b), "byte {i} of {len} differs");
                }
                assert!(!same_bytes(&a[..len], &a[..len - 1]));
            }
        }
    }

    #[test]
    fn our_cookie_is_found_next_to_one_that_is_not_ascii() {
        let codec = codec("one secret");
        let mut headers = actix_web::http::header::HeaderMap::new();
        headers.append(
            actix_web::http::header::COOKIE,
            actix_web::http::header::HeaderValue::from_bytes(
                "name=Gr\u{fc}\u{df}e; flamingo=\"abc.1.2.sig\"".as_bytes(),
            )
            .unwrap(),
        );
        assert_eq!(codec.find(&headers), Some("abc.1.2.sig"));
    }

    fn codec_open(codec: &CookieCodec, value: &str) -> Option<Ticket> {
        codec.open(value)
    }

    #[test]
    fn a_browser_session_cookie_has_no_max_age() {
        let mut config = SessionConfig::default();
        config.cookie.persistent = false;
        config.cookie.domain = Some("example.com".into());
        config.cookie.same_site = SameSiteSetting::Default;
        let codec = CookieCodec::new(&config);
        let cookie = codec.issue(&ticket(), Duration::from_secs(60));
        assert_eq!(cookie.max_age(), None);
        assert_eq!(cookie.expires(), None);
        assert_eq!(cookie.domain(), Some("example.com"));
        assert_eq!(cookie.same_site(), None);
    }
}

//! How data centers authenticate each other on the server-to-server API (CONTRACT.md "Data
//! centers"): the shared secret, what a request's HMAC-SHA256 signature covers, and the checks
//! a receiving DC makes (the ±60 s window, the signature, a nonce not seen before). Pure: the
//! caller passes `now`, and keeps the `NonceCache` where it likes (the server: in memory, per
//! node). Sending and receiving over HTTP is the server's (`grantd_server::peers`).

use std::collections::{HashMap, VecDeque};
use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::Timestamp;

/// The caller's location (`us`, `eu`, ...). Not signed: every holder of the secret is trusted
/// alike, and the receiver checks that it names a configured peer.
pub const DC_HEADER: &str = "x-grantd-dc";
/// Unix seconds, in decimal.
pub const TIMESTAMP_HEADER: &str = "x-grantd-timestamp";
/// 32 lower-case hex digits: 128 random bits.
pub const NONCE_HEADER: &str = "x-grantd-nonce";
/// 64 lower-case hex digits: HMAC-SHA256 of [`signing_input`] under the shared secret.
pub const SIGNATURE_HEADER: &str = "x-grantd-signature";

/// A request is accepted this many seconds either side of the receiver's clock.
pub const WINDOW_SECS: i64 = 60;
/// A nonce is remembered this long: past it, the request's timestamp is outside the window
/// wherever in the window it was first seen (2 × [`WINDOW_SECS`]).
pub const NONCE_LIFETIME_SECS: i64 = 2 * WINDOW_SECS;
/// The shared secret's minimum length: 256 bits, as the HMAC-SHA256 key it is.
pub const MIN_SECRET_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The secret every data center of a deployment shares (`dc_secret_file`). Like every secret
/// here: no `Display`, no `Serialize`, a redacted `Debug`.
#[derive(Clone)]
pub struct DcSecret {
    /// Keyed once, when the secret is read (the one step that can fail), and cloned per use.
    keyed: HmacSha256,
}

impl DcSecret {
    /// The secret from its file's contents, surrounding whitespace (a trailing newline) trimmed.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, String> {
        let trimmed = contents.trim_ascii();
        if trimmed.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the dc secret must be at least {MIN_SECRET_LEN} bytes (it has {}); \
                 e.g. `openssl rand -hex 32`",
                trimmed.len()
            ));
        }
        let keyed = HmacSha256::new_from_slice(trimmed)
            .map_err(|_| "the dc secret cannot key HMAC-SHA256".to_owned())?;
        Ok(Self { keyed })
    }

    fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

impl fmt::Debug for DcSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DcSecret(..)")
    }
}

/// What the signature covers: `METHOD\nPATH\nTIMESTAMP\nNONCE\n` and then the body's bytes.
/// `path` includes the query string, so neither can be changed in transit.
pub fn signing_input(
    method: &str,
    path: &str,
    timestamp: Timestamp,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let head = format!("{method}\n{path}\n{}\n{nonce}\n", timestamp.0);
    let mut input = Vec::with_capacity(head.len() + body.len());
    input.extend_from_slice(head.as_bytes());
    input.extend_from_slice(body);
    input
}

/// The signature header's value for a request.
pub fn sign(
    secret: &DcSecret,
    method: &str,
    path: &str,
    timestamp: Timestamp,
    nonce: &str,
    body: &[u8],
) -> String {
    let mut mac = secret.mac();
    mac.update(&signing_input(method, path, timestamp, nonce, body));
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh nonce: 128 random bits as 32 lower-case hex digits.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A received request as it came: the raw header values (`None` when absent) and the body.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a signed request was refused; each is answered 401 alike, and logged by its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing(&'static str),
    Malformed(&'static str),
    /// Older than the window: a delayed or replayed request, or a clock far behind.
    Stale,
    /// Newer than the window: a clock far ahead.
    Future,
    WrongSignature,
    /// The nonce was seen within its lifetime: a replay.
    Replayed,
    /// Not a configured peer.
    UnknownCaller,
    /// The nonce cache is full of live nonces (`Admission::Full`).
    TooMany,
}

impl Refusal {
    /// For the log line and the 401's `error_description`; never contains a presented value.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing(header) => header,
            Refusal::Malformed(header) => header,
            Refusal::Stale => "timestamp too old",
            Refusal::Future => "timestamp in the future",
            Refusal::WrongSignature => "wrong signature",
            Refusal::Replayed => "nonce already used",
            Refusal::UnknownCaller => "caller is not a configured data center",
            Refusal::TooMany => "too many recent requests",
        }
    }
}

/// Checks a request's timestamp against `now` (±[`WINDOW_SECS`]) and its signature (in
/// constant time); on success, its timestamp. The nonce's freshness is the caller's to check
/// next, in its `NonceCache`, so that only signed requests take room there.
pub fn verify(
    secret: &DcSecret,
    request: &Presented<'_>,
    now: Timestamp,
) -> Result<Timestamp, Refusal> {
    let timestamp = request
        .timestamp
        .ok_or(Refusal::Missing("missing X-Grantd-Timestamp"))?;
    let nonce = request
        .nonce
        .ok_or(Refusal::Missing("missing X-Grantd-Nonce"))?;
    let signature = request
        .signature
        .ok_or(Refusal::Missing("missing X-Grantd-Signature"))?;
    let timestamp =
        parse_timestamp(timestamp).ok_or(Refusal::Malformed("malformed X-Grantd-Timestamp"))?;
    if !is_lower_hex(nonce, 32) {
        return Err(Refusal::Malformed("malformed X-Grantd-Nonce"));
    }
    if !is_lower_hex(signature, 64) {
        return Err(Refusal::Malformed("malformed X-Grantd-Signature"));
    }
    if timestamp < now.minus(WINDOW_SECS) {
        return Err(Refusal::Stale);
    }
    if timestamp > now.plus(WINDOW_SECS) {
        return Err(Refusal::Future);
    }
    let presented = hex::decode(signature).map_err(|_| Refusal::WrongSignature)?;
    let mut mac = secret.mac();
    mac.update(&signing_input(
        request.method,
        request.path,
        timestamp,
        nonce,
        request.body,
    ));
    // `verify_slice` compares in constant time.
    mac.verify_slice(&presented)
        .map_err(|_| Refusal::WrongSignature)?;
    Ok(timestamp)
}

/// Unix seconds: 1 to 12 decimal digits, nothing else.
fn parse_timestamp(raw: &str) -> Option<Timestamp> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok().map(Timestamp)
}

fn is_lower_hex(value: &str, len: usize) -> bool {
    value.len() == len
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Nonces seen in the last [`NONCE_LIFETIME_SECS`], at most `capacity` of them. A replay
/// within the window is found here; after it, the timestamp check refuses it anyway.
#[derive(Debug)]
pub struct NonceCache {
    /// Nonce → when it may be forgotten.
    seen: HashMap<String, Timestamp>,
    /// The same, in the order they came, to forget the oldest first.
    order: VecDeque<(Timestamp, String)>,
    capacity: usize,
}

/// A nonce's admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not seen before; now remembered.
    Fresh,
    Replayed,
    /// `capacity` nonces are live: nothing can be remembered, so nothing is admitted (a flood
    /// from a holder of the secret, not a guess: only signed requests get here).
    Full,
}

impl NonceCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn admit(&mut self, nonce: &str, now: Timestamp) -> Admission {
        while let Some((forget_at, _)) = self.order.front() {
            if *forget_at > now {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(nonce) {
            return Admission::Replayed;
        }
        if self.seen.len() >= self.capacity {
            return Admission::Full;
        }
        let forget_at = now.plus(NONCE_LIFETIME_SECS);
        self.seen.insert(nonce.to_owned(), forget_at);
        self.order.push_back((forget_at, nonce.to_owned()));
        Admission::Fresh
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_767_225_600);
    const BODY: &[u8] = br#"{"email":"ada@example.com"}"#;
    const PATH: &str = "/dc/v1/users/lookup";

    fn secret() -> DcSecret {
        DcSecret::from_file_contents(b"0123456789abcdef0123456789abcdef\n").unwrap()
    }

    struct Signed {
        timestamp: String,
        nonce: String,
        signature: String,
    }

    fn signed(at: Timestamp) -> Signed {
        let nonce = new_nonce();
        let signature = sign(&secret(), "POST", PATH, at, &nonce, BODY);
        Signed {
            timestamp: at.0.to_string(),
            nonce,
            signature,
        }
    }

    fn presented<'a>(
        s: &'a Signed,
        method: &'a str,
        path: &'a str,
        body: &'a [u8],
    ) -> Presented<'a> {
        Presented {
            method,
            path,
            timestamp: Some(&s.timestamp),
            nonce: Some(&s.nonce),
            signature: Some(&s.signature),
            body,
        }
    }

    #[test]
    fn a_signed_request_verifies_within_the_window() {
        let s = signed(NOW);
        for now in [NOW.minus(WINDOW_SECS), NOW, NOW.plus(WINDOW_SECS)] {
            assert_eq!(
                verify(&secret(), &presented(&s, "POST", PATH, BODY), now),
                Ok(NOW)
            );
        }
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let s = signed(NOW);
        let request = presented(&s, "POST", PATH, BODY);
        assert_eq!(
            verify(&secret(), &request, NOW.plus(WINDOW_SECS + 1)),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify(&secret(), &request, NOW.minus(WINDOW_SECS + 1)),
            Err(Refusal::Future)
        );
    }

    #[test]
    fn a_wrong_signature_or_another_secret_is_refused() {
        let s = signed(NOW);
        let other = DcSecret::from_file_contents(&[b'x'; 32]).unwrap();
        assert_eq!(
            verify(&other, &presented(&s, "POST", PATH, BODY), NOW),
            Err(Refusal::WrongSignature)
        );
        let mut flipped = signed(NOW);
        let last = if flipped.signature.ends_with('0') {
            "1"
        } else {
            "0"
        };
        flipped.signature.replace_range(63.., last);
        assert_eq!(
            verify(&secret(), &presented(&flipped, "POST", PATH, BODY), NOW),
            Err(Refusal::WrongSignature)
        );
    }

    #[test]
    fn tampering_with_any_signed_part_is_refused() {
        let s = signed(NOW);
        let wrong = Err(Refusal::WrongSignature);
        let body = br#"{"email":"bob@example.com"}"#;
        assert_eq!(
            verify(&secret(), &presented(&s, "POST", PATH, body), NOW),
            wrong
        );
        assert_eq!(
            verify(
                &secret(),
                &presented(&s, "POST", "/dc/v1/clients", BODY),
                NOW
            ),
            wrong
        );
        assert_eq!(
            verify(
                &secret(),
                &presented(&s, "POST", "/dc/v1/users/lookup?x=1", BODY),
                NOW
            ),
            wrong
        );
        assert_eq!(
            verify(&secret(), &presented(&s, "GET", PATH, BODY), NOW),
            wrong
        );
        let mut other_nonce = signed(NOW);
        other_nonce.nonce = new_nonce();
        assert_eq!(
            verify(&secret(), &presented(&other_nonce, "POST", PATH, BODY), NOW),
            wrong
        );
        // The timestamp is signed too: moving it back into the window breaks the signature.
        let mut moved = signed(NOW.minus(120));
        moved.timestamp = NOW.0.to_string();
        assert_eq!(
            verify(&secret(), &presented(&moved, "POST", PATH, BODY), NOW),
            wrong
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_refused() {
        let s = signed(NOW);
        let full = presented(&s, "POST", PATH, BODY);
        for request in [
            Presented {
                timestamp: None,
                ..full
            },
            Presented {
                nonce: None,
                ..full
            },
            Presented {
                signature: None,
                ..full
            },
        ] {
            assert!(matches!(
                verify(&secret(), &request, NOW),
                Err(Refusal::Missing(_))
            ));
        }
        let upper = s.signature.to_ascii_uppercase();
        for request in [
            Presented {
                timestamp: Some("-5"),
                ..full
            },
            Presented {
                timestamp: Some("1e9"),
                ..full
            },
            Presented {
                nonce: Some("abc"),
                ..full
            },
            Presented {
                signature: Some(&upper),
                ..full
            },
        ] {
            assert!(matches!(
                verify(&secret(), &request, NOW),
                Err(Refusal::Malformed(_))
            ));
        }
    }

    #[test]
    fn the_signing_input_is_method_path_timestamp_nonce_then_body() {
        assert_eq!(
            signing_input("POST", "/p?q=1", Timestamp(5), "ab", b"{}"),
            b"POST\n/p?q=1\n5\nab\n{}".to_vec()
        );
    }

    #[test]
    fn the_secret_is_trimmed_long_enough_and_never_shown() {
        assert!(DcSecret::from_file_contents(b"  short secret \n").is_err());
        assert!(DcSecret::from_file_contents(&[b' '; 40]).is_err());
        let padded = DcSecret::from_file_contents(b"\n 0123456789abcdef0123456789abcdef \r\n");
        let s = signed(NOW);
        // The same key as `secret()`: the whitespace around it is not part of it.
        assert_eq!(
            verify(&padded.unwrap(), &presented(&s, "POST", PATH, BODY), NOW),
            Ok(NOW)
        );
        assert_eq!(format!("{:?}", secret()), "DcSecret(..)");
    }

    #[test]
    fn nonces_are_128_random_bits_in_hex() {
        let (a, b) = (new_nonce(), new_nonce());
        assert!(is_lower_hex(&a, 32), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_nonce_is_admitted_once_within_its_lifetime() {
        let mut cache = NonceCache::new(3);
        assert_eq!(cache.admit("a", NOW), Admission::Fresh);
        assert_eq!(cache.admit("a", NOW), Admission::Replayed);
        assert_eq!(
            cache.admit("a", NOW.plus(NONCE_LIFETIME_SECS - 1)),
            Admission::Replayed
        );
        assert_eq!(cache.admit("b", NOW.plus(10)), Admission::Fresh);
        // "a" is forgotten once its lifetime is over; "b" is not yet.
        assert_eq!(
            cache.admit("a", NOW.plus(NONCE_LIFETIME_SECS)),
            Admission::Fresh
        );
        assert_eq!(
            cache.admit("b", NOW.plus(NONCE_LIFETIME_SECS)),
            Admission::Replayed
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_full_cache_admits_nothing_until_nonces_expire() {
        let mut cache = NonceCache::new(2);
        assert_eq!(cache.admit("a", NOW), Admission::Fresh);
        assert_eq!(cache.admit("b", NOW), Admission::Fresh);
        assert_eq!(cache.admit("c", NOW), Admission::Full);
        assert_eq!(cache.admit("a", NOW), Admission::Replayed);
        assert_eq!(
            cache.admit("c", NOW.plus(NONCE_LIFETIME_SECS)),
            Admission::Fresh
        );
        assert_eq!(cache.len(), 1);
    }
}

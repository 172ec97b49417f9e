//! Server-generated secrets as types that cannot leak by accident: no `Display`, no
//! `Serialize`, a redacted `Debug`, and `expose()` as the one grep-able way out. Secrets reach
//! the database only as a `SecretHash`.

use std::fmt;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::datacenter::DcTag;

/// SHA-256 of a secret. One hash suffices: every secret hashed this way carries at least 168
/// random bits, so there is nothing to brute-force and the token endpoint stays fast.
#[derive(Clone, Copy, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// A printable name for a stored row that reveals nothing usable (e.g. a session handle).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        Self::from_bytes(&hex::decode(s).ok()?)
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0[..].ct_eq(&other.0[..]).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value received from a client; its shape is checked where it is looked up.
            pub fn from_wire(value: String) -> Self {
                Self(value)
            }
            pub fn expose(&self) -> &str {
                &self.0
            }
            pub fn hash(&self) -> SecretHash {
                SecretHash::of(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

secret_type!(
    /// `1000.` + 32 hex + `.` + 32 hex: the issuing DC's tag, then 224 random bits.
    GrantCode
);
secret_type!(AccessToken);
secret_type!(
    /// RFC 8628's `device_code`: shaped like a grant code (the DC tag, then 224 random bits).
    DeviceCode
);
secret_type!(RefreshToken);
secret_type!(
    /// Zoho's incremental authorization: what `/oauth/v2/token/scopeenhance` answers as its
    /// `access_token`, shaped like a grant code (the DC tag, then 224 random bits).
    EnhanceToken
);
secret_type!(
    /// 42 lower-case hex characters: 168 random bits.
    ClientSecret
);
secret_type!(
    /// The value of a browser session cookie (256 random bits).
    SessionToken
);
secret_type!(
    /// A human-chosen password; hashed with Argon2id by the server, never with SHA-256.
    Password
);

/// The Zoho-shaped opaque token: `1000.` + 32 hex + `.` + 32 hex, the first 8 hex digits
/// naming the data center that minted it (`DcTag`), the other 224 bits random.
fn opaque_token(issuer: DcTag) -> String {
    let mut bytes = random_bytes::<32>();
    bytes[..4].copy_from_slice(&issuer.bytes());
    format!(
        "1000.{}.{}",
        hex::encode(&bytes[..16]),
        hex::encode(&bytes[16..])
    )
}

impl GrantCode {
    pub fn generate(issuer: DcTag) -> Self {
        Self(opaque_token(issuer))
    }
}
impl DeviceCode {
    pub fn generate(issuer: DcTag) -> Self {
        Self(opaque_token(issuer))
    }
}
impl AccessToken {
    pub fn generate(issuer: DcTag) -> Self {
        Self(opaque_token(issuer))
    }
}
impl EnhanceToken {
    pub fn generate(issuer: DcTag) -> Self {
        Self(opaque_token(issuer))
    }
}
impl RefreshToken {
    pub fn generate(issuer: DcTag) -> Self {
        Self(opaque_token(issuer))
    }
}
impl ClientSecret {
    pub fn generate() -> Self {
        Self(hex::encode(random_bytes::<21>()))
    }
}
impl SessionToken {
    pub fn generate() -> Self {
        Self(hex::encode(random_bytes::<32>()))
    }
    /// The CSRF token of this session: derived, so it needs no storage, and useless without
    /// the cookie it is bound to (OWASP's HMAC-based synchronizer token).
    pub fn csrf_token(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"grantd csrf v1\0");
        hasher.update(self.0.as_bytes());
        hex::encode(hasher.finalize())
    }
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf_token()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

/// A random identifier that is not a secret by itself (e.g. a pending consent's id, which is
/// only valid together with the session that created it).
pub fn random_id() -> String {
    hex::encode(random_bytes::<16>())
}

/// `1000.` + 30 upper-case letters and digits, as Zoho's client ids.
pub fn generate_client_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let bytes = random_bytes::<30>();
    let mut id = String::with_capacity(35);
    id.push_str("1000.");
    // 256 is not a multiple of 36; the slight bias is irrelevant for a public identifier.
    id.extend(
        bytes
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char),
    );
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_matches_the_contract() {
        let token = RefreshToken::generate(DcTag::of("us"));
        let parts: Vec<&str> = token.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "1000");
        assert!(parts[1..]
            .iter()
            .all(|p| p.len() == 32 && p.chars().all(|c| c.is_ascii_hexdigit())));
        assert_eq!(DcTag::of_token(token.expose()), Some(DcTag::of("us")));
        assert_ne!(
            token.expose(),
            RefreshToken::generate(DcTag::of("us")).expose()
        );
        assert_eq!(ClientSecret::generate().expose().len(), 42);
        let id = generate_client_id();
        assert_eq!(id.len(), 35);
        assert!(id[5..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let code = GrantCode::generate(DcTag::of("us"));
        assert_eq!(format!("{code:?}"), "GrantCode(..)");
    }

    #[test]
    fn csrf_token_is_bound_to_its_session() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert!(a.csrf_matches(&a.csrf_token()));
        assert!(!a.csrf_matches(&b.csrf_token()));
        assert!(!a.csrf_matches(""));
    }

    #[test]
    fn hashes_compare_by_value() {
        assert_eq!(SecretHash::of("x"), SecretHash::of("x"));
        assert_ne!(SecretHash::of("x"), SecretHash::of("y"));
    }
}

//! OpenID Connect's signing keys: made here (RSA-2048 for RS256 with the `rsa` crate, Ed25519
//! for EdDSA with `ed25519-dalek`), one active key per algorithm so that every client's choice
//! can be signed, stored by the store with the private half sealed under the key-encryption key
//! (AES-256-GCM), and held in memory by every node (`KeyRing`), so that signing an ID token
//! never reads the database nor decrypts anything. Signing itself is `jsonwebtoken`'s. Which
//! algorithm signs a client's tokens, what is published and for how long are
//! `grantd_core::oidc`'s rules.

use std::fmt;
use std::sync::{Arc, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;

use grantd_core::oidc::{self, IdTokenClaims, SigningAlg};
use grantd_core::secret::random_id;
use grantd_core::Timestamp;
use grantd_store::{KeyVerbs, SigningKeyRecord, Store, StoreError};
use grantd_wire::{Jwk, JwkSet};

/// RSA keys for RS256 (OIDC Core §15.1 makes RS256 mandatory; 2048 bits is NIST's floor
/// through 2030, and keeps signing fast).
const RSA_BITS: usize = 2048;
const NONCE_LEN: usize = 12;

/// The key-encryption key (`key_encryption_key_file`): 32 bytes that seal every private signing
/// key at rest. Like the secret types: no `Display`, a redacted `Debug`.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// A new random key, for a new key file (or a test).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A key file's contents: 64 hexadecimal characters (`openssl rand -hex 32`), surrounding
    /// whitespace ignored. The message never repeats the contents.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(contents)
            .map_err(|_| "must hold 64 hexadecimal characters".to_owned())?
            .trim();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes)
            .map_err(|_| "must hold 64 hexadecimal characters (32 bytes)".to_owned())?;
        Ok(Self(bytes))
    }

    /// What a new key file holds.
    pub fn to_file_contents(&self) -> String {
        format!("{}\n", hex::encode(self.0))
    }

    /// nonce || AES-256-GCM(plaintext), the key id as associated data, so a sealed key moved to
    /// another row does not open.
    fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Crypto("cannot encrypt a signing key"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).ok()?;
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0));
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Crypto(&'static str),
    #[error("cannot decrypt signing key {kid}: the key-encryption key is not the one it was sealed with")]
    WrongKek { kid: String },
    #[error("signing key {kid} cannot be read: {why}")]
    Unreadable { kid: String, why: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A private key ready to sign, with the id and algorithm the JWS header names.
struct ActiveKey {
    kid: String,
    alg: SigningAlg,
    key: EncodingKey,
}

/// Makes a key for `alg`, as its row: the private half sealed under `kek`. RSA generation takes
/// a moment, so callers on the runtime use `generate_off_runtime`.
pub fn generate(alg: SigningAlg, kek: &Kek, now: Timestamp) -> Result<SigningKeyRecord, KeyError> {
    let kid = random_id();
    let (jwk, der) = match alg {
        SigningAlg::Rs256 => {
            let private = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
                .map_err(|_| KeyError::Crypto("cannot generate an RSA key"))?;
            let der = private
                .to_pkcs1_der()
                .map_err(|_| KeyError::Crypto("cannot encode an RSA key"))?;
            let jwk = Jwk::rsa(
                &kid,
                alg.as_str(),
                URL_SAFE_NO_PAD.encode(private.n_bytes()),
                URL_SAFE_NO_PAD.encode(private.e_bytes()),
            );
            (jwk, der.as_bytes().to_vec())
        }
        SigningAlg::EdDsa => {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let private = ed25519_dalek::SigningKey::from_bytes(&seed);
            let der = private
                .to_pkcs8_der()
                .map_err(|_| KeyError::Crypto("cannot encode an Ed25519 key"))?;
            let x = URL_SAFE_NO_PAD.encode(private.verifying_key().to_bytes());
            (Jwk::ed25519(&kid, x), der.as_bytes().to_vec())
        }
    };
    let public_jwk =
        serde_json::to_string(&jwk).map_err(|_| KeyError::Crypto("cannot encode a public key"))?;
    Ok(SigningKeyRecord {
        encrypted_private_key: kek.seal(&kid, &der)?,
        kid,
        alg: alg.as_str().to_owned(),
        public_jwk,
        created_at: now,
        retired_at: None,
        expires_at: None,
    })
}

/// The form `jsonwebtoken` signs with: PKCS#1 DER for RSA, PKCS#8 DER for Ed25519, as stored.
fn encoding_key(alg: SigningAlg, der: &[u8]) -> EncodingKey {
    match alg {
        SigningAlg::Rs256 => EncodingKey::from_rsa_der(der),
        SigningAlg::EdDsa => EncodingKey::from_ed_der(der),
    }
}

fn jose_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    }
}

async fn generate_off_runtime(
    alg: SigningAlg,
    kek: &Kek,
    now: Timestamp,
) -> Result<SigningKeyRecord, KeyError> {
    let kek = kek.clone();
    tokio::task::spawn_blocking(move || generate(alg, &kek, now))
        .await
        .unwrap_or(Err(KeyError::Crypto("key generation stopped")))
}

/// The keys this node signs with and publishes, as last loaded.
#[derive(Default)]
pub struct KeySet {
    /// At most one per algorithm; two entries, so a scan beats a map.
    active: Vec<Arc<ActiveKey>>,
    published: JwkSet,
}

impl KeySet {
    fn active(&self, alg: SigningAlg) -> Option<&Arc<ActiveKey>> {
        self.active.iter().find(|k| k.alg == alg)
    }

    /// Whether an ID token can be signed with `alg` (checked before the claims are gathered).
    pub fn can_sign(&self, alg: SigningAlg) -> bool {
        self.active(alg).is_some()
    }

    /// A compact JWS of `claims` with `alg`'s active key, its header naming the key.
    pub fn sign(&self, alg: SigningAlg, claims: &IdTokenClaims) -> Result<String, KeyError> {
        let active = self.active(alg).ok_or(KeyError::Crypto(
            "no signing key is loaded for this algorithm",
        ))?;
        let mut header = Header::new(jose_alg(active.alg));
        header.kid = Some(active.kid.clone());
        jsonwebtoken::encode(&header, claims, &active.key)
            .map_err(|_| KeyError::Crypto("cannot sign an ID token"))
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.published
    }
}

/// Every node's copy of the keys: swapped whole on reload, read without waiting on the store.
pub struct KeyRing {
    kek: Kek,
    current: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    pub fn new(kek: Kek) -> Self {
        Self {
            kek,
            current: RwLock::new(Arc::new(KeySet::default())),
        }
    }

    /// The keys as last loaded.
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => set.clone(),
            // A panic while swapping cannot leave a half-made set: the swap is one assignment.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn install(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut slot) => *slot = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// At start: makes the first key of every algorithm that has none (an upgraded server
    /// gets the algorithm it did not sign with before; the keys it had stay as they are), then
    /// loads them. Fails when an active key cannot be opened with this key-encryption key.
    pub async fn prepare(&self, store: &Store, now: Timestamp) -> Result<(), KeyError> {
        let keys = store.signing_keys(now).await?;
        for alg in SigningAlg::ALL {
            let has_one = keys
                .iter()
                .any(|k| k.retired_at.is_none() && k.alg == alg.as_str());
            if has_one {
                continue;
            }
            let new = generate_off_runtime(alg, &self.kek, now).await?;
            // `false`: another node made one meanwhile; its key will do.
            if store.add_first_signing_key(&new).await? {
                tracing::info!(kid = %new.kid, alg = %alg, "made the first ID-token signing key for the algorithm");
            }
        }
        self.reload(store, now).await
    }

    /// Reads the published keys and opens each algorithm's active one, unless it is the one
    /// already held.
    pub async fn reload(&self, store: &Store, now: Timestamp) -> Result<(), KeyError> {
        let records = store.signing_keys(now).await?;
        let held = self.current();
        let mut published = Vec::with_capacity(records.len());
        let mut active: Vec<Arc<ActiveKey>> = Vec::with_capacity(SigningAlg::ALL.len());
        for record in &records {
            if !oidc::is_published(record.expires_at, now) {
                continue;
            }
            let jwk: Jwk =
                serde_json::from_str(&record.public_jwk).map_err(|_| KeyError::Unreadable {
                    kid: record.kid.clone(),
                    why: "its public key is not a JWK",
                })?;
            published.push(jwk);
            if record.retired_at.is_some() || active.iter().any(|k| k.alg.as_str() == record.alg) {
                continue;
            }
            active.push(match held.active.iter().find(|k| k.kid == record.kid) {
                Some(key) => key.clone(),
                None => Arc::new(self.open(record)?),
            });
        }
        self.install(KeySet {
            active,
            published: JwkSet { keys: published },
        });
        Ok(())
    }

    fn open(&self, record: &SigningKeyRecord) -> Result<ActiveKey, KeyError> {
        let alg = SigningAlg::parse(&record.alg).ok_or_else(|| KeyError::Unreadable {
            kid: record.kid.clone(),
            why: "its algorithm is unknown",
        })?;
        let der = self
            .kek
            .open(&record.kid, &record.encrypted_private_key)
            .ok_or_else(|| KeyError::WrongKek {
                kid: record.kid.clone(),
            })?;
        Ok(ActiveKey {
            kid: record.kid.clone(),
            alg,
            key: encoding_key(alg, &der),
        })
    }

    /// Whether every algorithm has a key loaded (`prepare` has run).
    pub fn is_ready(&self) -> bool {
        let set = self.current();
        SigningAlg::ALL.into_iter().all(|alg| set.can_sign(alg))
    }
}

/// `grantd keys rotate --alg`: a new active key for `alg`; the old one stays published until
/// every ID token it signed has expired (`oidc::retired_key_expires_at`). Running servers pick
/// it up within their reload interval. Returns the new key's id.
pub async fn rotate(
    store: &Store,
    kek: &Kek,
    alg: SigningAlg,
    now: Timestamp,
    id_token_lifetime_secs: i64,
) -> Result<String, KeyError> {
    let new = generate_off_runtime(alg, kek, now).await?;
    let expires = oidc::retired_key_expires_at(now, id_token_lifetime_secs);
    store.rotate_signing_key(&new, expires).await?;
    Ok(new.kid)
}

/// `grantd keys rotate`: every algorithm's key, as `rotate` does each. Returns the new keys'
/// algorithms and ids, in `SigningAlg::ALL`'s order.
pub async fn rotate_all(
    store: &Store,
    kek: &Kek,
    now: Timestamp,
    id_token_lifetime_secs: i64,
) -> Result<Vec<(SigningAlg, String)>, KeyError> {
    let mut made = Vec::with_capacity(SigningAlg::ALL.len());
    for alg in SigningAlg::ALL {
        made.push((
            alg,
            rotate(store, kek, alg, now, id_token_lifetime_secs).await?,
        ));
    }
    Ok(made)
}

/// What `grantd keys list` and the console show of a key: never key material.
#[derive(Debug, Clone)]
pub struct KeySummary {
    pub kid: String,
    pub alg: String,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

pub async fn list(store: &Store, now: Timestamp) -> Result<Vec<KeySummary>, StoreError> {
    Ok(store
        .signing_keys(now)
        .await?
        .into_iter()
        .map(|k| KeySummary {
            kid: k.kid,
            alg: k.alg,
            created_at: k.created_at,
            retired_at: k.retired_at,
            expires_at: k.expires_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_kid() {
        let kek = Kek::generate();
        let sealed = kek.seal("k1", b"private").unwrap_or_default();
        assert_eq!(kek.open("k1", &sealed).as_deref(), Some(&b"private"[..]));
        assert_eq!(kek.open("k2", &sealed), None);
        assert_eq!(Kek::generate().open("k1", &sealed), None);
        assert_eq!(kek.open("k1", &sealed[..5]), None);
        assert!(!sealed.windows(7).any(|w| w == b"private"));
    }

    #[test]
    fn kek_files_are_64_hex_characters() {
        let kek = Kek::generate();
        let contents = kek.to_file_contents();
        let read = Kek::from_file_contents(contents.as_bytes()).map(|k| k.0);
        assert_eq!(read.ok(), Some(kek.0));
        for bad in [&b"short"[..], &[0xff; 64][..], &[b'g'; 64][..]] {
            let refused = Kek::from_file_contents(bad).err().unwrap_or_default();
            assert!(refused.contains("64 hexadecimal"), "{refused}");
        }
        assert_eq!(format!("{kek:?}"), "Kek(..)");
    }

    #[test]
    fn generated_keys_sign_what_their_public_half_verifies() {
        let kek = Kek::generate();
        let ring = KeyRing::new(kek.clone());
        let made: Vec<SigningKeyRecord> = SigningAlg::ALL
            .into_iter()
            .map(|alg| generate(alg, &kek, Timestamp(1)).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        // Both algorithms' keys in one set, as a node holds them: each signs with its own.
        let set = KeySet {
            published: JwkSet::default(),
            active: made
                .iter()
                .map(|record| Arc::new(ring.open(record).unwrap_or_else(|e| panic!("{e}"))))
                .collect(),
        };
        for (alg, new) in SigningAlg::ALL.into_iter().zip(&made) {
            assert!(set.can_sign(alg));
            let claims = oidc::id_token_claims(
                oidc::IdTokenFor {
                    issuer: "https://a.example",
                    client_id: "c",
                    user: oidc::Subject {
                        id: 1,
                        email: "a@example.com",
                        name: "A",
                    },
                    scopes: &grantd_core::Scopes::from_stored("openid"),
                    auth_time: Timestamp(1),
                    nonce: None,
                    access_token: "t",
                    alg,
                    lifetime_secs: 4_000_000_000,
                },
                Timestamp(1),
            );
            let token = set.sign(alg, &claims).unwrap_or_default();
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_str(&new.public_jwk).unwrap_or_else(|e| panic!("{e}"));
            let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap_or_else(|e| panic!("{e}"));
            let mut validation = jsonwebtoken::Validation::new(jose_alg(alg));
            validation.set_audience(&["c"]);
            let decoded = jsonwebtoken::decode::<IdTokenClaims>(&token, &key, &validation);
            assert_eq!(decoded.map(|d| d.claims).ok(), Some(claims), "{alg}");
            let header = jsonwebtoken::decode_header(&token).ok();
            assert_eq!(header.and_then(|h| h.kid), Some(new.kid.clone()), "{alg}");
        }
        assert!(!KeySet::default().can_sign(SigningAlg::Rs256));
    }
}

//! Argon2id for human-chosen passwords, run on the blocking pool behind a semaphore, so a
//! login flood queues here instead of starving the token endpoint.
//!
//! Half the cores (at least one) may hash at once: with every core, a flood of wrong passwords
//! took 87 % of the machine and cut refreshes to a third (docs/performance.md). Each permit
//! owns one Argon2 working area (19 MiB), reused: allocating and freeing it per login made
//! glibc keep hundreds of megabytes.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use grantd_core::secret::Password;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Working areas not in use; there is one per permit, so a permit holder always finds one.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Verified against when the account does not exist, so both cases cost the same (T-071).
    dummy_hash: Arc<str>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = (cores / 2).max(1);
        let mut memory = Vec::new();
        let dummy_hash = hash_with(&mut memory, &Password::from_wire("grantd-dummy".into()));
        let mut pool = vec![memory];
        pool.resize_with(workers, Vec::new);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            memory: Arc::new(Mutex::new(pool)),
            dummy_hash: dummy_hash.unwrap_or_default().into(),
        }
    }

    pub async fn hash(&self, password: &Password) -> Option<String> {
        let password = password.clone();
        self.run(move |memory| hash_with(memory, &password))
            .await
            .flatten()
    }

    /// `stored` is `None` for an unknown account: the work is done all the same.
    pub async fn verify(&self, stored: Option<&str>, password: &Password) -> bool {
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let matched = self
            .run(move |memory| verify_with(memory, &stored, &password))
            .await
            .unwrap_or(false);
        known && matched
    }

    /// Runs `work` on the blocking pool with a permit and a working area.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.permits.acquire().await.ok()?;
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = pool.lock().ok()?.pop().unwrap_or_default();
            let result = work(&mut memory);
            if let Ok(mut pool) = pool.lock() {
                pool.push(memory);
            }
            Some(result)
        })
        .await
        .ok()
        .flatten()
    }
}

fn hash_with(memory: &mut Vec<Block>, password: &Password) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).ok()?;
    let params = Params::default();
    let mut out = [0; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    compute(memory, &argon2, password, salt_bytes, &mut out)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).ok()?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).ok()?),
    };
    Some(hash.to_string())
}

/// Checks `password` against a PHC string with the parameters it names.
fn verify_with(memory: &mut Vec<Block>, stored: &str, password: &Password) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    compute(memory, &argon2, password, salt, out).is_some()
        // `Output`'s equality is constant-time.
        && Output::new(out).is_ok_and(|computed| computed == expected)
}

fn compute(
    memory: &mut Vec<Block>,
    argon2: &Argon2,
    password: &Password,
    salt: &[u8],
    out: &mut [u8],
) -> Option<()> {
    let blocks = argon2.params().block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    argon2
        .hash_password_into_with_memory(
            password.expose().as_bytes(),
            salt,
            out,
            &mut memory[..blocks],
        )
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use argon2::PasswordVerifier;

    use super::*;

    fn password(s: &str) -> Password {
        Password::from_wire(s.into())
    }

    #[test]
    fn hashes_are_standard_argon2id_and_verify_both_ways() {
        let mut memory = Vec::new();
        let stored = hash_with(&mut memory, &password("hunter2")).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        // The argon2 crate's own verifier accepts what this module writes ...
        let parsed = PasswordHash::new(&stored).unwrap();
        assert!(Argon2::default()
            .verify_password(b"hunter2", &parsed)
            .is_ok());
        // ... and this module accepts what the crate writes, with other parameters too.
        let other = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let foreign = argon2::PasswordHasher::hash_password(
            &other,
            b"hunter2",
            &SaltString::generate(&mut OsRng),
        )
        .unwrap()
        .to_string();
        for stored in [&stored, &foreign] {
            assert!(verify_with(&mut memory, stored, &password("hunter2")));
            assert!(!verify_with(&mut memory, stored, &password("hunter3")));
        }
        assert!(!verify_with(
            &mut memory,
            "not a hash",
            &password("hunter2")
        ));
    }

    #[tokio::test]
    async fn verify_reuses_the_working_areas() {
        let passwords = Passwords::new();
        let stored = passwords.hash(&password("pw")).await.unwrap();
        assert!(passwords.verify(Some(&stored), &password("pw")).await);
        assert!(!passwords.verify(Some(&stored), &password("px")).await);
        assert!(!passwords.verify(None, &password("pw")).await);
        let pool = passwords.memory.lock().unwrap();
        assert_eq!(pool.len(), passwords.permits.available_permits());
        assert!(pool
            .iter()
            .any(|m| m.len() == Params::default().block_count()));
    }
}

//! Argon2id for human-chosen passwords, run on the blocking pool behind a semaphore, so a
//! login flood queues here instead of starving the token endpoint of threads.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use grantd_core::secret::Password;

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
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
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            dummy_hash: hash_blocking(&Password::from_wire("grantd-dummy".into()))
                .unwrap_or_default()
                .into(),
        }
    }

    pub async fn hash(&self, password: &Password) -> Option<String> {
        let _permit = self.permits.acquire().await.ok()?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .ok()
            .flatten()
    }

    /// `stored` is `None` for an unknown account: the work is done all the same.
    pub async fn verify(&self, stored: Option<&str>, password: &Password) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = password.clone();
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

fn hash_blocking(password: &Password) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

//! Argon2id for human-chosen passwords, on threads of its own at the lowest CPU priority, so a
//! login flood queues here instead of starving the token endpoint.
//!
//! Half the cores (at least one) hash at once, at nice 19: with a thread per core at normal
//! priority, a flood of wrong passwords took 87 % of the machine and cut refreshes to a third
//! (docs/performance.md); at the lowest priority the token endpoint's threads come first and
//! logins get the CPU they leave. Each thread owns one Argon2 working area (19 MiB), reused:
//! allocating and freeing it per login made glibc keep hundreds of megabytes.
//!
//! The queue is bounded where requests enter it: the routes that check or set a password are
//! admitted up to `[http] password_queue` at once (`admission`), and beyond that answered 503
//! with `Retry-After` at once, never left to wait without bound.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use thread_priority::ThreadPriority;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use grantd_core::secret::Password;

use crate::app::App;
use crate::error::ErrorPage;
use crate::pages;
use crate::routes::BODY_LIMIT;

/// Hashes waiting for a thread, at least; callers not admitted by `admit` (the command line)
/// wait for room beyond this.
const QUEUE: usize = 256;
/// Seconds a client is asked to wait when the queue is full: a few hashes' time.
const RETRY_AFTER_SECS: &str = "1";

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    /// Verified against when the account does not exist, so both cases cost the same (T-071).
    dummy_hash: Arc<str>,
    /// Places for requests that check or set a password (`admit`).
    places: Arc<Semaphore>,
}

/// A request's place among the password checks admitted at once; given back on drop.
pub struct Admitted {
    _place: OwnedSemaphorePermit,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

impl Passwords {
    pub fn new() -> Self {
        Self::with_queue(crate::HttpLimits::default().password_queue)
    }

    /// Hashing threads, with `queue` places for requests (`admit`).
    pub fn with_queue(places: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut memory = Vec::new();
        let dummy_hash = hash_with(&mut memory, &Password::from_wire("grantd-dummy".into()));
        let places = places.clamp(1, Semaphore::MAX_PERMITS);
        // Room for every admitted request's job, so an admitted request never waits to queue.
        let (jobs, queue) = mpsc::channel(QUEUE.max(places));
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..(cores / 2).max(1) {
            let queue = queue.clone();
            let memory = std::mem::take(&mut memory);
            let spawned = std::thread::Builder::new()
                .name("grantd-argon2".into())
                .spawn(move || hash_passwords(&queue, memory));
            // Without any thread the queue closes, and password checks fail rather than hang.
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        Self {
            jobs,
            dummy_hash: dummy_hash.unwrap_or_default().into(),
            places: Arc::new(Semaphore::new(places)),
        }
    }

    /// A place for one request that checks or sets a password, or `None` when every place is
    /// taken (the caller answers 503).
    pub fn admit(&self) -> Option<Admitted> {
        self.places
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|place| Admitted { _place: place })
    }

    /// Whether the dummy hash exists with the parameters real hashes get; `serve` refuses to
    /// start without it, since checking an unknown account against nothing would answer faster
    /// than a wrong password and tell which emails have accounts (T-071).
    pub fn check_dummy(&self) -> Result<(), String> {
        let parsed = PasswordHash::new(&self.dummy_hash)
            .map_err(|e| format!("cannot make the dummy password hash: {e}"))?;
        let real = Params::default();
        match Params::try_from(&parsed) {
            Ok(params)
                if (params.m_cost(), params.t_cost(), params.p_cost())
                    == (real.m_cost(), real.t_cost(), real.p_cost()) =>
            {
                Ok(())
            }
            _ => Err("the dummy password hash does not have the real parameters".into()),
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

    /// Runs `work` on a hashing thread, with that thread's working area.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = reply.send(work(memory));
        });
        self.jobs.send(job).await.ok()?;
        answer.await.ok()
    }
}

/// The layer on routes that check or set a password: the form is read first (a client that
/// sends it slowly holds no place meanwhile), then the request takes a place or is answered
/// 503 with `Retry-After`; the place is held until its answer is ready.
pub async fn admission(State(app): State<App>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return ErrorPage::bad_request("The form is too large or could not be read.")
            .into_response();
    };
    let Some(admitted) = app.passwords.admit() else {
        tracing::debug!("password queue full; answering 503");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, RETRY_AFTER_SECS)],
            Html(pages::error(
                "The server is busy checking passwords. Please try again in a moment.",
            )),
        )
            .into_response();
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    drop(admitted);
    response
}

/// A hashing thread: takes jobs until every `Passwords` handle is gone.
fn hash_passwords(queue: &Mutex<mpsc::Receiver<Job>>, mut memory: Vec<Block>) {
    if let Err(e) = thread_priority::set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(error = ?e, "password hashing runs at normal CPU priority");
    }
    loop {
        let job = match queue.lock() {
            Ok(mut queue) => queue.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else {
            return;
        };
        job(&mut memory);
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
    async fn hashing_runs_at_the_lowest_priority_and_reuses_its_working_area() {
        let passwords = Passwords::new();
        let stored = passwords.hash(&password("pw")).await.unwrap();
        assert!(passwords.verify(Some(&stored), &password("pw")).await);
        assert!(!passwords.verify(Some(&stored), &password("px")).await);
        assert!(!passwords.verify(None, &password("pw")).await);
        assert_eq!(passwords.check_dummy(), Ok(()));
        let (nice, reused) = passwords
            .run(move |memory| {
                let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
                // stat(5): after the command name, the state is field 3 and nice field 19.
                let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
                // A second check in the same area: no new allocation.
                verify_with(memory, &stored, &password("pw"));
                let area = (memory.as_ptr(), memory.len());
                verify_with(memory, &stored, &password("pw"));
                let reused = area == (memory.as_ptr(), Params::default().block_count());
                (fields[16].parse::<i32>().unwrap(), reused)
            })
            .await
            .unwrap();
        assert_eq!(nice, 19);
        assert!(reused);
    }
}

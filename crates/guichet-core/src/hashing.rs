//! Password hashing with Argon2id, off the async threads.
//!
//! Each hash costs 19 MiB and tens of milliseconds of CPU. [`Argon2Pool`] runs them on
//! a fixed set of threads (one per core) fed by a bounded queue: a flood of logins waits
//! in the queue (a few bytes each) instead of multiplying memory, and is refused with
//! [`HashError::Busy`] once the queue is full. The async threads only await the answer,
//! so other pages keep being served.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash as PhcHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::oneshot;

use crate::password::PasswordHash;

/// The outcome of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password is right.
    Match {
        /// When the stored hash used older parameters: a new hash of the same password
        /// with the current ones, to store in its place.
        upgraded: Option<PasswordHash>,
    },
    /// The password is wrong (or the stored hash unreadable).
    Mismatch,
}

/// Why hashing could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many hashes are waiting already: try again shortly.
    #[error("the password hashing queue is full")]
    Busy,
    /// The hashing threads are gone or the hasher failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords.
#[async_trait]
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    /// Hashes a new password with the current parameters.
    async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError>;

    /// Checks `password` against `hash`, in time that does not depend on where they
    /// differ. A match against a hash with older parameters also returns the upgraded
    /// hash, so that the password itself never has to be kept for a second call.
    async fn verify(&self, password: SecretString, hash: PasswordHash) -> Result<Verification, HashError>;
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Cost {
    /// OWASP's recommendation, and guichet's default: m=19456 KiB, t=2, p=1.
    pub const RECOMMENDED: Self = Self { memory_kib: 19_456, iterations: 2, parallelism: 1 };

    fn argon2(self) -> Result<Argon2<'static>, HashError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| HashError::Failed(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes on the calling thread. Blocks for the whole cost of a hash.
    pub fn hash_blocking(self, password: &str) -> Result<PasswordHash, HashError> {
        let salt = SaltString::encode_b64(&crate::token::random_bytes::<16>())
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let phc =
            self.argon2()?.hash_password(password.as_bytes(), &salt).map_err(|e| HashError::Failed(e.to_string()))?;
        Ok(PasswordHash::from_phc(phc.to_string()))
    }

    /// Verifies on the calling thread, with the parameters written in `hash`, and
    /// rehashes with `self` when those parameters are not `self`.
    pub fn verify_blocking(self, password: &str, hash: &PasswordHash) -> Verification {
        let Ok(parsed) = PhcHash::new(hash.as_phc()) else {
            return Verification::Mismatch;
        };
        // The parameters come from the stored hash; `self` only decides whether it is stale.
        if Argon2::default().verify_password(password.as_bytes(), &parsed).is_err() {
            return Verification::Mismatch;
        }
        let upgraded = if self.matches(&parsed) { None } else { self.hash_blocking(password).ok() };
        Verification::Match { upgraded }
    }

    fn matches(self, parsed: &PhcHash<'_>) -> bool {
        let Ok(params) = Params::try_from(parsed) else {
            return false;
        };
        parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(Version::V0x13.into())
            && params.m_cost() == self.memory_kib
            && params.t_cost() == self.iterations
            && params.p_cost() == self.parallelism
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of hashing threads behind a bounded queue.
#[derive(Debug, Clone)]
pub struct Argon2Pool {
    cost: Argon2Cost,
    queue: SyncSender<Job>,
    threads: usize,
}

impl Argon2Pool {
    /// Starts `threads` hashing threads (at least one) with room for `queue` waiting jobs.
    pub fn start(cost: Argon2Cost, threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = Arc::clone(&receiver);
            let spawned =
                std::thread::Builder::new().name(format!("guichet-hash-{n}")).spawn(move || run_worker(&receiver));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        Self { cost, queue: sender, threads }
    }

    /// One thread per core, and a queue of 64 jobs per thread.
    pub fn sized_to_cores(cost: Argon2Cost) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::start(cost, cores, cores * 64)
    }

    /// How many hashing threads run.
    pub fn threads(&self) -> usize {
        self.threads
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HashError::Busy),
            Err(TrySendError::Disconnected(_)) => {
                return Err(HashError::Failed("no hashing thread left".into()));
            }
        }
        answer.await.map_err(|_| HashError::Failed("a hashing thread stopped".into()))
    }
}

fn run_worker(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(receiver) = receiver.lock() else {
                return;
            };
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job();
    }
}

#[async_trait]
impl PasswordHasher for Argon2Pool {
    async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        let cost = self.cost;
        self.run(move || cost.hash_blocking(password.expose_secret())).await?
    }

    async fn verify(&self, password: SecretString, hash: PasswordHash) -> Result<Verification, HashError> {
        let cost = self.cost;
        self.run(move || cost.verify_blocking(password.expose_secret(), &hash)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Cost = Argon2Cost { memory_kib: 64, iterations: 1, parallelism: 1 };

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let pool = Argon2Pool::start(CHEAP, 1, 4);
        let hash = pool.hash(secret("cheval agrafe pile")).await.expect("hash");
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            pool.verify(secret("cheval agrafe pile"), hash.clone()).await.ok(),
            Some(Verification::Match { upgraded: None })
        );
        assert_eq!(pool.verify(secret("cheval agrafe pilE"), hash).await.ok(), Some(Verification::Mismatch));
    }

    #[tokio::test]
    async fn hashes_with_older_parameters_ask_to_be_upgraded() {
        let old = Argon2Cost { memory_kib: 32, iterations: 1, parallelism: 1 }.hash_blocking("secret").expect("hash");
        let pool = Argon2Pool::start(CHEAP, 1, 4);
        let Ok(Verification::Match { upgraded: Some(new) }) = pool.verify(secret("secret"), old).await else {
            panic!("an old hash should be upgraded");
        };
        assert!(new.as_phc().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(pool.verify(secret("secret"), new).await.ok(), Some(Verification::Match { upgraded: None }));
    }

    #[test]
    fn the_recommended_cost_is_owasps() {
        let hash = Argon2Cost::RECOMMENDED.hash_blocking("x").expect("hash");
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[test]
    fn an_unreadable_hash_never_matches() {
        assert_eq!(CHEAP.verify_blocking("x", &PasswordHash::from_phc("not a hash".into())), Verification::Mismatch);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_growing() {
        let pool = Argon2Pool::start(Argon2Cost::RECOMMENDED, 1, 1);
        let attempts = (0..8).map(|_| pool.hash(secret("x")));
        let results = futures_util::future::join_all(attempts).await;
        assert!(results.iter().any(|r| matches!(r, Err(HashError::Busy))));
        assert!(results.iter().any(Result::is_ok));
    }
}

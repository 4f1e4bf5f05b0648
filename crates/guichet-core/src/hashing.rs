//! Password hashing with Argon2id, off the async threads.
//!
//! Each hash costs 19 MiB and tens of milliseconds of CPU. [`Argon2Pool`] runs them on
//! a fixed set of threads (one per core) fed by a bounded queue: a flood of logins waits
//! in the queue (a few bytes each) instead of multiplying memory, and is refused with
//! [`HashError::Busy`] once the queue is full. The async threads only await the answer,
//! so other pages keep being served.
//!
//! A stored hash much costlier than ours (an import from a site that used Argon2 with
//! 256 MiB, or bcrypt at cost 14) goes to a lane of its own, one thread with a short
//! queue: guesses on such accounts wait there (and, with the login's one attempt at a
//! time per identifier, at most one per account), and every other member's login keeps
//! the main threads. The lane is shared by all such accounts: a robot guessing on
//! several of them at once can keep their owners waiting, never anyone else.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{Output, ParamsString, PasswordHash as PhcHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

    fn params(self) -> Result<Params, HashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(Params::DEFAULT_OUTPUT_LEN))
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes on the calling thread with a fresh work area. Blocks for the whole cost.
    pub fn hash_blocking(self, password: &str) -> Result<PasswordHash, HashError> {
        self.hash_with(&mut WorkArea::default(), password)
    }

    /// Verifies on the calling thread with a fresh work area.
    pub fn verify_blocking(self, password: &str, hash: &PasswordHash) -> Verification {
        self.verify_with(&mut WorkArea::default(), password, hash)
    }

    /// Hashes in `area`, so that a hashing thread reuses one buffer for every hash.
    fn hash_with(self, area: &mut WorkArea, password: &str) -> Result<PasswordHash, HashError> {
        let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
        let params = self.params()?;
        let salt = SaltString::encode_b64(&crate::token::random_bytes::<16>()).map_err(|e| failed(&e))?;
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_raw,
                &mut output,
                area.blocks(params.block_count()),
            )
            .map_err(|e| failed(&e))?;
        let phc = PhcHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
        };
        Ok(PasswordHash::from_phc(phc.to_string()))
    }

    /// Verifies in `area` with the parameters written in `hash`, and rehashes with
    /// `self` when those parameters are not `self`. A legacy hash (brought over by an
    /// import, see [`crate::legacy`]) is checked with its own algorithm, then one Argon2id
    /// is spent either way: the rehash that replaces it, or the same work thrown away, so
    /// that a cheap legacy format answers no faster than our own hash.
    fn verify_with(self, area: &mut WorkArea, password: &str, hash: &PasswordHash) -> Verification {
        match crate::legacy::LegacyHash::parse(hash.as_phc()) {
            Ok(None) => {}
            Ok(Some(legacy)) => {
                let matched = legacy.verify(password);
                let rehash = self.hash_with(area, password).ok();
                return if matched { Verification::Match { upgraded: rehash } } else { Verification::Mismatch };
            }
            Err(_) => {
                let _ = self.hash_with(area, password);
                return Verification::Mismatch;
            }
        }
        let Some(matched) = Self::check(area, password, hash) else {
            return Verification::Mismatch;
        };
        let upgraded = if matched.is_current(self) { None } else { self.hash_with(area, password).ok() };
        Verification::Match { upgraded }
    }

    /// `Some(parameters of the hash)` when the password matches.
    fn check(area: &mut WorkArea, password: &str, hash: &PasswordHash) -> Option<StoredParams> {
        let parsed = PhcHash::new(hash.as_phc()).ok()?;
        let algorithm = Algorithm::new(parsed.algorithm.as_str()).ok()?;
        let version = parsed.version.map_or(Some(Version::V0x13), |v| Version::try_from(v).ok())?;
        let params = Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt_bytes = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_bytes).ok()?;
        let mut output = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut output, area.blocks(params.block_count()))
            .ok()?;
        // `Output`'s equality is constant-time.
        (Output::new(&output).ok()? == expected).then_some(StoredParams { algorithm, version, params })
    }
}

/// The parameters a stored hash was made with.
struct StoredParams {
    algorithm: Algorithm,
    version: Version,
    params: Params,
}

impl StoredParams {
    fn is_current(&self, cost: Argon2Cost) -> bool {
        self.algorithm == Algorithm::Argon2id
            && self.version == Version::V0x13
            && self.params.m_cost() == cost.memory_kib
            && self.params.t_cost() == cost.iterations
            && self.params.p_cost() == cost.parallelism
    }
}

/// The memory one hash works in (19 MiB at the recommended cost), kept by each hashing
/// thread across hashes: allocating and freeing it for every login leaves the
/// allocator holding several copies, and memory grows with the login rate.
#[derive(Default)]
struct WorkArea(Vec<Block>);

impl WorkArea {
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0 = vec![Block::default(); count];
        }
        &mut self.0[..count]
    }
}

/// Whether checking `hash` costs much more than one of ours (over eight times the work,
/// or over four times the memory: PHP's default Argon2id, 64 MiB and t=4, is not): such
/// checks take the costly lane.
pub fn is_costly(cost: Argon2Cost, hash: &PasswordHash) -> bool {
    if let Ok(Some(legacy)) = crate::legacy::LegacyHash::parse(hash.as_phc()) {
        return legacy.is_costly();
    }
    let Some(params) = PhcHash::new(hash.as_phc()).ok().and_then(|phc| Params::try_from(&phc).ok()) else {
        return false;
    };
    let work = |m: u32, t: u32, p: u32| u64::from(m) * u64::from(t) * u64::from(p.max(1));
    params.m_cost() > cost.memory_kib.saturating_mul(2)
        || work(params.m_cost(), params.t_cost(), 1) > work(cost.memory_kib, cost.iterations, 1).saturating_mul(4)
}

type Job = Box<dyn FnOnce(&mut WorkArea) + Send>;

/// Threads fed by one bounded queue.
#[derive(Debug, Clone)]
struct Lane {
    queue: SyncSender<Job>,
    threads: usize,
}

impl Lane {
    fn start(name: &str, threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..threads {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new().name(format!("{name}-{n}")).spawn(move || run_worker(&receiver));
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        Self { queue: sender, threads }
    }
}

/// A fixed pool of hashing threads behind a bounded queue, and a lane of one thread for
/// costly stored hashes.
#[derive(Debug, Clone)]
pub struct Argon2Pool {
    cost: Argon2Cost,
    main: Lane,
    costly: Lane,
}

impl Argon2Pool {
    /// Starts `threads` hashing threads (at least one) with room for `queue` waiting jobs,
    /// and the costly lane (one thread, eight waiting).
    pub fn start(cost: Argon2Cost, threads: usize, queue: usize) -> Self {
        Self {
            cost,
            main: Lane::start("guichet-hash", threads, queue),
            costly: Lane::start("guichet-hash-costly", 1, 8),
        }
    }

    /// One thread per core, and a queue of 64 jobs per thread.
    pub fn sized_to_cores(cost: Argon2Cost) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::start(cost, cores, cores * 64)
    }

    /// How many hashing threads run (besides the costly lane's).
    pub fn threads(&self) -> usize {
        self.main.threads
    }

    async fn run<T: Send + 'static>(
        lane: &Lane,
        work: impl FnOnce(&mut WorkArea) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, answer) = oneshot::channel();
        let queued = std::time::Instant::now();
        let job: Job = Box::new(move |area| {
            metrics::gauge!("guichet_hash_queue_depth").decrement(1.0);
            metrics::histogram!("guichet_hash_wait_seconds").record(queued.elapsed().as_secs_f64());
            let _ = reply.send(work(area));
        });
        metrics::gauge!("guichet_hash_queue_depth").increment(1.0);
        match lane.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::gauge!("guichet_hash_queue_depth").decrement(1.0);
                metrics::counter!("guichet_hash_refused_total").increment(1);
                return Err(HashError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                metrics::gauge!("guichet_hash_queue_depth").decrement(1.0);
                return Err(HashError::Failed("no hashing thread left".into()));
            }
        }
        answer.await.map_err(|_| HashError::Failed("a hashing thread stopped".into()))
    }
}

fn run_worker(receiver: &Mutex<Receiver<Job>>) {
    let mut area = WorkArea::default();
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
        job(&mut area);
    }
}

#[async_trait]
impl PasswordHasher for Argon2Pool {
    async fn hash(&self, password: SecretString) -> Result<PasswordHash, HashError> {
        let cost = self.cost;
        Self::run(&self.main, move |area| cost.hash_with(area, password.expose_secret())).await?
    }

    async fn verify(&self, password: SecretString, hash: PasswordHash) -> Result<Verification, HashError> {
        let cost = self.cost;
        let lane = if is_costly(cost, &hash) { &self.costly } else { &self.main };
        Self::run(lane, move |area| cost.verify_with(area, password.expose_secret(), &hash)).await
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
    fn hashes_made_by_the_argon2_crates_own_api_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let params = Params::new(64, 1, 1, None).expect("params");
        let phc =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"secret", &salt).expect("hash");
        let hash = PasswordHash::from_phc(phc.to_string());
        assert_eq!(CHEAP.verify_blocking("secret", &hash), Verification::Match { upgraded: None });
        assert_eq!(CHEAP.verify_blocking("Secret", &hash), Verification::Mismatch);
    }

    #[test]
    fn argon2i_hashes_verify_and_are_upgraded_to_argon2id() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let params = Params::new(64, 1, 1, None).expect("params");
        let phc =
            Argon2::new(Algorithm::Argon2i, Version::V0x13, params).hash_password(b"secret", &salt).expect("hash");
        let Verification::Match { upgraded: Some(new) } =
            CHEAP.verify_blocking("secret", &PasswordHash::from_phc(phc.to_string()))
        else {
            panic!("an argon2i hash should verify and be upgraded");
        };
        assert!(new.as_phc().starts_with("$argon2id$"));
    }

    #[test]
    fn a_legacy_hash_verifies_once_and_comes_back_as_argon2id() {
        let phpass = PasswordHash::from_phc("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into());
        let Verification::Match { upgraded: Some(new) } = CHEAP.verify_blocking("test12345", &phpass) else {
            panic!("a phpass hash should verify and be upgraded");
        };
        assert!(new.as_phc().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(CHEAP.verify_blocking("test12345", &new), Verification::Match { upgraded: None });
        assert_eq!(CHEAP.verify_blocking("test12346", &phpass), Verification::Mismatch);
    }

    #[test]
    fn an_unreadable_hash_never_matches() {
        assert_eq!(CHEAP.verify_blocking("x", &PasswordHash::from_phc("not a hash".into())), Verification::Mismatch);
    }

    #[tokio::test]
    async fn costly_hashes_wait_in_their_own_lane() {
        let costly =
            Argon2Cost { memory_kib: 8 * 1024, iterations: 8, parallelism: 1 }.hash_blocking("x").expect("hash");
        assert!(is_costly(CHEAP, &costly));
        assert!(!is_costly(Argon2Cost::RECOMMENDED, &Argon2Cost::RECOMMENDED.hash_blocking("x").expect("hash")));
        let bcrypt14 = PasswordHash::from_phc(format!("$2y$14${}", "a".repeat(53)));
        assert!(is_costly(Argon2Cost::RECOMMENDED, &bcrypt14));
        // The costly lane full of a robot's tries, a bystander's cheap check still goes.
        let pool = Argon2Pool::start(CHEAP, 1, 4);
        let cheap = pool.hash(secret("cheval agrafe pile")).await.expect("hash");
        let robot = (0..16).map(|_| pool.verify(secret("wrong"), costly.clone()));
        let robot = futures_util::future::join_all(robot);
        let bystander = async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            pool.verify(secret("cheval agrafe pile"), cheap.clone()).await
        };
        let (robot, bystander) = tokio::join!(robot, bystander);
        assert!(matches!(bystander, Ok(Verification::Match { .. })), "{bystander:?}");
        assert!(robot.iter().any(|r| matches!(r, Err(HashError::Busy))), "the costly lane is bounded");
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

//! The raw Argon2id rate of this machine with guichet's parameters: one thread per core
//! hashing for a few seconds, nothing else. `bench/run.sh` sets guichet's login rate
//! beside it.
//!
//! Usage: `cargo run --release -p guichet-core --example hash_rate [SECONDS]`

use std::time::{Duration, Instant};

use guichet_core::hashing::Argon2Cost;

fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let hash = Argon2Cost::RECOMMENDED.hash_blocking("correct horse battery staple").ok();
    let Some(hash) = hash else {
        eprintln!("hashing failed");
        std::process::exit(1);
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    // A verification costs what a hash costs; it is what a login does.
                    let _ = Argon2Cost::RECOMMENDED.verify_blocking("correct horse battery staple", &hash);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!("threads={threads} verifications={total} seconds={elapsed:.2} rate={:.1}/s", total as f64 / elapsed);
}

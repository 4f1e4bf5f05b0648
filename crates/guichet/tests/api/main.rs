//! Black-box tests: the real server on a random port, a fresh database, real HTTP.
//! One test binary for the whole crate (modules below), to keep builds short.
#![expect(
    clippy::unwrap_used,
    reason = "a test stops at the first surprise (clippy.toml allows it only inside #[test] functions)"
)]

#[macro_use]
mod helpers;

mod accessibility;
mod apache;
mod authority;
mod browser;
mod cli;
mod connections;
mod console;
mod desk;
mod devices;
mod faults;
mod instances;
mod lockout;
mod login;
mod oidc;
mod passkeys;
mod privacy;
mod proxy;
mod recovery;
mod rescue;
mod second_factor;
mod security;
mod sessions;
mod sso;
mod typography;
mod upstream;
mod workday;

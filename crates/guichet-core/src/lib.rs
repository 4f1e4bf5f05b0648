//! guichet's domain: who members are, how they prove it, and when the door stays shut.
//!
//! Nothing here knows about HTTP, SQL or SMTP. The outside world plugs in through the
//! small traits of [`ports`] (storage), [`hashing::PasswordHasher`] and [`clock::Clock`],
//! so every rule can be tested with an in-memory fake and a clock that moves on demand.

pub mod account;
pub mod account_changes;
pub mod audit;
pub mod catalogue;
pub mod clock;
pub mod codes;
pub mod console;
pub mod credentials;
pub mod desk;
pub mod device;
pub mod french;
pub mod gate;
pub mod groups;
pub mod hashing;
pub mod housekeeping;
pub mod import;
pub mod keys;
pub mod legacy;
pub mod lockout;
pub mod login;
pub mod mail;
pub mod me;
pub mod members;
pub mod oidc;
pub mod own_address;
pub mod passkeys;
pub mod password;
pub mod personal_data;
pub mod ports;
pub mod postman;
#[cfg(test)]
mod properties;
pub mod recovery;
pub mod redact;
pub mod redirect;
pub mod retention;
pub mod second_factor;
pub mod secours;
pub mod session;
pub mod token;
pub mod typography;
pub mod upstream;

pub use jiff::{SignedDuration, Timestamp};

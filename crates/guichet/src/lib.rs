//! The `guichet` binary's library: configuration, wiring, and the commands. `main` only
//! parses the command line and calls into here; tests build the same application.

pub mod app;
mod backchannel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod english;
#[cfg(test)]
mod properties;
pub mod upstream;

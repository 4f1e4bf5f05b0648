//! `sqlx::migrate!` embeds the migrations when this crate compiles: a migration added
//! without a change to the sources must still rebuild it (otherwise the binary silently
//! lacks it).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

//! Rebuilds when an embedded migration changes: `sqlx::migrate!` reads migrations/ at compile
//! time, and cargo does not watch that folder by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

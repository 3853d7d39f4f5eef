//! Prints `export.sh`: every environment variable with its default and meaning.
//!
//! `cargo run --example export_sh > export.sh`

fn main() {
    print!("{}", tonic_blueprint::config::Loader::export_sh());
}

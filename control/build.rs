//! Rebuilds the `freya` binary when the dashboard's checked-in build changes: `include_dir!`
//! alone does not tell cargo which files it read.

fn main() {
    println!("cargo:rerun-if-changed=dashboard/dist");
}

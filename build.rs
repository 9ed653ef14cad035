//! Sets `cfg(shmval_root)` when the build runs as root, so tests that need root (changing
//! owners, becoming another user) run there and show as ignored elsewhere instead of
//! passing without checking anything.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(shmval_root)");
    // The effective uid is the second number of the `Uid:` line of /proc/self/status.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        });
    if euid.as_deref() == Some("0") {
        println!("cargo:rustc-cfg=shmval_root");
    }
    // Rerun when the build script changes or the user is likely to have (a build as
    // another user in the same target directory); not on every source change.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=USER");
    println!("cargo:rerun-if-env-changed=HOME");
}

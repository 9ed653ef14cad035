//! The `shmval demo` command, run as a user runs it.

use std::process::Command;

fn shmval() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmval"))
}

#[test]
fn demo_ends_with_the_pool_at_its_baseline() {
    let out = shmval()
        .args(["demo", "--ops", "5000", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["back_to_baseline"], true);
    assert_eq!(report["workers"], 2);
    assert_eq!(report["after"]["used"], 0);
    assert_eq!(report["after"]["free_blocks"], 1);
    assert!(report["after"]["high_water"].as_u64().unwrap() > 0);
    let region = report["region"].as_str().unwrap();
    assert!(
        !std::path::Path::new("/dev/shm").join(region).exists(),
        "the demo left its region behind"
    );
}

#[test]
fn demo_prints_a_readable_summary() {
    let out = shmval()
        .args(["demo", "--ops", "2000", "--workers", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("6000 alloc/free pairs from 3 processes"),
        "{text}"
    );
    assert!(text.contains("pool back to its baseline: yes"), "{text}");
}

#[test]
fn a_region_too_small_is_a_clear_error() {
    let out = shmval().args(["demo", "--bytes", "100"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad region size 100"), "{err}");
}

#[test]
fn a_bad_argument_is_named_and_fails() {
    let out = shmval().args(["demo", "--ops", "many"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'many'"));
}

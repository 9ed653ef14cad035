//! Building a region out of sight: a creator killed while building leaves nothing in
//! `/dev/shm`; where a region is built under a private name instead (the fallback for
//! systems without `O_TMPFILE`), what a killed builder leaves is listed and removed, and a
//! private name held by someone else is a clear error.

mod common;

use std::time::Duration;

use common::{role_entry, shm_files_of, spawn_role_env, ChildGuard, TestName, NOBODY};
use shmval::fault::{self, Notice};
use shmval::region::{self, CreateOptions, RegionError, RegionName, UnfinishedBuild};

const SIZE: u64 = 1 << 20;

/// The pause points inside a build: after the header is written, and after the mapping.
const POINTS: [&str; 2] = ["region.build.sized", "region.build.mapped"];

/// Arms the pause point `args[1]` and creates region `args[0]`, under a private name if
/// `args[2]` says so. Reaching the point, it reports through the parent's notice and
/// sleeps until killed.
fn build_and_pause(args: &[String]) {
    let name = RegionName::new(args[0].clone()).unwrap();
    fault::arm(&args[1]);
    let r = CreateOptions::new()
        .private_build_name(args[2] == "private")
        .create(&name, SIZE);
    panic!("the build did not pause at {}: {r:?}", args[1]);
}

/// Starts a child that builds `name` and pauses at `point`; returns it once it is there,
/// with its pid.
fn paused_builder(name: &TestName, point: &str, private: bool) -> (ChildGuard, u32) {
    let notice = Notice::new().unwrap();
    let how = if private { "private" } else { "unnamed" };
    let child = spawn_role_env(
        "build_and_pause",
        &[name.as_str(), point, how],
        &[notice.env()],
    );
    let reached = notice
        .wait(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the builder did not reach {point}"));
    assert_eq!(reached.point, point);
    assert_eq!(reached.pid, child.pid());
    (child, reached.pid)
}

/// The unfinished builds of region `name`.
fn builds_of(name: &RegionName) -> Vec<UnfinishedBuild> {
    region::unfinished_builds()
        .unwrap()
        .into_iter()
        .filter(|b| b.region == *name)
        .collect()
}

/// A pid that no process has now: that of a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn a_builder_killed_while_building_leaves_no_file() {
    for point in POINTS {
        let name = TestName::new("killed-build");
        let (child, _) = paused_builder(&name, point, false);
        // The region is built in an unnamed file: nothing shows while it is built...
        assert!(shm_files_of(&name).is_empty(), "{:?}", shm_files_of(&name));
        child.kill();
        // ...and nothing is left when its builder dies.
        assert!(shm_files_of(&name).is_empty(), "{:?}", shm_files_of(&name));
        assert!(builds_of(&name).is_empty());
    }
}

#[test]
fn a_fallback_build_left_by_a_killed_builder_is_listed_and_removed() {
    for point in POINTS {
        let name = TestName::new("killed-fallback");
        let (child, pid) = paused_builder(&name, point, true);
        let files = shm_files_of(&name);
        assert_eq!(files.len(), 1, "{files:?}");
        let file = &files[0];
        assert!(
            file.starts_with(&format!("{}.tmp-{pid}-", name.as_str())),
            "{file}"
        );
        let builds = builds_of(&name);
        assert_eq!(builds.len(), 1, "{builds:?}");
        assert_eq!(&builds[0].file_name, file);
        assert_eq!(builds[0].builder_pid, pid);
        assert_eq!(builds[0].bytes, SIZE);
        assert!(builds[0].builder_alive);
        // A build in progress is not removed.
        assert!(!region::remove_unfinished_build(file).unwrap());
        child.kill();
        let builds = builds_of(&name);
        assert_eq!(builds.len(), 1, "{builds:?}");
        assert!(!builds[0].builder_alive);
        assert!(region::remove_unfinished_build(file).unwrap());
        assert!(shm_files_of(&name).is_empty(), "{:?}", shm_files_of(&name));
        assert!(!region::remove_unfinished_build(file).unwrap());
    }
}

#[test]
fn only_builds_count_as_unfinished_builds() {
    let name = TestName::new("not-a-build");
    let dead = dead_pid();
    // An empty file under a private name of a dead builder is a build killed at once.
    let empty = format!("{}.tmp-{dead}-0", name.as_str());
    std::fs::write(std::path::Path::new("/dev/shm").join(&empty), b"").unwrap();
    // Anything else under such a name is not ours to remove.
    let other = format!("{}.tmp-{dead}-1", name.as_str());
    std::fs::write(
        std::path::Path::new("/dev/shm").join(&other),
        b"something else",
    )
    .unwrap();
    let builds = builds_of(&name);
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].file_name, empty);
    assert!(!builds[0].builder_alive);
    let e = region::remove_unfinished_build(&other).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
    let e = region::remove_unfinished_build(name.as_str()).unwrap_err();
    assert!(matches!(e, RegionError::BadName { .. }), "{e}");
    assert!(region::remove_unfinished_build(&empty).unwrap());
    assert_eq!(shm_files_of(&name), vec![other]);
}

/// Fills the private names this process would build `args[0]` under with empty files (of
/// uid `args[1]`), then checks that a fallback build says which name is taken by whom,
/// and that a build in an unnamed file does not care.
fn build_over_squatted_names(args: &[String]) {
    let name = RegionName::new(args[0].clone()).unwrap();
    let owner: u32 = args[1].parse().unwrap();
    for n in 0..64 {
        let path =
            std::path::Path::new("/dev/shm").join(format!("{name}.tmp-{}-{n}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        std::os::unix::fs::chown(&path, Some(owner), None).unwrap();
    }
    let e = CreateOptions::new()
        .private_build_name(true)
        .create(&name, SIZE)
        .unwrap_err();
    let msg = e.to_string();
    match e {
        RegionError::BuildNameTaken {
            private, owner: o, ..
        } => {
            assert_eq!(o, owner);
            assert!(
                private.starts_with(&format!("{name}.tmp-{}-", std::process::id())),
                "{private}"
            );
            assert!(
                msg.contains(&private) && msg.contains(&format!("uid {owner}")),
                "{msg}"
            );
        }
        e => panic!("{e}"),
    }
    drop(CreateOptions::new().create(&name, SIZE).unwrap());
}

#[test]
fn our_own_leftovers_under_every_private_name_are_reported() {
    let name = TestName::new("squat-own");
    let me = nix::unistd::geteuid().as_raw().to_string();
    spawn_role_env("build_over_squatted_names", &[name.as_str(), &me], &[])
        .wait_ok(Duration::from_secs(60));
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn a_private_name_held_by_another_user_is_reported() {
    let name = TestName::new("squat-other");
    spawn_role_env(
        "build_over_squatted_names",
        &[name.as_str(), &NOBODY.to_string()],
        &[],
    )
    .wait_ok(Duration::from_secs(60));
}

#[test]
fn child_role() {
    role_entry(&[
        ("build_and_pause", build_and_pause),
        ("build_over_squatted_names", build_over_squatted_names),
    ]);
}

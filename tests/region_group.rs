//! Regions shared between users through a group: a creator gives the file a group, members
//! of other uids attach, and files of other uids with any other group are refused. Each
//! test needs root, to become other users in children.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    region_image, role_entry, spawn_role, wait_until, write_shm_file_mode, TestName, NOBODY,
};
use nix::unistd::{Gid, Uid};
use shmval::region::{AttachOptions, CreateOptions, Offset, Region, RegionError, RegionName};

const SIZE: u64 = 64 * 1024;
/// The group the services share: a gid no one else uses.
const GROUP: u32 = 65533;
/// A group neither service is in.
const OTHER_GROUP: u32 = 65531;
/// The second service's uid (the first is `nobody`).
const SECOND: u32 = 65532;
/// Words the two sides signal through.
const GREETING: u64 = 256;
const ANSWER: u64 = 264;

/// Becomes uid `uid` with group `GROUP` as its only group (effective and supplementary).
fn become_member(uid: u32) {
    nix::unistd::setgroups(&[Gid::from_raw(GROUP)]).unwrap();
    nix::unistd::setgid(Gid::from_raw(GROUP)).unwrap();
    nix::unistd::setuid(Uid::from_raw(uid)).unwrap();
    assert_eq!(nix::unistd::geteuid().as_raw(), uid);
}

fn word(r: &Region, at: u64) -> &AtomicU64 {
    // SAFETY: the test places only atomics at these offsets (past the header and the
    // registry, where the layers above would start); no plain payload lies there while the
    // reference is used.
    unsafe { r.resolve(Offset::new(r.data_start().get() + at)) }.unwrap()
}

/// As `nobody` in `GROUP`: refuses to give a region a group it is not in, then creates
/// region `args[0]` for the group, greets, and waits for the answer before exiting (the
/// region stays, persisted).
fn group_creator(args: &[String]) {
    become_member(NOBODY);
    let name = RegionName::new(args[0].clone()).unwrap();
    let e = CreateOptions::new()
        .group(OTHER_GROUP)
        .mode(0o660)
        .create(&name, SIZE)
        .unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::NotInGroup {
                gid: OTHER_GROUP,
                ..
            }
        ),
        "{e}"
    );
    let r = CreateOptions::new()
        .group(GROUP)
        .mode(0o660)
        .persist(true)
        .create(&name, SIZE)
        .unwrap();
    let meta = std::fs::metadata(name.file_path()).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (NOBODY, GROUP, 0o660)
    );
    word(&r, GREETING).store(42, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(60), || word(&r, ANSWER)
        .load(Ordering::SeqCst)
        == 1));
}

/// As `SECOND` in `GROUP`: attaches to the first service's region `args[0]` only when
/// trusting the group, and answers its greeting.
fn group_attacher(args: &[String]) {
    become_member(SECOND);
    let name = RegionName::new(args[0].clone()).unwrap();
    match Region::attach(&name).unwrap_err() {
        RegionError::WrongOwner {
            found, expected, ..
        } => assert_eq!((found, expected), (NOBODY, SECOND)),
        e => panic!("{e}"),
    }
    let trusting = AttachOptions::new().group(GROUP);
    let r = trusting.attach(&name).unwrap();
    assert_eq!(word(&r, GREETING).load(Ordering::SeqCst), 42);
    // Its creator runs: not stale.
    assert!(!trusting.remove_stale(&name).unwrap());
    word(&r, ANSWER).store(1, Ordering::SeqCst);
}

/// As `SECOND` in `GROUP`: the region `args[0]` of the first service, whose creator is
/// gone, is stale, but the sticky /dev/shm lets only its owner remove it: reported.
fn group_remover(args: &[String]) {
    become_member(SECOND);
    let name = RegionName::new(args[0].clone()).unwrap();
    match AttachOptions::new()
        .group(GROUP)
        .remove_stale(&name)
        .unwrap_err()
    {
        RegionError::UnlinkDenied { owner, .. } => assert_eq!(owner, NOBODY),
        e => panic!("{e}"),
    }
    // Without trusting the group it is not ours to judge at all.
    let e = Region::remove_stale(&name).unwrap_err();
    assert!(matches!(e, RegionError::WrongOwner { .. }), "{e}");
}

/// As root: creates region `args[0]` for the group, then becomes `SECOND`: the name is now
/// another user's file in the sticky /dev/shm, and the refusal to unlink it is reported.
fn creator_that_drops_privileges(args: &[String]) {
    let name = RegionName::new(args[0].clone()).unwrap();
    let r = CreateOptions::new()
        .group(GROUP)
        .mode(0o660)
        .create(&name, SIZE)
        .unwrap();
    become_member(SECOND);
    match r.try_unlink().unwrap_err() {
        RegionError::UnlinkDenied { owner, .. } => assert_eq!(owner, 0),
        e => panic!("{e}"),
    }
    assert!(!r.unlink());
    assert!(name.file_path().exists());
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn members_of_a_group_share_a_region_across_uids() {
    let name = TestName::new("group-share");
    let creator = spawn_role("group_creator", &[name.as_str()]);
    assert!(
        wait_until(Duration::from_secs(60), || name.file_path().exists()),
        "the creator made no region"
    );
    spawn_role("group_attacher", &[name.as_str()]).wait_ok(Duration::from_secs(60));
    creator.wait_ok(Duration::from_secs(60));
    // The creator is gone; its region stays for its owner (or root) to remove.
    spawn_role("group_remover", &[name.as_str()]).wait_ok(Duration::from_secs(60));
    assert!(name.file_path().exists());
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn a_creator_is_told_why_it_may_not_unlink() {
    let name = TestName::new("group-unlink");
    spawn_role("creator_that_drops_privileges", &[name.as_str()]).wait_ok(Duration::from_secs(60));
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn a_file_of_another_uid_with_another_group_is_refused() {
    // What a squatter outside the group can make: its own file, its own group. Trusting
    // the group does not make it acceptable.
    let name = TestName::new("group-squat");
    write_shm_file_mode(&name, &region_image(SIZE, 0), 0o660);
    std::os::unix::fs::chown(name.file_path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let trusting = AttachOptions::new().group(GROUP);
    match trusting.attach(&name).unwrap_err() {
        RegionError::WrongOwner { found, .. } => assert_eq!(found, NOBODY),
        e => panic!("{e}"),
    }
    let e = trusting.remove_stale(&name).unwrap_err();
    assert!(matches!(e, RegionError::WrongOwner { .. }), "{e}");
    // With the group's gid, a non-member (root is in no group but its own) is refused
    // too, and so is a file that lets others in.
    std::os::unix::fs::chown(name.file_path(), None, Some(GROUP)).unwrap();
    let e = trusting.attach(&name).unwrap_err();
    assert!(
        matches!(e, RegionError::NotInGroup { gid: GROUP, .. }),
        "{e}"
    );
    assert!(name.file_path().exists());
}

/// As `SECOND` in `GROUP`: a group file of `nobody` that also lets others in is refused.
fn refuse_open_to_others(args: &[String]) {
    become_member(SECOND);
    let name = RegionName::new(args[0].clone()).unwrap();
    match AttachOptions::new()
        .group(GROUP)
        .allowed_mode(0o666)
        .attach(&name)
        .unwrap_err()
    {
        RegionError::InsecureMode { mode, .. } => assert_eq!(mode, 0o664),
        e => panic!("{e}"),
    }
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn a_group_file_open_to_others_is_refused() {
    let name = TestName::new("group-others");
    write_shm_file_mode(&name, &region_image(SIZE, 0), 0o664);
    std::os::unix::fs::chown(name.file_path(), Some(NOBODY), Some(GROUP)).unwrap();
    spawn_role("refuse_open_to_others", &[name.as_str()]).wait_ok(Duration::from_secs(60));
}

#[test]
fn child_role() {
    role_entry(&[
        ("group_creator", group_creator),
        ("group_attacher", group_attacher),
        ("group_remover", group_remover),
        (
            "creator_that_drops_privileges",
            creator_that_drops_privileges,
        ),
        ("refuse_open_to_others", refuse_open_to_others),
    ]);
}

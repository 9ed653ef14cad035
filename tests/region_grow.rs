//! A region that grows: every process maps its maximum once, offsets reach only what the
//! file holds (its committed size), and a growth allocates the new pages at once and is
//! seen by attached processes without remapping. The maximum and a full `/dev/shm` are
//! errors at the growth; a grower killed at any step leaves the region as before or as
//! after, and the next growth works.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{role_entry, spawn_paused, spawn_role_stdio, wait_until, TestName};
use shmval::region::{shm_free_bytes, AttachOptions, CreateOptions, Offset, Region, RegionError};

const MIB: u64 = 1 << 20;
const MAGIC: u64 = 0x5348_4d56_414c_2121;

#[test]
fn child_role() {
    role_entry(&[("watch", watch), ("grow", grow)]);
}

/// The word at `at`, if the region lets this process reach it now.
fn word(r: &Region, at: u64) -> Option<&AtomicU64> {
    // SAFETY: these tests place only atomics where they resolve words.
    unsafe { r.resolve::<AtomicU64>(Offset::new(at)) }.ok()
}

/// The mapping's address: a region that moved would show another.
fn base(r: &Region) -> usize {
    word(r, 0).map_or(0, |w| w as *const AtomicU64 as usize)
}

/// Child: attaches, says so with its mapping's address, waits for a line, then for the
/// word at args[1] to be reachable and hold MAGIC, and says its address again.
fn watch(args: &[String]) {
    let name = shmval::region::RegionName::new(args[0].clone()).unwrap();
    let r = AttachOptions::new().attach(&name).unwrap();
    let at: u64 = args[1].parse().unwrap();
    assert!(word(&r, at).is_none(), "reachable before the growth");
    println!("attached {} {}", base(&r), r.len());
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || word(&r, at)
            .is_some_and(|w| w.load(Ordering::Acquire) == MAGIC)),
        "the grown part never became reachable"
    );
    println!("grown {} {}", base(&r), r.len());
}

/// Child: attaches and grows the region to args[1] bytes (its pause point armed by the
/// parent through the fault notice).
fn grow(args: &[String]) {
    let name = shmval::region::RegionName::new(args[0].clone()).unwrap();
    let r = AttachOptions::new().attach(&name).unwrap();
    shmval::fault::arm(&args[2]);
    r.grow(args[1].parse().unwrap()).unwrap();
    panic!("grew without pausing at {}", args[2]);
}

/// The size of the file system under `/dev/shm`.
fn shm_total_bytes() -> Option<u64> {
    let st = nix::sys::statvfs::statvfs("/dev/shm").ok()?;
    Some(st.blocks().saturating_mul(st.fragment_size()))
}

fn file_len(name: &TestName) -> u64 {
    std::fs::metadata(name.file_path()).unwrap().len()
}

#[test]
fn a_region_grows_up_to_its_maximum_and_no_further() {
    let name = TestName::new("grow");
    let r = CreateOptions::new()
        .max_size(16 * MIB)
        .create(&name, MIB)
        .unwrap();
    assert_eq!(
        (r.len(), r.max_len(), file_len(&name)),
        (MIB, 16 * MIB, MIB)
    );
    assert!(word(&r, 2 * MIB).is_none(), "past the committed size");
    let b = base(&r);
    assert_eq!(r.grow(4 * MIB).unwrap(), 4 * MIB);
    assert_eq!((r.len(), file_len(&name)), (4 * MIB, 4 * MIB));
    assert_eq!(r.growths(), (1, 3 * MIB));
    word(&r, 2 * MIB).unwrap().store(MAGIC, Ordering::Relaxed);
    assert_eq!(base(&r), b, "the mapping did not move");
    // Growing to less changes nothing.
    assert_eq!(r.grow(2 * MIB).unwrap(), 4 * MIB);
    assert_eq!(r.growths().0, 1);
    match r.grow(17 * MIB) {
        Err(RegionError::MaxReached { max, wanted, .. }) => {
            assert_eq!((max, wanted), (16 * MIB, 17 * MIB))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.grow(16 * MIB).unwrap(), 16 * MIB);
    assert_eq!(word(&r, 2 * MIB).unwrap().load(Ordering::Relaxed), MAGIC);
    let info = Region::peek(&name).unwrap();
    assert_eq!((info.size, info.committed), (16 * MIB, 16 * MIB));
    // Another attacher maps the maximum and reaches what the file holds.
    let other = AttachOptions::new().attach(&name).unwrap();
    assert_eq!((other.len(), other.max_len()), (16 * MIB, 16 * MIB));
}

#[test]
fn an_attached_process_sees_a_growth_without_remapping() {
    let name = TestName::new("grow-seen");
    let r = CreateOptions::new()
        .max_size(64 * MIB)
        .create(&name, MIB)
        .unwrap();
    let at = 6 * MIB;
    let mut child = spawn_role_stdio("watch", &[name.as_str(), &at.to_string()]);
    let c = child.0.as_mut().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut stdin = c.stdin.take().unwrap();
    let read = |out: &mut BufReader<_>, tag: &str| -> (usize, u64) {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the child ended");
            if let Some(rest) = line.trim().strip_prefix(tag) {
                let mut it = rest.split_whitespace().map(|x| x.parse::<u64>().unwrap());
                return (it.next().unwrap() as usize, it.next().unwrap());
            }
        }
    };
    let (before, len) = read(&mut out, "attached ");
    assert_eq!(len, MIB);
    r.grow(8 * MIB).unwrap();
    word(&r, at).unwrap().store(MAGIC, Ordering::Release);
    writeln!(stdin, "go").unwrap();
    let (after, len) = read(&mut out, "grown ");
    assert_eq!(before, after, "the child's mapping did not move");
    assert_eq!(len, 8 * MIB);
    child.wait_ok(Duration::from_secs(30));
}

#[test]
fn a_growth_past_the_free_space_of_dev_shm_is_an_error_at_the_growth() {
    // Past the whole of /dev/shm, so that it refuses at once (a growth merely past the
    // free space would take pages until it fails, which a test must not do to a shared
    // machine).
    let Some(total) = shm_total_bytes() else {
        return;
    };
    assert!(shm_free_bytes().is_some_and(|f| f <= total));
    let name = TestName::new("grow-full");
    let max = total.saturating_add(64 * MIB);
    let r = match CreateOptions::new().max_size(max).create(&name, MIB) {
        Ok(r) => r,
        // A maximum past what the address space or the limit allows: nothing to test.
        Err(RegionError::BadSize { .. }) => return,
        Err(e) => panic!("{e}"),
    };
    match r.grow(max) {
        Err(RegionError::NoSpaceToGrow { from, to, free, .. }) => {
            assert_eq!((from, to), (MIB, max));
            assert!(free < max, "{free}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing changed, and a smaller growth still works.
    assert_eq!(r.len(), MIB);
    assert_eq!(r.grow(2 * MIB).unwrap(), 2 * MIB);
    word(&r, MIB + 8).unwrap().store(1, Ordering::Relaxed);
}

#[test]
fn a_grower_killed_at_any_step_leaves_the_region_whole() {
    for point in [
        "region.grow.begun",
        "region.grow.allocated",
        "region.grow.published",
    ] {
        let name = TestName::new("grow-kill");
        let r = CreateOptions::new()
            .max_size(32 * MIB)
            .create(&name, MIB)
            .unwrap();
        let child = spawn_paused(
            "grow",
            &[name.as_str(), &(8 * MIB).to_string(), point],
            point,
        );
        child.kill();
        let len = r.info().committed;
        assert!(len == MIB || len == 8 * MIB, "{point}: {len}");
        assert!(
            file_len(&name) >= len,
            "{point}: the file holds what is committed"
        );
        assert_eq!(r.grow(8 * MIB).unwrap(), 8 * MIB, "{point}");
        word(&r, 7 * MIB).unwrap().store(MAGIC, Ordering::Relaxed);
        assert_eq!(r.len(), 8 * MIB);
    }
}

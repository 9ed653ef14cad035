//! Every `RegionError` variant, each produced from a real region or a crafted file in
//! `/dev/shm`.

// The tests count break-checker calls with a std atomic; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    field, put_u32, put_u64, region_image, role_entry, shm_files_of, spawn_role, write_shm_file,
    write_shm_file_mode, TestName, NOBODY,
};
use shmval::region::header::{HEADER_SIZE, LAYOUT_VERSION};
use shmval::region::{
    AttachOptions, CreateOptions, Offset, Region, RegionError, RegionName, MAX_REGION_SIZE,
};

const SIZE: u64 = 4096;

/// Attach options for crafted files: a short wait, so a wrong outcome fails fast.
fn quick() -> AttachOptions {
    AttachOptions::new()
        .timeout(Duration::from_millis(200))
        .micro_sleep(Duration::from_millis(10))
}

/// Writes a valid image for `name` after `spoil` changed it, and attaches to it.
fn attach_crafted(name: &TestName, spoil: impl FnOnce(&mut Vec<u8>)) -> RegionError {
    let mut image = region_image(SIZE, 0);
    spoil(&mut image);
    write_shm_file(name, &image);
    quick()
        .attach(name)
        .expect_err("a spoiled file must be refused")
}

/// Runs as `nobody` and checks that a root-owned 0600 region cannot be opened.
fn attach_as_nobody(args: &[String]) {
    let name = RegionName::new(args[0].clone()).unwrap();
    nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY)).unwrap();
    nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY)).unwrap();
    assert_eq!(nix::unistd::geteuid().as_raw(), NOBODY);
    let e = Region::attach(&name).unwrap_err();
    assert!(
        matches!(e, RegionError::PermissionDenied(ref n) if n == name.as_str()),
        "{e}"
    );
    let e = Region::remove_stale(&name).unwrap_err();
    assert!(matches!(e, RegionError::PermissionDenied(_)), "{e}");
}

#[test]
fn child_role() {
    role_entry(&[("attach_as_nobody", attach_as_nobody)]);
}

#[test]
fn valid_crafted_image_attaches() {
    // The baseline every spoiled image below departs from.
    let name = TestName::new("crafted-ok");
    write_shm_file(&name, &region_image(SIZE, 0));
    let r = quick().attach(&name).unwrap();
    assert_eq!(r.len(), SIZE);
    assert!(!r.is_creator());
    assert_eq!(r.info().creator_pid, std::process::id());
}

#[test]
fn not_found() {
    let name = TestName::new("absent");
    let e = Region::attach(&name).unwrap_err();
    assert!(
        matches!(e, RegionError::NotFound(ref n) if n == name.as_str()),
        "{e}"
    );
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn permission_denied() {
    // Root passes every permission check: a child that became `nobody` does not.
    let name = TestName::new("denied");
    let _r = Region::create(&name, SIZE).unwrap();
    spawn_role("attach_as_nobody", &[name.as_str()]).wait_ok(Duration::from_secs(30));
}

#[test]
#[cfg_attr(shmval_root, ignore = "root passes every permission check")]
fn permission_denied_by_the_mode() {
    let name = TestName::new("denied-mode");
    write_shm_file_mode(&name, &region_image(SIZE, 0), 0o000);
    let e = Region::attach(&name).unwrap_err();
    assert!(matches!(e, RegionError::PermissionDenied(_)), "{e}");
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn wrong_owner() {
    let name = TestName::new("owner");
    write_shm_file(&name, &region_image(SIZE, 0));
    std::os::unix::fs::chown(name.file_path(), Some(NOBODY), Some(NOBODY)).unwrap();
    match Region::attach(&name).unwrap_err() {
        RegionError::WrongOwner {
            found, expected, ..
        } => {
            assert_eq!(found, NOBODY);
            assert_eq!(expected, 0);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn insecure_mode() {
    let name = TestName::new("mode");
    let r = CreateOptions::new()
        .mode(0o644)
        .create(&name, SIZE)
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(name.file_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "the mode asked for, whatever the umask"
    );
    match Region::attach(&name).unwrap_err() {
        RegionError::InsecureMode { mode, allowed, .. } => {
            assert_eq!(mode, 0o644);
            assert_eq!(allowed, 0o600);
        }
        e => panic!("{e}"),
    }
    // Group read alone is not enough either when only other-read is allowed.
    let e = AttachOptions::new()
        .allowed_mode(0o604)
        .attach(&name)
        .unwrap_err();
    assert!(matches!(e, RegionError::InsecureMode { .. }), "{e}");
    let a = AttachOptions::new()
        .allowed_mode(0o644)
        .attach(&name)
        .unwrap();
    assert_eq!(a.id(), r.id());
}

#[test]
fn bad_magic() {
    let name = TestName::new("magic");
    let e = attach_crafted(&name, |b| b[field::MAGIC + 7] ^= 0xff);
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
    // A file that was never a region at all.
    write_shm_file(&name, &[b'#'; SIZE as usize]);
    let e = quick().attach(&name).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
}

#[test]
fn version_mismatch() {
    let name = TestName::new("version");
    let e = attach_crafted(&name, |b| put_u32(b, field::VERSION, LAYOUT_VERSION + 1));
    match e {
        RegionError::VersionMismatch {
            found, expected, ..
        } => {
            assert_eq!(found, LAYOUT_VERSION + 1);
            assert_eq!(expected, LAYOUT_VERSION);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn layout_mismatch_from_a_wrong_fingerprint() {
    let name = TestName::new("fingerprint");
    let e = attach_crafted(&name, |b| b[field::FINGERPRINT] ^= 1);
    match e {
        RegionError::LayoutMismatch {
            found, expected, ..
        } => assert_eq!(found ^ expected, 1),
        e => panic!("{e}"),
    }
}

#[test]
fn layout_mismatch_between_create_and_attach_layouts() {
    let name = TestName::new("layout");
    let _r = CreateOptions::new().layout(1).create(&name, SIZE).unwrap();
    let e = AttachOptions::new().layout(2).attach(&name).unwrap_err();
    assert!(matches!(e, RegionError::LayoutMismatch { .. }), "{e}");
    let e = Region::attach(&name).unwrap_err();
    assert!(matches!(e, RegionError::LayoutMismatch { .. }), "{e}");
    drop(AttachOptions::new().layout(1).attach(&name).unwrap());
}

#[test]
fn truncated_below_the_header() {
    let name = TestName::new("short");
    write_shm_file(&name, &region_image(SIZE, 0)[..100]);
    match quick().attach(&name).unwrap_err() {
        RegionError::Truncated {
            found, expected, ..
        } => {
            assert_eq!(found, 100);
            assert_eq!(expected, HEADER_SIZE);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn truncated_below_the_declared_size() {
    let name = TestName::new("declared");
    // A maximum past the file is a region that may grow: its committed size is what must
    // be there.
    match attach_crafted(&name, |b| {
        put_u64(b, field::SIZE, 4 * SIZE);
        put_u64(b, field::COMMITTED, 2 * SIZE);
    }) {
        RegionError::Truncated {
            found, expected, ..
        } => {
            assert_eq!(found, SIZE);
            assert_eq!(expected, 2 * SIZE);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn not_ready_in_time() {
    let name = TestName::new("notready");
    let mut image = region_image(SIZE, 0);
    put_u32(&mut image, field::STATE, 0);
    write_shm_file(&name, &image);
    let t = Instant::now();
    let e = AttachOptions::new()
        .timeout(Duration::from_millis(100))
        .micro_sleep(Duration::from_millis(10))
        .attach(&name)
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, RegionError::NotReady(_)), "{e}");
    println!("a 100 ms ready wait gave up after {took:?}");
    assert!(took >= Duration::from_millis(100), "{took:?}");
    // Only a wait that does not end: the bound is generous.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn broken_by_the_break_checker() {
    let name = TestName::new("broken");
    let mut image = region_image(SIZE, 0);
    put_u32(&mut image, field::STATE, 0);
    write_shm_file(&name, &image);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let t = Instant::now();
    let e = AttachOptions::new()
        .timeout(Duration::from_secs(60))
        .micro_sleep(Duration::from_millis(10))
        .break_checker(move || c.fetch_add(1, Ordering::SeqCst) + 1 >= 3)
        .attach(&name)
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, RegionError::Broken(_)), "{e}");
    // Asked once before each sleep: three calls, two sleeps of a micro_sleep.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    println!("broken off after {took:?}");
    assert!(took >= Duration::from_millis(20), "{took:?}");
    // Far below the 60 s timeout: the checker, not the timeout, ended the wait.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn corrupted_state_word() {
    let name = TestName::new("state");
    match attach_crafted(&name, |b| put_u32(b, field::STATE, 7)) {
        RegionError::Corrupted { what, .. } => assert!(what.contains('7'), "{what}"),
        e => panic!("{e}"),
    }
}

#[test]
fn corrupted_declared_size_smaller_than_the_file() {
    let name = TestName::new("oversized");
    match attach_crafted(&name, |b| put_u64(b, field::SIZE, SIZE / 2)) {
        RegionError::Corrupted { what, .. } => assert!(what.contains("2048"), "{what}"),
        e => panic!("{e}"),
    }
}

#[test]
fn corrupted_header_size() {
    let name = TestName::new("hdrsize");
    let e = attach_crafted(&name, |b| put_u32(b, field::HEADER_SIZE, 64));
    assert!(matches!(e, RegionError::Corrupted { .. }), "{e}");
}

#[test]
fn corrupted_when_not_a_regular_file_fifo_directory_or_link() {
    let name = TestName::new("fifo");
    nix::unistd::mkfifo(&name.file_path(), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let e = quick().attach(&name).unwrap_err();
    assert!(matches!(e, RegionError::Corrupted { .. }), "{e}");
    // remove_stale neither blocks on the FIFO nor removes it.
    let e = Region::remove_stale(&name).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
    assert!(name.file_path().exists());

    let dir = TestName::new("dir");
    std::fs::create_dir(dir.file_path()).unwrap();
    let e = quick().attach(&dir).unwrap_err();
    assert!(matches!(e, RegionError::Corrupted { .. }), "{e}");
    let e = Region::remove_stale(&dir).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");

    // A symbolic link is not followed, even to a valid region of ours.
    let target = TestName::new("target");
    let _r = Region::create(&target, SIZE).unwrap();
    let link = TestName::new("link");
    std::os::unix::fs::symlink(target.file_path(), link.file_path()).unwrap();
    let e = quick().attach(&link).unwrap_err();
    assert!(matches!(e, RegionError::Corrupted { .. }), "{e}");
    let e = Region::remove_stale(&link).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
    assert!(target.file_path().exists());
}

#[test]
fn no_space() {
    let stat = nix::sys::statvfs::statvfs("/dev/shm").unwrap();
    let total = stat.blocks() as u64 * stat.fragment_size() as u64;
    if total == 0 {
        println!("no_space: skipped, /dev/shm has no size limit");
        return;
    }
    // tmpfs refuses to allocate more than the whole filesystem before allocating any page,
    // so this takes no memory. Past MAX_REGION_SIZE, create refuses the size (BadSize)
    // before the filesystem is asked at all.
    let size = total + (1 << 20);
    if size > MAX_REGION_SIZE {
        println!("no_space: skipped, /dev/shm ({total} bytes) is larger than MAX_REGION_SIZE");
        return;
    }
    let name = TestName::new("nospace");
    let t = Instant::now();
    match Region::create(&name, size).unwrap_err() {
        RegionError::NoSpace { size: s, .. } => assert_eq!(s, size),
        e => panic!("{e}"),
    }
    // Refused before any page is touched; the bound only catches a create that fills
    // the filesystem first.
    let took = t.elapsed();
    println!("no_space: refused after {took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(shm_files_of(&name).is_empty(), "{:?}", shm_files_of(&name));
}

#[test]
fn already_exists() {
    let name = TestName::new("exists");
    let r = Region::create(&name, SIZE).unwrap();
    let e = Region::create(&name, SIZE).unwrap_err();
    assert!(
        matches!(e, RegionError::AlreadyExists(ref n) if n == name.as_str()),
        "{e}"
    );
    // The first region is untouched.
    assert_eq!(Region::attach(&name).unwrap().id(), r.id());
    drop(r);
    // A file that is not a region squats the name just as well; it is left alone.
    write_shm_file(&name, b"not a region");
    let e = Region::create(&name, SIZE).unwrap_err();
    assert!(matches!(e, RegionError::AlreadyExists(_)), "{e}");
    assert_eq!(std::fs::read(name.file_path()).unwrap(), b"not a region");
    assert_eq!(shm_files_of(&name), vec![name.as_str().to_string()]);
}

#[test]
fn bad_size() {
    let name = TestName::new("size");
    for size in [
        0,
        HEADER_SIZE,
        HEADER_SIZE + 63,
        MAX_REGION_SIZE + 1,
        u64::MAX,
    ] {
        match Region::create(&name, size).unwrap_err() {
            RegionError::BadSize { size: s, .. } => assert_eq!(s, size),
            e => panic!("{size}: {e}"),
        }
    }
    assert!(shm_files_of(&name).is_empty());
    drop(Region::create(&name, HEADER_SIZE + 64).unwrap());
}

#[test]
fn bad_name() {
    for bad in ["", ".x", "a/b", "../etc", "a b", "é", &"n".repeat(201)] {
        let e = RegionName::new(bad).unwrap_err();
        assert!(
            matches!(e, RegionError::BadName { ref name, .. } if name == bad),
            "{e}"
        );
        assert!(bad.parse::<RegionName>().is_err());
    }
}

#[test]
fn bad_offsets() {
    let name = TestName::new("offsets");
    let r = Region::create(&name, SIZE).unwrap();
    let bad = |e: RegionError| match e {
        RegionError::BadOffset {
            offset,
            len,
            align,
            size,
        } => (offset, len, align, size),
        e => panic!("{e}"),
    };
    // SAFETY: every call here fails before a reference exists, or refers to words of a
    // region nothing else uses.
    unsafe {
        // Out of bounds: past the end, straddling the end, and overflowing u64.
        assert_eq!(
            bad(r.resolve::<AtomicU64>(Offset::new(SIZE)).unwrap_err()),
            (SIZE, 8, 8, SIZE)
        );
        bad(r.resolve::<AtomicU64>(Offset::new(SIZE - 4)).unwrap_err());
        bad(r
            .resolve::<AtomicU64>(Offset::new(u64::MAX - 7))
            .unwrap_err());
        // Misaligned.
        assert_eq!(
            bad(r
                .resolve::<AtomicU64>(Offset::new(HEADER_SIZE + 1))
                .unwrap_err()),
            (HEADER_SIZE + 1, 8, 8, SIZE)
        );
        bad(r
            .resolve_slice::<AtomicU64>(Offset::new(HEADER_SIZE + 4), 2)
            .unwrap_err());
        // A slice whose byte length overflows, and one that merely runs past the end.
        bad(r
            .resolve_slice::<AtomicU64>(Offset::new(HEADER_SIZE), u64::MAX / 4)
            .unwrap_err());
        bad(r
            .resolve_slice::<AtomicU64>(Offset::new(HEADER_SIZE), u64::MAX)
            .unwrap_err());
        bad(r
            .resolve_slice::<AtomicU64>(Offset::new(HEADER_SIZE), SIZE / 8)
            .unwrap_err());
        bad(r.bytes(Offset::new(SIZE - 1), 2).unwrap_err());
        bad(r.bytes_mut(Offset::new(1), u64::MAX).unwrap_err());
        // The edges themselves are fine.
        r.resolve::<AtomicU64>(Offset::new(SIZE - 8)).unwrap();
        let all = r
            .resolve_slice::<AtomicU64>(Offset::new(0), SIZE / 8)
            .unwrap();
        assert_eq!(all.len() as u64, SIZE / 8);
    }
    // SAFETY: nothing writes the last byte while the slice lives.
    assert_eq!(unsafe { r.bytes(Offset::new(SIZE - 1), 1) }.unwrap(), &[0]);
}

#[test]
fn a_file_past_the_maximum_or_a_committed_size_past_it_is_refused() {
    let name = TestName::new("pastmax");
    match attach_crafted(&name, |b| put_u64(b, field::SIZE, SIZE / 2)) {
        RegionError::Corrupted { what, .. } => assert!(what.contains("maximum"), "{what}"),
        e => panic!("{e}"),
    }
    let name = TestName::new("committedmax");
    match attach_crafted(&name, |b| put_u64(b, field::COMMITTED, 2 * SIZE)) {
        RegionError::Corrupted { what, .. } => assert!(what.contains("committed"), "{what}"),
        e => panic!("{e}"),
    }
}

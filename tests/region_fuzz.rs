//! Attaching to arbitrary files, and resolving arbitrary offsets, returns a result: it
//! never panics and never reads out of bounds.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU64 as Word, AtomicU8, Ordering};
use std::time::Duration;

use common::{field, put_u64, region_image, write_shm_file, TestName};
use proptest::prelude::*;
use shmval::region::header::HEADER_SIZE;
use shmval::region::{AttachOptions, Offset, Region, RegionError};

const SIZE: u64 = 4096;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    }
}

/// Writes `image` as a region file and attaches with a short wait. On success, follows
/// the untrusted words of the header (root, and a word pair used as offset and count)
/// through the checked resolvers.
fn attach_image(image: &[u8]) -> Result<(), RegionError> {
    let name = TestName::new("fuzz");
    write_shm_file(&name, image);
    let r = AttachOptions::new()
        .timeout(Duration::from_millis(20))
        .micro_sleep(Duration::from_millis(1))
        .attach(&name)?;
    // What may be touched is at most what the file holds, whatever the header says.
    assert!(r.len() <= image.len() as u64 && r.len() <= r.max_len());
    let root = Offset::new(r.root().load(Ordering::Relaxed));
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let _ = unsafe { r.resolve::<Word>(root) };
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let words = unsafe { r.resolve_slice::<Word>(Offset::new(0), HEADER_SIZE / 8) }?;
    let off = Offset::new(words[2].load(Ordering::Relaxed));
    let count = words[3].load(Ordering::Relaxed);
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    if let Ok(s) = unsafe { r.resolve_slice::<AtomicU8>(off, count) } {
        // Touch the ends: a bounds error would fault here.
        if let (Some(a), Some(b)) = (s.first(), s.last()) {
            let _ = a.load(Ordering::Relaxed) ^ b.load(Ordering::Relaxed);
        }
    }
    Ok(())
}

/// One change to a valid image.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR the byte at this header position with a non-zero value.
    Flip(usize, u8),
    /// Overwrite the declared size.
    Size(u64),
    /// Cut the file to this length.
    Truncate(usize),
    /// Grow the file by this many zero bytes.
    Extend(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0..HEADER_SIZE as usize, 1..=255u8).prop_map(|(at, x)| Mutation::Flip(at, x)),
        1 => prop_oneof![
            any::<u64>(),
            (SIZE - 256..SIZE + 256),
            Just(HEADER_SIZE),
            Just(0),
        ]
        .prop_map(Mutation::Size),
        1 => (0..SIZE as usize).prop_map(Mutation::Truncate),
        1 => (1..8192usize).prop_map(Mutation::Extend),
    ]
}

fn apply(image: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Flip(at, x) => {
            if at < image.len() {
                image[at] ^= x;
            }
        }
        Mutation::Size(s) => {
            if image.len() >= field::SIZE + 8 {
                put_u64(image, field::SIZE, s);
            }
        }
        Mutation::Truncate(n) => image.truncate(n),
        Mutation::Extend(n) => image.resize(image.len() + n, 0),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_files_give_a_result(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        prop_assert!(attach_image(&bytes).is_err(), "random bytes made a region");
    }

    #[test]
    fn random_bytes_after_a_valid_magic_give_a_result(
        tail in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let mut image = region_image(SIZE, 0)[..8].to_vec();
        image.extend_from_slice(&tail);
        let _ = attach_image(&image);
    }

    #[test]
    fn mutated_headers_give_a_result(mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut image = region_image(SIZE, 0);
        for m in &mutations {
            apply(&mut image, m);
        }
        let _ = attach_image(&image);
    }

    #[test]
    fn resolve_succeeds_exactly_for_aligned_ranges_inside(
        off in prop_oneof![0..SIZE + 64, any::<u64>()],
        count in prop_oneof![0..SIZE, any::<u64>()],
    ) {
        let name = TestName::new("resolve");
        let r = Region::create(&name, SIZE).unwrap();
        let inside = |len: Option<u64>, align: u64| {
            len.and_then(|l| off.checked_add(l)).is_some_and(|end| end <= SIZE)
                && off % align == 0
        };
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        let got = unsafe { r.resolve_slice::<Word>(Offset::new(off), count) };
        prop_assert_eq!(got.is_ok(), inside(count.checked_mul(8), 8));
        if let Ok(s) = got {
            prop_assert_eq!(s.len() as u64, count);
        }
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        prop_assert_eq!(unsafe { r.resolve::<Word>(Offset::new(off)) }.is_ok(), inside(Some(8), 8));
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        let got = unsafe { r.resolve_slice::<AtomicU8>(Offset::new(off), count) };
        prop_assert_eq!(got.is_ok(), inside(Some(count), 1));
    }
}

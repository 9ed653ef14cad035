//! The region header: what a region says about itself in its first bytes.
//!
//! | offset | size | field                                                         |
//! |--------|------|---------------------------------------------------------------|
//! | 0      | 8    | magic `b"SHMVAL\x00\x01"`                                     |
//! | 8      | 4    | layout version ([`LAYOUT_VERSION`])                           |
//! | 12     | 4    | header size ([`HEADER_SIZE`])                                 |
//! | 16     | 8    | layout fingerprint (word size, sizes of shared structures)    |
//! | 24     | 8    | maximum size of the region in bytes: what every process maps   |
//! | 32     | 16   | region id: 128 random bits                                    |
//! | 48     | 4    | creator's pid                                                 |
//! | 52     | 4    | reserved (0)                                                  |
//! | 56     | 8    | creator's start-time key (see `sync::process_start_key`)      |
//! | 64     | 4    | state word, atomic: 0 building, 1 ready                       |
//! | 68     | 4    | mixed word, atomic: 1 once a process of another pid namespace |
//! |        |      | than the creator's attached (never cleared), else 0           |
//! | 72     | 8    | root offset, atomic: the root object of the layers above      |
//! | 80     | 8    | creator's pid namespace: the inode of its `/proc/self/ns/pid` |
//! |        |      | (0 if it could not read it)                                   |
//! | 88     | 4    | slots of the process registry that follows the header (0: none) |
//! | 92     | 4    | reserved (0)                                                  |
//! | 96     | 8    | committed size, atomic: the bytes the file holds now (it only grows) |
//! | 104    | 8    | growths, atomic: how many times the file was grown            |
//! | 112    | 8    | last growth, atomic: bytes added by the last one              |
//! | 120    | 4    | removed word, atomic: 1 once a process unlinked the region's name |
//! |        |      | through this library (it never stands for the file again), else 0 |
//! | 124    | 4    | reserved (0)                                                  |
//!
//! Everything but the atomic words is written once, before the region is published, and
//! never changed. An attacher copies the header once and checks the copy,
//! so a writer changing fields between check and use changes nothing.
//!
//! The mixed word exists because lock owners and creators are judged alive through
//! `/proc`, which only shows the processes of one pid namespace: while it is set, no
//! process sharing the region judges anyone dead (see `crate::sync::add_liveness_veto`).

use std::mem::{align_of, size_of};

/// The first 8 bytes of every region.
pub const MAGIC: [u8; 8] = *b"SHMVAL\x00\x01";
/// The layout version this build writes and reads (6: the pool's block caches are
/// kept per thread, several records per registry slot).
pub const LAYOUT_VERSION: u32 = 7;
/// Bytes reserved for the header; the layers above start here (64-aligned).
pub const HEADER_SIZE: u64 = 128;

/// Offset of the state word.
pub(crate) const STATE_OFFSET: u64 = 64;
/// Offset of the mixed-namespaces word.
pub(crate) const MIXED_OFFSET: u64 = 68;
/// Offset of the root word.
pub(crate) const ROOT_OFFSET: u64 = 72;
/// Offset of the creator's pid namespace.
pub(crate) const PID_NS_OFFSET: u64 = 80;
/// Offset of the registry's slot count.
pub(crate) const REGISTRY_OFFSET: u64 = 88;
/// Offset of the committed size.
pub(crate) const COMMITTED_OFFSET: u64 = 96;
/// Offset of the count of growths.
pub(crate) const GROWS_OFFSET: u64 = 104;
/// Offset of the size of the last growth.
pub(crate) const LAST_GROW_OFFSET: u64 = 112;
/// Offset of the removed word.
pub(crate) const REMOVED_OFFSET: u64 = 120;
/// Bytes from the start of the header through the growth words: what a reader that does
/// not map the region reads.
pub(crate) const READ_SIZE: usize = 120;

/// State word: the creator is still building the region.
pub(crate) const STATE_BUILDING: u32 = 0;
/// State word: the region is complete.
pub(crate) const STATE_READY: u32 = 1;

/// The plain (non-atomic) part of the header, as copied out of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct RawHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub header_size: u32,
    pub fingerprint: u64,
    pub size: u64,
    pub id: [u8; 16],
    pub creator_pid: u32,
    pub reserved0: u32,
    pub creator_start: u64,
}

const _: () = assert!(size_of::<RawHeader>() == 64);
// What is read without mapping ends with the growth words and is whole 8-byte words.
const _: () = assert!(READ_SIZE as u64 == LAST_GROW_OFFSET + 8 && READ_SIZE % 8 == 0);

/// Bytes of the plain part of the header.
pub(crate) const RAW_HEADER_SIZE: usize = size_of::<RawHeader>();

impl RawHeader {
    /// The header's bytes as they lie in the region (native byte order, at the offsets of
    /// the table above).
    pub(crate) fn to_bytes(self) -> [u8; RAW_HEADER_SIZE] {
        let mut b = [0u8; RAW_HEADER_SIZE];
        b[0..8].copy_from_slice(&self.magic);
        b[8..12].copy_from_slice(&self.version.to_ne_bytes());
        b[12..16].copy_from_slice(&self.header_size.to_ne_bytes());
        b[16..24].copy_from_slice(&self.fingerprint.to_ne_bytes());
        b[24..32].copy_from_slice(&self.size.to_ne_bytes());
        b[32..48].copy_from_slice(&self.id);
        b[48..52].copy_from_slice(&self.creator_pid.to_ne_bytes());
        b[52..56].copy_from_slice(&self.reserved0.to_ne_bytes());
        b[56..64].copy_from_slice(&self.creator_start.to_ne_bytes());
        b
    }

    /// Reads a header out of its bytes. Any bytes give some header: checking it is the
    /// caller's job.
    pub(crate) fn from_bytes(b: &[u8; RAW_HEADER_SIZE]) -> RawHeader {
        // Each sub-slice has exactly the length of its array: the conversions cannot fail.
        let a4 = |at: usize| -> [u8; 4] { b[at..at + 4].try_into().expect("4 bytes") };
        let a8 = |at: usize| -> [u8; 8] { b[at..at + 8].try_into().expect("8 bytes") };
        RawHeader {
            magic: a8(0),
            version: u32::from_ne_bytes(a4(8)),
            header_size: u32::from_ne_bytes(a4(12)),
            fingerprint: u64::from_ne_bytes(a8(16)),
            size: u64::from_ne_bytes(a8(24)),
            id: b[32..48].try_into().expect("16 bytes"),
            creator_pid: u32::from_ne_bytes(a4(48)),
            reserved0: u32::from_ne_bytes(a4(52)),
            creator_start: u64::from_ne_bytes(a8(56)),
        }
    }
}

/// A complete header image, as [`Region::create`](super::Region::create) would write it,
/// for a region of `size` bytes (its maximum and its committed size) whose layers above
/// have layout fingerprint `layout`,
/// created by the calling process (in its pid namespace), in the ready state, with a fixed
/// id.
///
/// For tests that craft region files by hand and then spoil one field; not part of the
/// stable API, and only built with the `fault-injection` feature (the crate's test hooks).
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub fn encode_for_tests(size: u64, layout: u64) -> [u8; HEADER_SIZE as usize] {
    let pid = std::process::id();
    let raw = RawHeader {
        magic: MAGIC,
        version: LAYOUT_VERSION,
        header_size: HEADER_SIZE as u32,
        fingerprint: layout_fingerprint(layout),
        size,
        id: *b"encode_for_tests",
        creator_pid: pid,
        reserved0: 0,
        creator_start: crate::sync::process_start_key(pid).unwrap_or(0),
    };
    let mut b = [0u8; HEADER_SIZE as usize];
    b[..RAW_HEADER_SIZE].copy_from_slice(&raw.to_bytes());
    let state = STATE_OFFSET as usize;
    b[state..state + 4].copy_from_slice(&STATE_READY.to_ne_bytes());
    let ns = PID_NS_OFFSET as usize;
    b[ns..ns + 8].copy_from_slice(&super::liveness::own_pid_ns().to_ne_bytes());
    let c = COMMITTED_OFFSET as usize;
    b[c..c + 8].copy_from_slice(&size.to_ne_bytes());
    b
}

/// The fingerprint of this build's region layout, mixed with `extra` (the fingerprint of
/// the layers above, which know their own structures).
pub fn layout_fingerprint(extra: u64) -> u64 {
    use crate::sync::{ShmCondvar, ShmMutex};
    let parts = [
        size_of::<usize>() as u64,
        HEADER_SIZE,
        size_of::<RawHeader>() as u64,
        size_of::<ShmMutex>() as u64,
        align_of::<ShmMutex>() as u64,
        size_of::<ShmCondvar>() as u64,
        align_of::<ShmCondvar>() as u64,
        u64::from(cfg!(target_endian = "little")),
        extra,
    ];
    fnv1a(&parts)
}

/// FNV-1a over the little-endian bytes of `words`: fixed, so every process agrees.
pub(crate) fn fnv1a(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RawHeader {
        RawHeader {
            magic: MAGIC,
            version: 0x0102_0304,
            header_size: 0x0506_0708,
            fingerprint: 0x1112_1314_1516_1718,
            size: 0x2122_2324_2526_2728,
            id: *b"0123456789abcdef",
            creator_pid: 0x3132_3334,
            reserved0: 0x4142_4344,
            creator_start: 0x5152_5354_5556_5758,
        }
    }

    #[test]
    fn bytes_round_trip() {
        let h = sample();
        assert_eq!(RawHeader::from_bytes(&h.to_bytes()), h);
    }

    #[test]
    fn bytes_match_the_struct_layout() {
        // The documented table, the repr(C) struct and the encoder agree.
        let h = sample();
        // SAFETY: RawHeader is repr(C) of integers and byte arrays with no padding (its
        // size is asserted to be the sum of its fields), so all 64 bytes are initialised.
        let image: [u8; RAW_HEADER_SIZE] = unsafe { std::mem::transmute(h) };
        assert_eq!(image, h.to_bytes());
        let b = h.to_bytes();
        assert_eq!(&b[0..8], &MAGIC);
        assert_eq!(b[24..32], h.size.to_ne_bytes());
        assert_eq!(b[48..52], h.creator_pid.to_ne_bytes());
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn test_images_are_valid_and_ready() {
        let b = encode_for_tests(4096, 7);
        let h = RawHeader::from_bytes(b[..RAW_HEADER_SIZE].try_into().unwrap());
        assert_eq!(h.magic, MAGIC);
        assert_eq!(h.size, 4096);
        assert_eq!(h.fingerprint, layout_fingerprint(7));
        assert_eq!(h.creator_pid, std::process::id());
        assert_eq!(b[64..68], STATE_READY.to_ne_bytes());
        assert!(b[68..80].iter().all(|&x| x == 0));
        assert_eq!(
            b[80..88],
            super::super::liveness::own_pid_ns().to_ne_bytes()
        );
        assert!(b[88..96].iter().all(|&x| x == 0));
        assert_eq!(b[96..104], 4096u64.to_ne_bytes());
        assert!(b[104..].iter().all(|&x| x == 0));
    }
}

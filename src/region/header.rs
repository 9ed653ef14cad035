//! The region header: what a region says about itself in its first bytes.
//!
//! | offset | size | field                                                         |
//! |--------|------|---------------------------------------------------------------|
//! | 0      | 8    | magic `b"SHMVAL\x00\x01"`                                     |
//! | 8      | 4    | layout version ([`LAYOUT_VERSION`])                           |
//! | 12     | 4    | header size ([`HEADER_SIZE`])                                 |
//! | 16     | 8    | layout fingerprint (word size, sizes of shared structures)    |
//! | 24     | 8    | total size of the region in bytes                             |
//! | 32     | 16   | region id: 128 random bits                                    |
//! | 48     | 4    | creator's pid                                                 |
//! | 52     | 4    | reserved (0)                                                  |
//! | 56     | 8    | creator's start-time key (see `sync::process_start_key`)      |
//! | 64     | 4    | state word, atomic: 0 building, 1 ready                       |
//! | 68     | 4    | reserved (0)                                                  |
//! | 72     | 8    | root offset, atomic: the root object of the layers above      |
//! | 80     | 48   | reserved (0)                                                  |
//!
//! Everything but the two atomic words is written once, before the region is published,
//! and never changed. An attacher copies the header once and checks the copy, so a writer
//! changing fields between check and use changes nothing.

use std::mem::{align_of, size_of};

/// The first 8 bytes of every region.
pub const MAGIC: [u8; 8] = *b"SHMVAL\x00\x01";
/// The layout version this build writes and reads.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header; the layers above start here (64-aligned).
pub const HEADER_SIZE: u64 = 128;

/// Offset of the state word.
pub(crate) const STATE_OFFSET: u64 = 64;
/// Offset of the root word.
pub(crate) const ROOT_OFFSET: u64 = 72;

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

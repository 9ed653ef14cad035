//! The fixed hash every process computes alike: SipHash-1-3 with constant keys.
//!
//! A [`Tab`](super::Tab) in shared memory is read by processes that did not build it, so
//! they must agree on every key's hash: std's `RandomState` draws new keys per process and
//! cannot be used. [`FixedState`] builds [`ValHasher`]s, SipHash-1-3 (one compression and
//! three finalization rounds, as std's own hasher) keyed with the reference test keys
//! `k0 = 0x0706050403020100`, `k1 = 0x0f0e0d0c0b0a0908`. Values feed it a canonical byte
//! encoding (see [`Val::stable_hash`](super::Val::stable_hash)), so the result depends on
//! neither the platform's endianness nor the Rust version.
//!
//! The keys are public, so the hash offers no defence against keys chosen to collide;
//! tables of untrusted keys degrade to linear probing, never to wrong answers.

use std::hash::{BuildHasher, Hasher};

/// First SipHash key (the reference implementation's test key, bytes 0..8).
pub const K0: u64 = 0x0706_0504_0302_0100;
/// Second SipHash key (bytes 8..16).
pub const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

/// Builds [`ValHasher`]s with the fixed keys; the hasher of [`Tab`](super::Tab) and
/// [`OTab`](super::OTab).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = ValHasher;
    fn build_hasher(&self) -> ValHasher {
        ValHasher::new()
    }
}

/// SipHash-1-3 with the fixed keys [`K0`], [`K1`]; the same bytes give the same hash in
/// every process.
///
/// Written bytes are one stream: `write(b"ab")` equals `write(b"a"); write(b"b")`.
#[derive(Debug, Clone)]
pub struct ValHasher {
    inner: Sip<1, 3>,
}

impl ValHasher {
    /// A hasher with the fixed keys.
    pub fn new() -> ValHasher {
        ValHasher {
            inner: Sip::new(K0, K1),
        }
    }
}

impl Default for ValHasher {
    fn default() -> Self {
        ValHasher::new()
    }
}

impl Hasher for ValHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.inner.write(bytes);
    }
    fn finish(&self) -> u64 {
        self.inner.finish()
    }
}

/// SipHash-C-D over a byte stream.
#[derive(Debug, Clone)]
pub(crate) struct Sip<const C: usize, const D: usize> {
    v: [u64; 4],
    /// Bytes not yet compressed, little-endian in the low `ntail` bytes.
    tail: u64,
    ntail: usize,
    length: u64,
}

impl<const C: usize, const D: usize> Sip<C, D> {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Sip {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..C {
            Self::round(&mut self.v);
        }
        self.v[0] ^= m;
    }

    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        self.length = self.length.wrapping_add(bytes.len() as u64);
        while self.ntail != 0 && !bytes.is_empty() {
            self.tail |= u64::from(bytes[0]) << (8 * self.ntail);
            self.ntail += 1;
            bytes = &bytes[1..];
            if self.ntail == 8 {
                let m = self.tail;
                self.compress(m);
                self.tail = 0;
                self.ntail = 0;
            }
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.compress(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.tail |= u64::from(b) << (8 * self.ntail);
            self.ntail += 1;
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        let mut s = self.clone();
        let b = ((self.length & 0xff) << 56) | self.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..D {
            Self::round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SipHash-2-4 shares every line with SipHash-1-3 but the round counts, and std still
    /// ships it: agreeing with std on every length and split checks the shared code.
    #[test]
    #[allow(deprecated)]
    fn sip24_matches_std() {
        let data: Vec<u8> = (0..64u8).collect();
        for len in 0..data.len() {
            for split in 0..=len {
                let mut ours = Sip::<2, 4>::new(K0, K1);
                ours.write(&data[..split]);
                ours.write(&data[split..len]);
                let mut theirs = std::hash::SipHasher::new_with_keys(K0, K1);
                theirs.write(&data[..len]);
                assert_eq!(ours.finish(), theirs.finish(), "len {len} split {split}");
            }
        }
    }

    /// The reference implementation's first SipHash-2-4 vector (empty input).
    #[test]
    fn sip24_reference_vector() {
        let s = Sip::<2, 4>::new(K0, K1);
        assert_eq!(s.finish(), 0x726f_db47_dd0e_0e31);
    }

    /// CPython 3.11 hashes bytes with SipHash-1-3; with `PYTHONHASHSEED=0` its keys are
    /// zero. These are `hash(b"...") % 2**64` from such a run.
    #[test]
    fn sip13_matches_cpython() {
        let cases: [(&[u8], u64); 3] = [
            (b"a", 0x4074_48d2_b89b_1813),
            (b"shmval", 0xbbc9_6b2c_ffbc_abca),
            (b"0123456789abcdefXYZ", 0x283e_7687_cd67_183b),
        ];
        for (bytes, want) in cases {
            let mut s = Sip::<1, 3>::new(0, 0);
            s.write(bytes);
            assert_eq!(s.finish(), want, "{bytes:?}");
        }
    }
}

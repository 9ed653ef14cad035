//! The fixed hash every process computes alike: SipHash-1-3 with constant keys.
//!
//! A [`Tab`](super::Tab) in shared memory is read by processes that did not build it, so
//! they must agree on every key's hash: std's `RandomState` draws new keys per process and
//! cannot be used. [`ValHasher`] is SipHash-1-3 (one compression and
//! three finalization rounds, as std's own hasher) keyed with the reference test keys
//! `k0 = 0x0706050403020100`, `k1 = 0x0f0e0d0c0b0a0908`. Values feed it a canonical byte
//! encoding (see [`Val::stable_hash`](super::Val::stable_hash)), so the result depends on
//! neither the platform's endianness nor the Rust version.
//!
//! The keys are public, so the hash offers no defence against keys chosen to collide;
//! tables of untrusted keys degrade to linear probing, never to wrong answers.

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use super::Val;

/// First SipHash key (the reference implementation's test key, bytes 0..8).
pub const K0: u64 = 0x0706_0504_0302_0100;
/// Second SipHash key (bytes 8..16).
pub const K1: u64 = 0x0f0e_0d0c_0b0a_0908;

/// The hasher state of [`Tab`](super::Tab) and [`OTab`](super::OTab): builds
/// [`TableHasher`]s, the same in every process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = TableHasher;
    fn build_hasher(&self) -> TableHasher {
        TableHasher {
            state: Table::Empty,
        }
    }
}

/// The hasher [`FixedState`] builds. A [`Val`](super::Val) key writes its
/// [`stable_hash`](super::Val::stable_hash), already SipHash-1-3 of the key: eight bytes
/// written alone are only mixed, not hashed again, so a table lookup hashes its key once.
/// Any other stream of bytes is hashed as [`ValHasher`] hashes it.
#[derive(Debug, Clone)]
pub struct TableHasher {
    state: Table,
}

#[derive(Debug, Clone)]
enum Table {
    Empty,
    Word(u64),
    Stream(ValHasher),
}

impl Hasher for TableHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.state = match std::mem::replace(&mut self.state, Table::Empty) {
            Table::Empty => match <[u8; 8]>::try_from(bytes) {
                Ok(word) => Table::Word(u64::from_le_bytes(word)),
                Err(_) => {
                    let mut h = ValHasher::new();
                    h.write(bytes);
                    Table::Stream(h)
                }
            },
            Table::Word(w) => {
                let mut h = ValHasher::new();
                h.write(&w.to_le_bytes());
                h.write(bytes);
                Table::Stream(h)
            }
            Table::Stream(mut h) => {
                h.write(bytes);
                Table::Stream(h)
            }
        };
    }

    fn finish(&self) -> u64 {
        match &self.state {
            Table::Empty => ValHasher::new().finish(),
            // A multiply folded on itself spreads a small integer's bits over the word
            // (the table takes bits from both ends); a SipHash output stays as uniform.
            Table::Word(w) => {
                let m = u128::from(*w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                (m as u64) ^ ((m >> 64) as u64)
            }
            Table::Stream(h) => h.finish(),
        }
    }
}

thread_local! {
    /// A string key whose stable hash is already known (read from the shared table it is
    /// copied out of), for the one insert [`with_known_hash`] runs: the string's buffer,
    /// its length, the hash. A buffer address of 0 (no `String` has it) means none.
    static KNOWN: Cell<(usize, usize, u64)> = const { Cell::new((0, 0, 0)) };
}

/// The stable hash of `s` if an insert in progress knows it (see [`with_known_hash`]).
#[inline]
pub(crate) fn known_hash(s: &str) -> Option<u64> {
    let (at, len, hash) = KNOWN.with(Cell::get);
    (at == s.as_ptr() as usize && len == s.len()).then_some(hash)
}

/// Runs `insert` on `key` (which hashes it once; a string moved keeps its buffer) with the
/// key's [`Val::stable_hash`] known to be `hash` (if given), so that it is not computed
/// again. Only a string key uses it; a wrong `hash` (a corrupt table) only puts the key
/// where lookups miss it, as the shared table's own lookups do.
#[inline]
#[cfg_attr(shmval_loom, allow(dead_code))] // the shared values are not built under loom
pub(crate) fn with_known_hash<R>(key: Val, hash: Option<u64>, insert: impl FnOnce(Val) -> R) -> R {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            KNOWN.with(|k| k.set((0, 0, 0)));
        }
    }
    let (Val::Str(s), Some(hash)) = (&key, hash) else {
        return insert(key);
    };
    KNOWN.with(|k| k.set((s.as_ptr() as usize, s.len(), hash)));
    let _clear = Clear;
    insert(key)
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

/// Up to eight bytes as a little-endian word, in at most two loads (overlapping ones
/// agree where they overlap): no copy of a length known only at run time.
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
        u64::from(lo) | (u64::from(hi) << (8 * (n - 4)))
    } else if n >= 2 {
        let lo = u16::from_le_bytes([b[0], b[1]]);
        let hi = u16::from_le_bytes([b[n - 2], b[n - 1]]);
        u64::from(lo) | (u64::from(hi) << (8 * (n - 2)))
    } else if n == 1 {
        u64::from(b[0])
    } else {
        0
    }
}

/// [`Val::stable_hash`] of `Val::Str(s)`, computed as one message: the tag byte `a` and
/// the first seven bytes of the length make the first word, so the stream starts whole
/// instead of in three writes. The same hash as `hash_into` gives (tested).
#[inline]
pub(crate) fn str_stable_hash(s: &str) -> u64 {
    let mut h = Sip::<1, 3>::new(K0, K1);
    let n = s.len() as u64;
    h.compress(u64::from(b'a') | (n << 8));
    h.tail = n >> 56;
    h.ntail = 1;
    h.length = 9;
    h.write(s.as_bytes());
    h.finish()
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
        if self.ntail != 0 {
            // Tops the pending word up with as many bytes as fit, in one load.
            let take = (8 - self.ntail).min(bytes.len());
            self.tail |= load_le(&bytes[..take]) << (8 * self.ntail);
            self.ntail += take;
            bytes = &bytes[take..];
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.compress(load_le(chunk));
        }
        let rest = chunks.remainder();
        self.tail = load_le(rest);
        self.ntail = rest.len();
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

    /// A table hasher fed one word mixes it; fed anything else, it is `ValHasher`, split
    /// anywhere; and a `Tab` keyed by values finds what it holds.
    #[test]
    fn table_hasher_passes_a_word_and_streams_the_rest() {
        let table = |parts: &[&[u8]]| {
            let mut h = FixedState.build_hasher();
            for p in parts {
                h.write(p);
            }
            h.finish()
        };
        let sip = |bytes: &[u8]| {
            let mut h = ValHasher::new();
            h.write(bytes);
            h.finish()
        };
        let data: Vec<u8> = (0..24u8).collect();
        assert_ne!(table(&[&data[..8]]), sip(&data[..8]));
        assert_eq!(table(&[&data[..8]]), table(&[&data[..8]]));
        assert_ne!(table(&[&1u64.to_le_bytes()]), table(&[&2u64.to_le_bytes()]));
        for split in [0, 3, 8, 9, 16] {
            assert_eq!(
                table(&[&data[..split], &data[split..]]),
                sip(&data),
                "{split}"
            );
        }
        assert_eq!(table(&[]), sip(&[]));
        let tab: crate::Tab = (0..1000)
            .map(|i| (crate::Val::from(format!("k{i}")), crate::Val::from(i)))
            .collect();
        for i in 0..1000 {
            assert_eq!(tab[&crate::Val::from(format!("k{i}"))], crate::Val::from(i));
        }
    }

    /// A string's hash in one message is the streamed one, at every length around the
    /// word boundaries and for non-ASCII text.
    #[test]
    fn a_strings_hash_in_one_message_is_the_streamed_one() {
        let text = "abcdefghijklmnopqrstuvwxyzé日本語0123456789".repeat(3);
        for end in (0..=text.len()).filter(|&e| text.is_char_boundary(e)) {
            let s = &text[..end];
            let mut h = ValHasher::new();
            Val::from(s).hash_into(&mut h);
            assert_eq!(str_stable_hash(s), h.finish(), "{end} bytes");
            assert_eq!(Val::from(s).stable_hash(), h.finish(), "{end} bytes");
        }
    }

    /// The word a value's `Hash` feeds a hasher.
    fn fed(v: &Val) -> u64 {
        struct Last(u64);
        impl Hasher for Last {
            fn write(&mut self, bytes: &[u8]) {
                self.0 = u64::from_le_bytes(bytes.try_into().expect("one word"));
            }
            fn finish(&self) -> u64 {
                self.0
            }
        }
        let mut h = Last(0);
        std::hash::Hash::hash(v, &mut h);
        h.0
    }

    /// A hash known for one insert stands for that insert's key only, and only until the
    /// insert returns or panics.
    #[test]
    fn a_known_hash_lasts_one_insert() {
        let key = Val::from("k");
        let fake = key.stable_hash() ^ 1;
        let other = Val::from("k");
        with_known_hash(key.clone(), Some(fake), |k| {
            assert_eq!(fed(&k), fake, "the key moved in");
            assert_eq!(
                fed(&other),
                other.stable_hash(),
                "an equal string elsewhere"
            );
        });
        assert_eq!(KNOWN.with(Cell::get), (0, 0, 0));
        with_known_hash(key.clone(), None, |k| assert_eq!(fed(&k), k.stable_hash()));
        let r = std::panic::catch_unwind(|| {
            with_known_hash(key.clone(), Some(fake), |_| panic!("an insert that fails"))
        });
        assert!(r.is_err());
        assert_eq!(KNOWN.with(Cell::get), (0, 0, 0));
    }

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

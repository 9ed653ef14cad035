//! The identity a lock word stores: a thread id and a start-time key.

/// Bits of the start-time key kept in an [`Owner`].
pub(crate) const KEY_BITS: u32 = 30;
const KEY_MASK: u64 = (1 << KEY_BITS) - 1;

/// A thread's identity as stored in a lock word: its kernel thread id (low 32 bits) and a
/// key derived from the thread's start time (next 30 bits).
///
/// The key is what makes the identity safe against thread-id reuse: a new thread that gets
/// a dead owner's id has a different start time, so it is not mistaken for the owner.
/// Two threads collide only if one id is reused within one clock tick of the other's start
/// modulo 2^30 ticks (about 124 days at 100 ticks a second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner(u64);

impl Owner {
    /// Builds an identity from a thread id (non-zero) and a start-time key (truncated to 30
    /// bits).
    pub const fn new(tid: u32, start_key: u64) -> Owner {
        Owner(tid as u64 | ((start_key & KEY_MASK) << 32))
    }

    /// Rebuilds an identity from its packed bits (as read from a lock word), if it names a
    /// thread.
    pub const fn from_bits(bits: u64) -> Option<Owner> {
        let bits = bits & ((1 << (32 + KEY_BITS)) - 1);
        if bits as u32 == 0 {
            None
        } else {
            Some(Owner(bits))
        }
    }

    /// The packed form stored in a lock word: 62 bits, never zero.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The kernel thread id.
    pub const fn tid(self) -> u32 {
        self.0 as u32
    }

    /// The start-time key (30 bits).
    pub const fn start_key(self) -> u64 {
        self.0 >> 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let o = Owner::new(4_000_000, (1 << 40) | 12345);
        assert_eq!(o.tid(), 4_000_000);
        assert_eq!(o.start_key(), 12345);
        assert_eq!(Owner::from_bits(o.bits() | (1 << 63) | (1 << 62)), Some(o));
        assert_eq!(Owner::from_bits(7 << 32), None);
    }
}

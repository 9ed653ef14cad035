//! Who holds each side of a lane: one handle of one process at a time sends, and one
//! receives. A handle takes a side with its first send or receive and leaves it when it is
//! dropped; a side whose holder's process died is taken over, after the dead holder's
//! operation in progress is completed and resolved ([`Lane::recover_sender`],
//! [`Lane::recover_receiver`]), by the next handle that wants it or by the recovery of
//! the dead process, whichever comes first.
//!
//! A side's word holds its holder's process identity ([`Owner`] bits), with [`RECOVERING`]
//! set while that process completes a dead holder's operation; a second word says which
//! of the process's handles holds it. The takeover is one compare-and-swap from the dead
//! holder's word, so exactly one process completes a dead holder's operation; if that
//! process dies too, the next one does it again (the completion is idempotent).

use super::Lane;
use crate::queue::ring::OpResolver;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{pause, Owner, Platform};

/// Set in a side's word while its process completes a dead holder's operation.
pub(crate) const RECOVERING: u64 = 1 << 63;

/// A side of a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The one that sends.
    Sender,
    /// The one that receives.
    Receiver,
}

/// What [`Lane::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The side is the calling handle's.
    Mine,
    /// Another handle whose process is alive holds the side, or completes a dead holder's
    /// operation now.
    Held,
}

impl<P: Platform> Lane<'_, P> {
    fn role_words(&self, side: Side) -> (&AtomicU64, &AtomicU64) {
        let r = &self.hdr.roles;
        match side {
            Side::Sender => (&r.sender, &r.sender_handle),
            Side::Receiver => (&r.receiver, &r.receiver_handle),
        }
    }

    /// Takes `side` for handle `handle` (not 0) of process `me`, unless a handle of a live
    /// process holds it. A holder whose process is dead is replaced: its operation in
    /// progress is completed and resolved with `resolver` first.
    pub fn claim(
        &self,
        side: Side,
        me: Owner,
        handle: u64,
        resolver: Option<&dyn OpResolver>,
    ) -> Claim {
        let (role, who) = self.role_words(side);
        loop {
            let w = role.load(Ordering::Acquire);
            if w == 0 {
                if role
                    .compare_exchange(0, me.bits(), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    who.store(handle, Ordering::Release);
                    return Claim::Mine;
                }
                continue;
            }
            let holder = w & !RECOVERING;
            if holder == me.bits() {
                let mine = w & RECOVERING == 0 && who.load(Ordering::Acquire) == handle;
                return if mine { Claim::Mine } else { Claim::Held };
            }
            if Owner::from_bits(holder).is_some_and(P::is_alive) {
                return Claim::Held;
            }
            if role
                .compare_exchange(
                    w,
                    me.bits() | RECOVERING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                pause("lane.role.taken");
                self.recover_side(side, resolver);
                who.store(handle, Ordering::Release);
                role.store(me.bits(), Ordering::Release);
                return Claim::Mine;
            }
        }
    }

    /// Handle `handle` of process `me` leaves `side`, if it holds it.
    pub fn release(&self, side: Side, me: Owner, handle: u64) {
        let (role, who) = self.role_words(side);
        if role.load(Ordering::Acquire) == me.bits() && who.load(Ordering::Relaxed) == handle {
            who.store(0, Ordering::Relaxed);
            role.store(0, Ordering::Release);
        }
    }

    /// For the recovery of the dead process `dead`, by process `me`: if `dead` holds
    /// `side` (or died completing another's operation there), completes and resolves its
    /// operation with `resolver` and frees the side. `false` if a live process is
    /// completing it now: ask again later.
    pub fn recover_role(
        &self,
        side: Side,
        dead: Owner,
        me: Owner,
        resolver: Option<&dyn OpResolver>,
    ) -> bool {
        let (role, who) = self.role_words(side);
        loop {
            let w = role.load(Ordering::Acquire);
            let holder = w & !RECOVERING;
            if holder != dead.bits() {
                if w & RECOVERING == 0 {
                    // Free, or held by another: nothing of the dead's is left there.
                    return true;
                }
                if Owner::from_bits(holder).is_some_and(P::is_alive) {
                    return false;
                }
            }
            if role
                .compare_exchange(
                    w,
                    me.bits() | RECOVERING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                self.recover_side(side, resolver);
                who.store(0, Ordering::Relaxed);
                role.store(0, Ordering::Release);
                return true;
            }
        }
    }

    fn recover_side(&self, side: Side, resolver: Option<&dyn OpResolver>) {
        match side {
            Side::Sender => self.recover_sender(resolver),
            Side::Receiver => self.recover_receiver(resolver),
        }
    }
}

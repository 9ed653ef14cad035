//! Recovery of a lane after one of its sides died: the count or the empty stamps its
//! commit left behind, and the resolution of the operation it left in progress.

use super::Lane;
use crate::queue::ring::OpResolver;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Platform;

impl<P: Platform> Lane<'_, P> {
    /// After the sender died: completes the count its commit left behind, resolves the
    /// operation it left in progress with `resolver` (given the counts as the lane now
    /// stands), and clears it, so that another sender can take its place. Call only once
    /// the sender's process is known dead.
    pub fn recover_sender(&self, resolver: Option<&dyn OpResolver>) {
        let s = &self.hdr.sender;
        let t = s.count.load(Ordering::Relaxed);
        // Whether the send at `t` committed, from its slot's stamp alone (the dead sender
        // is the only one to write it before its commit): a death between the stamp and
        // the count leaves the count behind, and the count follows.
        let stamp = self.slot(t).stamp.load(Ordering::Acquire);
        let full = t.wrapping_mul(2).wrapping_add(1);
        let received = t.wrapping_add(self.cap).wrapping_mul(2);
        let waiting =
            t >= self.cap && stamp == t.wrapping_sub(self.cap).wrapping_mul(2).wrapping_add(1);
        if stamp == full || stamp == received {
            s.count.store(t.wrapping_add(1), Ordering::Release);
        } else if stamp != t.wrapping_mul(2) && !waiting {
            // None of our stores leaves that stamp.
            self.poison();
        }
        self.hdr.rare.sender_sleeps.store(0, Ordering::Relaxed);
        self.resolve(&s.op, resolver);
    }

    /// After the receiver died: stores the empty stamps its commit left behind, resolves
    /// the operation it left in progress with `resolver`, and clears it, so that another
    /// receiver can take its place. Call only once the receiver's process is known dead.
    pub fn recover_receiver(&self, resolver: Option<&dyn OpResolver>) {
        let h = self.hdr.receiver.count.load(Ordering::Relaxed);
        // Received positions still stamped full: at most one round behind `head`.
        let mut p = h.saturating_sub(self.cap);
        while p < h {
            if self.slot(p).stamp.load(Ordering::Relaxed) == p.wrapping_mul(2).wrapping_add(1) {
                self.stamp_empty(p, p.wrapping_add(1));
            }
            p = p.wrapping_add(1);
        }
        self.hdr.rare.receiver_sleeps.store(0, Ordering::Relaxed);
        self.resolve(&self.hdr.receiver.op, resolver);
        Self::wake(&self.hdr.rare.sender_sleeps, &self.hdr.rare.not_full);
    }

    fn resolve(&self, op_word: &AtomicU64, resolver: Option<&dyn OpResolver>) {
        let op = op_word.load(Ordering::Relaxed);
        if op == 0 {
            return;
        }
        if let Some(r) = resolver {
            let (tail, head) = self.counts();
            r.resolve(op, head, tail);
            op_word.store(0, Ordering::Relaxed);
        }
    }
}

//! The state machine of a process registry's slots, apart from where the slots live and
//! how a process's liveness is read: the region's registry runs it on its words with
//! byte-range locks of the region file, the loom models on the heap with model deaths.
//!
//! A slot has a state word (low byte: free, claiming, live, reclaiming; the rest: the
//! incarnation, bumped by each claim, so one compare-and-swap moves both and a stale
//! view never matches a later incarnation) and a reclaimer word (who gives back what the
//! slot's dead process held). Liveness is a lock per slot that the kernel releases when
//! its holder dies.
//!
//! - Claim: free → claiming (incarnation + 1), take the lock, fill in the identity, clear
//!   the reclaimer word, claiming → live. A claimer that loses its slot to a survivor
//!   before the last step (it was seen unlocked, so dead) drops the lock and goes on.
//! - Leave: live → free, by the holder.
//! - Reclaim: a slot claiming or live whose lock is free, or reclaiming under a reclaimer
//!   that is gone, is dead. A survivor swaps the reclaimer word from what it read to
//!   itself, then moves claiming/live → reclaiming (a compare-and-swap naming the
//!   incarnation it judged), or, for a slot already reclaiming, checks that the state is
//!   still the one it judged. Only then is the slot its to give back; otherwise it puts
//!   the reclaimer word back. The re-check closes the window in which the slot was
//!   finished, freed and claimed again by a new process (whose claim clears the reclaimer
//!   word, so the swap alone could succeed).
//! - Finish: done, clear the slot's data, move reclaiming → free, then clear the
//!   reclaimer word (a claimer that dies before taking the lock is then seen dead); not
//!   done, clear the reclaimer word so the next survivor tries again.

use super::atomic::{AtomicU64, Ordering};
use super::pause;

/// Nobody's: may be claimed.
pub(crate) const FREE: u64 = 0;
/// Being claimed by a process that has not taken its lock yet (or died doing so).
pub(crate) const CLAIMING: u64 = 1;
/// A process's.
pub(crate) const LIVE: u64 = 2;
/// A survivor gives back what its dead process held.
pub(crate) const RECLAIMING: u64 = 3;

/// A state word: `state` in the low byte, `incarnation` above.
pub(crate) fn pack(state: u64, incarnation: u64) -> u64 {
    state | incarnation << 8
}

/// Names a registered process as a reclaimer: its slot plus one (never 0) and the slot's
/// incarnation.
pub(crate) fn reclaimer_id(slot: u32, incarnation: u64) -> u64 {
    (u64::from(slot) + 1) | incarnation << 20
}

/// A table of slots and their liveness locks.
pub(crate) trait SlotTable {
    /// Slot `i`'s state and reclaimer words.
    fn words(&self, i: u32) -> Option<(&AtomicU64, &AtomicU64)>;
    /// Takes slot `i`'s lock for the caller; `false` if someone holds it.
    fn lock(&self, i: u32) -> bool;
    /// Drops slot `i`'s lock.
    fn unlock(&self, i: u32);
    /// Whether slot `i`'s lock is held (the caller's own: yes). When unsure: yes, so a
    /// live process is never reclaimed.
    fn locked(&self, i: u32) -> bool;
    /// Clears slot `i`'s data words: its holdings list (a claimer's fresh slot, a
    /// reclaimed one).
    fn clear_data(&self, i: u32);
}

/// Claims slot `i` if it is free, calling `fill` once its lock is taken (to write the
/// identity). Returns the incarnation claimed.
pub(crate) fn claim(t: &impl SlotTable, i: u32, fill: impl FnOnce()) -> Option<u64> {
    let (state, reclaimer) = t.words(i)?;
    let cur = state.load(Ordering::Acquire);
    if cur & 0xff != FREE {
        return None;
    }
    let inc = (cur >> 8) + 1;
    state
        .compare_exchange(
            cur,
            pack(CLAIMING, inc),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .ok()?;
    if !t.lock(i) {
        // Someone still holds the lock (a process between leaving and closing, or
        // another handle of ours): give the slot back and try another.
        let _ = state.compare_exchange(
            pack(CLAIMING, inc),
            pack(FREE, inc),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        return None;
    }
    pause("registry.claim.locked");
    fill();
    t.clear_data(i);
    // Release: a survivor whose swap of the reclaimer word reads this store also sees the
    // slot claiming (a later incarnation), so its re-check cannot pass on a stale state.
    reclaimer.store(0, Ordering::Release);
    // SYNC POINT: release, publishing the identity with the live state.
    if state
        .compare_exchange(
            pack(CLAIMING, inc),
            pack(LIVE, inc),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        // A survivor took the slot for a dead claimer before the lock was ours: leave it.
        t.unlock(i);
        return None;
    }
    Some(inc)
}

/// Gives slot `i` of incarnation `inc` back (a normal leave, by its holder).
pub(crate) fn leave(t: &impl SlotTable, i: u32, inc: u64) {
    if let Some((state, _)) = t.words(i) {
        let _ = state.compare_exchange(
            pack(LIVE, inc),
            pack(FREE, inc),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Whether the reclaimer word `r` names a registered process that is alive.
fn reclaimer_live(t: &impl SlotTable, r: u64) -> bool {
    let (slot, inc) = ((r & 0xfffff) as u32, r >> 20);
    slot != 0
        && t.words(slot - 1)
            .is_some_and(|(s, _)| s.load(Ordering::Acquire) == pack(LIVE, inc))
        && t.locked(slot - 1)
}

/// Whether slot `i` waits to be reclaimed: claiming or live while its lock is free (its
/// process died), or reclaiming without a live reclaimer. Returns its state word.
pub(crate) fn dead_state(t: &impl SlotTable, i: u32) -> Option<u64> {
    let (state, reclaimer) = t.words(i)?;
    let s = state.load(Ordering::Acquire);
    let waiting = match s & 0xff {
        CLAIMING | LIVE => !t.locked(i),
        RECLAIMING => true,
        _ => false,
    };
    (waiting && !reclaimer_live(t, reclaimer.load(Ordering::Acquire))).then_some(s)
}

/// Takes slot `i` to reclaim, as the reclaimer `me` (see [`reclaimer_id`]), if its process
/// is dead and nobody else reclaims it. Returns the dead incarnation.
pub(crate) fn claim_dead(t: &impl SlotTable, i: u32, me: u64) -> Option<u64> {
    let (state, reclaimer) = t.words(i)?;
    let r = reclaimer.load(Ordering::Acquire);
    let s = dead_state(t, i)?;
    reclaimer
        .compare_exchange(r, me, Ordering::AcqRel, Ordering::Relaxed)
        .ok()?;
    let inc = s >> 8;
    let ours = if s & 0xff == RECLAIMING {
        // Still the reclaiming we judged, not a later incarnation's slot.
        state.load(Ordering::Acquire) == s
    } else {
        state
            .compare_exchange(
                s,
                pack(RECLAIMING, inc),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    };
    if !ours {
        // The slot changed under us: let it go.
        let _ = reclaimer.compare_exchange(me, r, Ordering::AcqRel, Ordering::Relaxed);
        return None;
    }
    pause("registry.reclaim.claimed");
    Some(inc)
}

/// Ends the reclaiming of slot `i` (incarnation `inc`) by the reclaimer `me`: with `done`,
/// clears its data and frees it (returns `true` if this call freed it); otherwise leaves
/// it reclaiming with no reclaimer, for the next survivor.
pub(crate) fn finish(t: &impl SlotTable, i: u32, inc: u64, me: u64, done: bool) -> bool {
    let Some((state, reclaimer)) = t.words(i) else {
        return false;
    };
    if !done {
        reclaimer.store(0, Ordering::Release);
        return false;
    }
    t.clear_data(i);
    // SYNC POINT: release, so a process claiming the slot sees it cleared.
    let freed = state
        .compare_exchange(
            pack(RECLAIMING, inc),
            pack(FREE, inc),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_ok();
    // Not before the slot is free: a survivor could take a slot still being finished.
    // After, a claimer that dies before taking the lock is not shielded by our name.
    let _ = reclaimer.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
    freed
}

//! Model checks of the registry's slot protocol (run with `RUSTFLAGS="--cfg shmval_loom"`):
//! processes claim slots, leave, or die at every step (claiming, reclaiming), while
//! survivors reclaim. Checked: no two processes ever own one slot, a live process's
//! holdings are never given back, a dead process's are given back exactly once even
//! when its reclaimer dies too, and every dead process's slot ends free.
//!
//! A slot's lock is a holder word that counts as free once its holder has died, as the
//! kernel drops a dead process's byte-range lock. A process's holdings are one bit (its
//! model thread id) that it lists in its slot's data word and then sets in `held`: the
//! ledger's order, listed before held.

use std::sync::Arc;

use loom::thread;

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::slots::{self, reclaimer_id, SlotTable, FREE};
use super::{Model, Owner, Platform};

const SLOTS: usize = 3;

struct Table {
    state: [AtomicU64; SLOTS],
    reclaimer: [AtomicU64; SLOTS],
    data: [AtomicU64; SLOTS],
    lock: [AtomicU32; SLOTS],
    /// Bit `tid` set: that process holds its resource.
    held: AtomicU64,
    /// Per process: how many times its resource was given back.
    given: [AtomicU32; 16],
}

fn alive(tid: u32) -> bool {
    Model::is_alive(Owner::new(tid, 0))
}

fn me() -> u32 {
    Model::current().tid()
}

impl SlotTable for Table {
    fn words(&self, i: u32) -> Option<(&AtomicU64, &AtomicU64)> {
        let i = i as usize;
        (i < SLOTS).then(|| (&self.state[i], &self.reclaimer[i]))
    }

    fn lock(&self, i: u32) -> bool {
        let l = &self.lock[i as usize];
        let cur = l.load(Ordering::SeqCst);
        (cur == 0 || !alive(cur))
            && l.compare_exchange(cur, me(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    fn unlock(&self, i: u32) {
        let _ = self.lock[i as usize].compare_exchange(me(), 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn locked(&self, i: u32) -> bool {
        let cur = self.lock[i as usize].load(Ordering::SeqCst);
        cur != 0 && alive(cur)
    }

    fn clear_data(&self, i: u32) {
        self.data[i as usize].store(0, Ordering::SeqCst);
    }
}

impl Table {
    fn new() -> Arc<Table> {
        Arc::new(Table {
            state: Default::default(),
            reclaimer: Default::default(),
            data: Default::default(),
            lock: Default::default(),
            held: AtomicU64::new(0),
            given: Default::default(),
        })
    }

    /// Claims the first free slot, then lists and takes this process's resource.
    fn attach(&self) -> Option<(u32, u64)> {
        let (i, inc) = (0..SLOTS as u32).find_map(|i| Some((i, slots::claim(self, i, || {})?)))?;
        let bit = 1u64 << me();
        self.data[i as usize].store(bit, Ordering::SeqCst);
        self.held.fetch_or(bit, Ordering::SeqCst);
        Some((i, inc))
    }

    /// A normal leave: gives its resource back itself, then the slot.
    fn detach(&self, (i, inc): (u32, u64)) {
        self.held.fetch_and(!(1u64 << me()), Ordering::SeqCst);
        self.data[i as usize].store(0, Ordering::SeqCst);
        slots::leave(self, i, inc);
        self.unlock(i);
    }

    /// A survivor in slot `(i, inc)` reclaims every dead process's slot it can.
    fn reclaim(&self, (me_slot, me_inc): (u32, u64)) {
        let id = reclaimer_id(me_slot, me_inc);
        for i in (0..SLOTS as u32).filter(|&i| i != me_slot) {
            let Some(inc) = slots::claim_dead(self, i, id) else {
                continue;
            };
            let d = self.data[i as usize].load(Ordering::SeqCst);
            if d != 0 {
                let tid = d.trailing_zeros();
                assert!(
                    !alive(tid),
                    "slot {i}: a live process's holdings given back"
                );
                if self.held.fetch_and(!d, Ordering::SeqCst) & d != 0 {
                    self.given[tid as usize].fetch_add(1, Ordering::SeqCst);
                }
            }
            slots::finish(self, i, inc, id, true);
        }
    }

    /// At the end, with only `survivors` alive: everything a dead process held was given
    /// back once, and no slot is a dead process's.
    fn check(&self, dead: &[u32]) {
        let held = self.held.load(Ordering::SeqCst);
        for &t in dead {
            assert_eq!(
                held & 1 << t,
                0,
                "process {t}'s holdings were not given back"
            );
            assert!(
                self.given[t as usize].load(Ordering::SeqCst) <= 1,
                "given back twice"
            );
        }
        for i in 0..SLOTS as u32 {
            if !self.locked(i) {
                assert_eq!(
                    self.state[i as usize].load(Ordering::SeqCst) & 0xff,
                    FREE,
                    "slot {i} of a dead process is not free"
                );
            }
        }
    }
}

/// Runs `f` as a process that dies where it is armed to (`Model::die_at`) or, if it gets
/// to the end, dies there holding what it holds; returns its thread id.
fn dying(t: &Arc<Table>, point: Option<&'static str>, f: fn(&Table)) -> thread::JoinHandle<u32> {
    let t = t.clone();
    thread::spawn(move || {
        if let Some(p) = point {
            Model::die_at(p);
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&t)));
        if alive(me()) {
            Model::die();
        }
        me()
    })
}

/// A process attaches and dies (at `point`, or once attached) while a survivor reclaims
/// and another process attaches and leaves.
fn one_dies_at(point: Option<&'static str>) {
    loom::model(move || {
        let t = Table::new();
        let survivor = t.attach().expect("a free slot");
        let victim = dying(&t, point, |t| {
            t.attach();
        });
        let t2 = t.clone();
        let other = thread::spawn(move || {
            if let Some(s) = t2.attach() {
                t2.detach(s);
            }
        });
        t.reclaim(survivor);
        let dead = victim.join().unwrap();
        other.join().unwrap();
        t.reclaim(survivor);
        t.check(&[dead]);
    });
}

#[test]
fn a_process_dead_while_attached_is_reclaimed_once() {
    one_dies_at(None);
}

#[test]
fn a_process_dead_between_its_lock_and_its_claim_is_reclaimed() {
    one_dies_at(Some("registry.claim.locked"));
}

/// A process dies attached; two survivors reclaim at once, the first of which dies just
/// after taking the slot: the other (or a later pass) finishes, giving back once.
#[test]
fn a_reclaimer_that_dies_is_taken_over() {
    loom::model(|| {
        let t = Table::new();
        let survivor = t.attach().expect("a free slot");
        let victim = dying(&t, None, |t| {
            t.attach();
        });
        let dead = victim.join().unwrap();
        let t2 = t.clone();
        let reclaimer = thread::spawn(move || {
            let s = t2.attach();
            Model::die_at("registry.reclaim.claimed");
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some(s) = s {
                    t2.reclaim(s);
                }
            }));
            if alive(me()) {
                Model::die();
            }
            me()
        });
        t.reclaim(survivor);
        let dead2 = reclaimer.join().unwrap();
        t.reclaim(survivor);
        t.reclaim(survivor);
        t.check(&[dead, dead2]);
    });
}

/// A reclaimer gives up once (the slot stays reclaiming with no reclaimer) and then
/// finishes; meanwhile the slot may be claimed again by a new process that stays alive.
/// The survivor that judged the slot while it waited must not take the new process's
/// slot for the dead one's.
#[test]
fn a_slot_reclaimed_and_claimed_again_is_not_taken_for_the_dead() {
    loom::model(|| {
        let t = Table::new();
        let survivor = t.attach().expect("a free slot");
        let reclaimer_slot = t.attach().expect("a free slot");
        let victim = dying(&t, None, |t| {
            t.attach();
        });
        let dead = victim.join().unwrap();
        // The reclaimer takes the dead slot, gives up, then takes it again and finishes.
        let id = reclaimer_id(reclaimer_slot.0, reclaimer_slot.1);
        let inc = slots::claim_dead(&*t, 2, id).expect("the dead slot");
        slots::finish(&*t, 2, inc, id, false);
        let t2 = t.clone();
        let finisher = thread::spawn(move || t2.reclaim(reclaimer_slot));
        let t3 = t.clone();
        let newcomer = thread::spawn(move || t3.attach());
        t.reclaim(survivor);
        finisher.join().unwrap();
        newcomer.join().unwrap();
        t.check(&[dead]);
    });
}

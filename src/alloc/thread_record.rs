//! Which cache record each thread holds (see `cache`): a thread takes one of its
//! process's records with its first small allocation or free in a region and keeps it
//! until it exits, so that serving a block from the record takes no atomic
//! read-modify-write. Kept per region handle, by the handle's id, which no later handle
//! of the process reuses.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use crate::region::Region;

thread_local! {
    /// The record this thread looked up last: (region handle id, record offset, 0 for
    /// none); id 0 is no handle.
    static LAST: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// Every record this thread holds (and every handle it found none in), given back
    /// when the thread exits.
    static HELD: RefCell<Held> = const { RefCell::new(Held(Vec::new())) };
}

/// A record a thread holds: the handle's id, the record's offset (0: none), and the
/// handle, to give the record back through if it is still open when the thread exits.
struct Kept {
    id: u64,
    at: u64,
    region: Weak<Region>,
}

struct Held(Vec<Kept>);

impl Drop for Held {
    fn drop(&mut self) {
        // A drop in a later thread-local destructor finds no record and uses the heap.
        LAST.set((0, 0));
        for k in self.0.drain(..) {
            if let (true, Some(region)) = (k.at != 0, k.region.upgrade()) {
                super::cache::release(&region, k.at);
            }
        }
    }
}

/// The record this thread holds in handle `id`, if the last lookup was for that handle:
/// `Some(0)` when it holds none.
#[inline]
pub(super) fn last(id: u64) -> Option<u64> {
    let (last, at) = LAST.get();
    (last == id).then_some(at)
}

/// The record this thread holds in handle `id` (0: none), if it looked before.
pub(super) fn held(id: u64) -> Option<u64> {
    let at = HELD
        .try_with(|h| h.borrow().0.iter().find(|k| k.id == id).map(|k| k.at))
        .ok()
        .flatten()?;
    LAST.set((id, at));
    Some(at)
}

/// Notes that this thread holds record `at` of `region` (0: none), to give back when it
/// exits. `false` if the thread is exiting: then the caller gives a claimed record back.
pub(super) fn keep(region: &Arc<Region>, at: u64) -> bool {
    let id = region.handle_id();
    let kept = HELD
        .try_with(|h| {
            let mut h = h.borrow_mut();
            // Handles closed since: their records went back with them.
            h.0.retain(|k| k.id != id && k.region.strong_count() > 0);
            h.0.push(Kept {
                id,
                at,
                region: Arc::downgrade(region),
            });
        })
        .is_ok();
    if kept {
        LAST.set((id, at));
    }
    kept
}

//! Giving back what dead processes held, from the sides: the resolvers of directory users
//! (and of moves to and from the names directory, in [`names`](super::names)),
//! and the calls that run recovery (a process attaching, a blocked call waking,
//! [`ShmMain::recover`](super::ShmMain::recover)).

use super::directory::Directory;
use crate::alloc::Pool;
use crate::ledger::{self, Ctx, Entry, Kind, Ledger, Outcome, E_AUX, E_INDEX, E_PIPE};
use crate::region::Offset;

/// Installs every resolver (once per process): values, pipes, directory users, moves to
/// and from the names directory.
pub(crate) fn install_resolvers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::queue::install_resolvers();
        ledger::install(Kind::DirUser, resolve_user);
        ledger::install(Kind::Naming, super::names::resolve_naming);
    });
}

/// Gives back now what every dead process attached to `pool`'s region held, as far as it
/// can (see [`ShmMain::recover`](super::ShmMain::recover)), and returns what recovery has
/// given back in the region so far. Needs a handle registered in the region's registry
/// (an observer's gives back nothing).
pub fn recover(pool: &Pool) -> crate::ledger::Recovered {
    reclaim(pool);
    crate::ledger::recovered(pool.region())
}

/// Gives back what every dead process of `pool`'s region held, as far as it can now;
/// returns how many dead processes' slots it freed.
pub(crate) fn reclaim(pool: &Pool) -> usize {
    install_resolvers();
    ledger::reap(pool)
}

/// A free ledger entry for a side's user count (null if the region records nothing for
/// this process).
pub(crate) fn user_entry(pool: &Pool) -> Offset {
    install_resolvers();
    Ledger::of(pool.region())
        .and_then(|l| l.take(pool))
        .map_or(Offset::NULL, |e| e.offset())
}

/// Gives the entry at `off` (this process's) back to the free list.
pub(crate) fn put_entry(pool: &Pool, off: Offset) {
    if let (Some(e), Some(l)) = (Entry::at(pool.region(), off), Ledger::of(pool.region())) {
        e.set_kind(Kind::Free);
        l.put(e);
    }
}

/// A dead process's user count of a listed pipe: taken back (and the pipe removed if that
/// leaves it unused, empty and not kept). A death while the count changed leaves it.
fn resolve_user(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let held = e.get(E_INDEX);
    let dir = Directory::open(pool).ok();
    if held & ledger::flags::MOVING_REF != 0 {
        ctx.tally.suspects += 1;
    } else if held & ledger::flags::HELD_REF != 0 {
        e.set(E_INDEX, ledger::flags::MOVING_REF);
        if let Some(dir) = &dir {
            let _ = dir.give_back_user(Offset::new(e.get(E_AUX)), Offset::new(e.get(E_PIPE)));
        }
        ctx.tally.pipe_counts += 1;
    }
    // The process may have died between taking its count off and marking the entry
    // unused: mark it, for the next holder of the directory lock to look at.
    if let Some(dir) = &dir {
        let _ = dir.mark_entry(Offset::new(e.get(E_AUX)));
    }
    e.set_kind(Kind::Free);
    Outcome::Done
}

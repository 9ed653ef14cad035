//! Giving back what dead processes held: claiming their registry slots and resolving each
//! of their entries, kind by kind, with the resolvers the layers above install.

use std::sync::OnceLock;

use super::book::{chunks, entries_of, Ledger};
use super::entry::{flags, Entry, Kind, E_AUX, E_INDEX, E_PIPE};
use crate::alloc::Pool;
use crate::region::{DeadSlot, Offset, Region};
use crate::sync::atomic::Ordering;

/// What a resolver did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The entry is resolved and records [`Kind::Free`].
    Done,
    /// It cannot be resolved now (a lock held by a live process, a full pipe to
    /// redeliver into): the slot is left for the next reclaimer.
    Later,
}

/// Gives back what one entry of a dead process records; leaves it [`Kind::Free`] when
/// [`Outcome::Done`].
pub(crate) type Resolver = fn(&Pool, Entry<'_>, &mut Ctx) -> Outcome;

/// How long recovery inside a caller's own call waits for the pool lock: as long as a
/// drop waits before it defers.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_micros(200);

/// What the resolvers of one dead process share: the tally, and the pipes the process
/// held a handle of (alive, then, until its pipe entries are resolved in the last passes).
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) tally: Tally,
    held_pipes: Vec<(u64, u64)>,
    /// Whether the resolvers may wait (briefly) for a lock: not inside a caller's own
    /// call, which promises its bound (a `try_` call never waits for a lock).
    pub(crate) patient: bool,
    /// The dead process, as the sides of one-to-one pipes name their holders.
    pub(crate) dead: Option<crate::sync::Owner>,
}

impl Ctx {
    /// How long a resolver may wait for the pool lock: as long as a live holder keeps it
    /// when patient, else no longer than a drop waits ([`POOL_WAIT`]).
    pub(crate) fn pool_deadline(&self) -> Option<std::time::Instant> {
        if self.patient {
            None
        } else {
            std::time::Instant::now().checked_add(POOL_WAIT)
        }
    }

    /// Whether the dead process held a handle of the pipe at `off` with `generation`:
    /// its block is then still that pipe's, and may be read.
    pub(crate) fn holds_pipe(&self, off: u64, generation: u64) -> bool {
        self.held_pipes.contains(&(off, generation))
    }
}

/// What a reclaiming gave back, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Value references dropped (handles, values built or received and not sent).
    pub handles: u64,
    /// Values a dead receiver held that went back into their pipe.
    pub redelivered: u64,
    /// Sends and receives found half done and finished or undone.
    pub operations: u64,
    /// Pipe counts given back: handles, sending and receiving ends, directory users.
    pub pipe_counts: u64,
    /// Waiter counts of condition variables given back.
    pub waiters: u64,
    /// References left counted because a death came at a step where it cannot be known
    /// whether the count had changed yet ("not freed yet": never freed twice).
    pub suspects: u64,
    /// Pool bytes given back.
    pub bytes: u64,
}

static RESOLVERS: [OnceLock<Resolver>; Kind::COUNT] = [const { OnceLock::new() }; Kind::COUNT];

/// Installs the resolver of `kind` (the first installed stays).
pub(crate) fn install(kind: Kind, f: Resolver) {
    let _ = RESOLVERS[kind as usize].set(f);
}

/// The order kinds are resolved in: the locks of locked values the process held first (their
/// next holder settles the value's journal, which decides the entries it lists), then
/// operations on pipes (they decide whether a
/// value was sent or received), then blocks and values on their way into a container
/// (decided by reading the container, which the dead process's values still keep alive),
/// then values (and references moving to or from a names entry, decided under the names
/// lock), then the pipes' own counts (a value may go back into its pipe, which must
/// still be there), then directory users.
const PASSES: [&[Kind]; 6] = [
    &[Kind::Locking],
    &[Kind::Sending, Kind::Receiving],
    &[Kind::Building, Kind::Moving, Kind::Detaching],
    &[
        Kind::Acquiring,
        Kind::Releasing,
        Kind::Freeing,
        Kind::Value,
        Kind::Received,
        Kind::Naming,
    ],
    &[Kind::Pipe],
    &[Kind::DirUser],
];

/// Head words of the registry where the totals are kept (see `Region::registry_data`).
mod total {
    pub(super) const HANDLES: usize = 0;
    pub(super) const REDELIVERED: usize = 1;
    pub(super) const OPERATIONS: usize = 2;
    pub(super) const PIPE_COUNTS: usize = 3;
    pub(super) const WAITERS: usize = 4;
    pub(super) const SUSPECTS: usize = 5;
    pub(super) const BYTES: usize = 6;
    pub(super) const LAST_AT_NS: usize = 7;
    pub(super) const LAST_PID: usize = 8;
    pub(super) const LAST_HANDLES: usize = 9;
    pub(super) const LAST_BYTES: usize = 10;
    pub(super) const PROCESSES: usize = 11;
}

/// What recovery has given back in a region since it was made, and the last time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Dead processes whose slots were reclaimed.
    pub processes: u64,
    /// Totals by kind.
    pub total: Tally,
    /// When the last reclaiming ended (ns since the epoch; 0: never).
    pub last_at_ns: u64,
    /// The pid of the last process reclaimed.
    pub last_pid: u32,
    /// Handles and bytes the last reclaiming gave back.
    pub last_handles: u64,
    /// Bytes the last reclaiming gave back.
    pub last_bytes: u64,
}

/// What recovery gave back in `region` so far.
pub fn recovered(region: &Region) -> Recovered {
    let Some(d) = region.registry_data() else {
        return Recovered::default();
    };
    let g = |i: usize| d[i].load(Ordering::Relaxed);
    Recovered {
        processes: g(total::PROCESSES),
        total: Tally {
            handles: g(total::HANDLES),
            redelivered: g(total::REDELIVERED),
            operations: g(total::OPERATIONS),
            pipe_counts: g(total::PIPE_COUNTS),
            waiters: g(total::WAITERS),
            suspects: g(total::SUSPECTS),
            bytes: g(total::BYTES),
        },
        last_at_ns: g(total::LAST_AT_NS),
        last_pid: g(total::LAST_PID) as u32,
        last_handles: g(total::LAST_HANDLES),
        last_bytes: g(total::LAST_BYTES),
    }
}

/// Gives back what every dead process of the region held, as far as it can now; returns
/// how many slots it freed. Does nothing without a registered handle, or while another
/// thread of this process reclaims.
pub(crate) fn reap(pool: &Pool) -> usize {
    reap_with(pool, true)
}

/// [`reap`] from inside a caller's own call: the resolvers take locks only when they are
/// free or their holder is dead, and leave for later what a live holder keeps.
pub(crate) fn reap_quick(pool: &Pool) -> usize {
    reap_with(pool, false)
}

fn reap_with(pool: &Pool, patient: bool) -> usize {
    let region = pool.region();
    let Some(ledger) = Ledger::of(region) else {
        return 0;
    };
    if ledger.reaping.swap(1, Ordering::Acquire) != 0 {
        return 0;
    }
    let mut freed = 0;
    for dead in region.claim_dead() {
        let before = pool.stats().map(|s| s.used).ok();
        let mut ctx = Ctx {
            patient,
            dead: Some(crate::sync::process_owner_of(dead.pid, dead.start_key)),
            ..Ctx::default()
        };
        let done = give_back(pool, &dead, &mut ctx);
        if let (Some(b), Ok(s)) = (before, pool.stats()) {
            ctx.tally.bytes += b.saturating_sub(s.used);
        }
        record(region, &dead, &ctx.tally, done);
        region.finish_reclaim(dead, done);
        freed += usize::from(done);
    }
    ledger.reaping.store(0, Ordering::Release);
    freed
}

/// Adds `t` to the region's totals.
fn record(region: &Region, dead: &DeadSlot, t: &Tally, done: bool) {
    let Some(d) = region.registry_data() else {
        return;
    };
    let add = |i: usize, v: u64| {
        if v != 0 {
            d[i].fetch_add(v, Ordering::Relaxed);
        }
    };
    add(total::HANDLES, t.handles);
    add(total::REDELIVERED, t.redelivered);
    add(total::OPERATIONS, t.operations);
    add(total::PIPE_COUNTS, t.pipe_counts);
    add(total::WAITERS, t.waiters);
    add(total::SUSPECTS, t.suspects);
    add(total::BYTES, t.bytes);
    add(total::PROCESSES, u64::from(done));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    d[total::LAST_AT_NS].store(now, Ordering::Relaxed);
    d[total::LAST_PID].store(u64::from(dead.pid), Ordering::Relaxed);
    d[total::LAST_HANDLES].store(t.handles, Ordering::Relaxed);
    d[total::LAST_BYTES].store(t.bytes, Ordering::Relaxed);
}

/// Resolves every entry of the dead slot, pass by pass; frees its chunks and returns
/// `true` once all are free.
fn give_back(pool: &Pool, dead: &DeadSlot, ctx: &mut Ctx) -> bool {
    let region = pool.region();
    // The block cache first: it settles a block the process was moving between its cache
    // and a record of the entries below, which are resolved after.
    match pool.give_back_cache(dead.index, ctx.pool_deadline()) {
        Ok(g) => {
            ctx.tally.suspects += g.lost;
            ctx.tally.bytes += g.bytes;
        }
        Err(crate::alloc::AllocError::TimedOut) => return false,
        Err(_) => ctx.tally.suspects += 1,
    }
    let Some(data) = region.dead_slot_data(dead) else {
        return true;
    };
    let list = match chunks(region, data[0].load(Ordering::Acquire)) {
        Ok(list) => list,
        // A list that does not check out cannot be followed: what it held stays counted.
        Err(_) => {
            ctx.tally.suspects += 1;
            data[0].store(0, Ordering::Relaxed);
            return true;
        }
    };
    // A chunk allocated and not yet listed (its entries were never used): given back.
    let pending = data[1].load(Ordering::Acquire);
    if pending != 0 {
        let listed = list.iter().any(|c| c.get() == pending);
        let at = region.offset_of(&data[1]);
        match at {
            Some(at) if !listed => {
                // SAFETY: the allocator's record says the chunk was allocated to the dead
                // process, which had not listed it: nothing refers to it.
                let freed = unsafe {
                    pool.free_recorded(Offset::new(pending), at, &data[1], ctx.pool_deadline())
                };
                match freed {
                    Ok(()) => {}
                    Err(crate::alloc::AllocError::TimedOut) => return false,
                    Err(_) => {
                        ctx.tally.suspects += 1;
                        data[1].store(0, Ordering::Relaxed);
                    }
                }
            }
            _ => data[1].store(0, Ordering::Relaxed),
        }
    }
    for &c in &list {
        for e in entries_of(region, c) {
            if e.kind() == Some(Kind::Pipe) && e.get(E_INDEX) & flags::HELD_REF != 0 {
                ctx.held_pipes.push((e.get(E_PIPE), e.get(E_AUX)));
            }
        }
    }
    let mut all_done = true;
    for pass in PASSES {
        for &c in &list {
            for e in entries_of(region, c) {
                let Some(kind) = e.kind() else {
                    // Not a state this build writes: leave it, counted.
                    ctx.tally.suspects += 1;
                    e.set_kind(Kind::Free);
                    continue;
                };
                if kind == Kind::Free || !pass.contains(&kind) {
                    continue;
                }
                let outcome = match RESOLVERS[kind as usize].get() {
                    Some(f) => {
                        crate::fault::pause_point("reap.entry");
                        f(pool, e, ctx)
                    }
                    // This process never used the layer that resolves it: leave it for
                    // one that did.
                    None => Outcome::Later,
                };
                all_done &= outcome == Outcome::Done;
            }
        }
        if !all_done {
            // Later passes depend on this one (a value must be known sent before its
            // pipe's counts go): come back later.
            return false;
        }
    }
    data[0].store(0, Ordering::Release);
    for c in list {
        // SAFETY: the chunk belonged to the dead process's ledger, every entry in it is
        // free, and it is unlisted: nothing refers to it any more, and only this
        // reclaimer (the slot's, by compare-and-swap) frees it.
        let _ = unsafe { pool.free_soon(c, false) };
    }
    true
}

//! Sends, receives and pipe handles recorded in the process's ledger (see
//! [`crate::ledger`]), and giving back what a dead process's pipe entries recorded.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use super::lane::role::Side;
use super::pipe::Queue;
use super::ring::{op_committed, OpRecord, OpResolver, Wait};
use crate::alloc::Pool;
use crate::ledger::{
    self, flags, Ctx, Entry, Kind, Ledger, Outcome, E_AUX, E_INDEX, E_LOCAL, E_NEXT, E_OBJ, E_PIPE,
    E_WAIT, NO_INDEX,
};
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Os, Platform, WaitRecord};
use crate::val::shared::tracked;

/// Low bits of a ring's operation word: what the named entry does.
const OP_SEND: u64 = 1;
const OP_RECV: u64 = 2;
const OP_KIND: u64 = 63;

/// How long a reclaimer waits for a pipe's lock before leaving the pipe for later.
const RECOVERY_LOCK_WAIT: Duration = Duration::from_millis(20);

/// Installs the resolvers of the pipe kinds, and the value kinds (once per process).
pub(crate) fn install_resolvers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracked::install_resolvers();
        ledger::install(Kind::Sending, resolve_sending);
        ledger::install(Kind::Receiving, resolve_receiving);
        ledger::install(Kind::Received, resolve_received);
        ledger::install(Kind::Pipe, resolve_pipe);
    });
}

/// This process's ledger for `pool`'s region, with the resolvers installed.
pub(crate) fn ledger_of(pool: &Pool) -> Option<&Ledger> {
    install_resolvers();
    Ledger::of(pool.region())
}

/// A value's send, recorded in its entry.
pub(crate) struct SendRecord<'a> {
    pub(crate) e: Entry<'a>,
}

impl OpRecord for SendRecord<'_> {
    fn begin(&self, at: u64) -> u64 {
        self.e.set(E_INDEX, at);
        self.e.offset().get() | OP_SEND
    }

    fn committed(&self) {
        self.e.set_kind(Kind::Free);
    }

    fn wait_word(&self) -> Option<&AtomicU64> {
        Some(self.e.word(E_WAIT))
    }
}

/// A receive of one or more values: an entry per value, chained from the last.
pub(crate) struct RecvRecord<'a> {
    pool: &'a Pool,
    /// The entry taken before the receive: the first value's, and where a wait is recorded.
    first: Entry<'a>,
    /// The pipe and its generation.
    pipe: u64,
    generation: u64,
    /// What a committed entry records: [`Kind::Received`] for a pipe that redelivers.
    then: Kind,
    /// The last entry of the chain (`None` before the first value).
    last: Cell<Option<Entry<'a>>>,
    /// The first value (the first entry's), then the others, each with its entry (null:
    /// none could be taken): a single receive allocates nothing.
    first_item: Cell<u64>,
    rest: RefCell<Vec<(u64, Offset)>>,
}

impl<'a> RecvRecord<'a> {
    /// A record for a receive from the pipe at `pipe`; `first` is a free entry.
    pub(crate) fn new(
        pool: &'a Pool,
        first: Entry<'a>,
        pipe: u64,
        generation: u64,
        redelivers: bool,
    ) -> RecvRecord<'a> {
        first.set(E_INDEX, NO_INDEX);
        first.set(E_WAIT, 0);
        first.set(E_PIPE, pipe);
        first.set(E_AUX, generation);
        first.set_kind(Kind::Receiving);
        RecvRecord {
            pool,
            first,
            pipe,
            generation,
            then: if redelivers {
                Kind::Received
            } else {
                Kind::Value
            },
            last: Cell::new(None),
            first_item: Cell::new(0),
            rest: RefCell::new(Vec::new()),
        }
    }

    /// The values received, in order, each with the entry recording it.
    pub(crate) fn for_each(self, mut f: impl FnMut(u64, Offset)) {
        if self.last.get().is_none() {
            return;
        }
        f(self.first_item.get(), self.first.offset());
        for (item, e) in self.rest.take() {
            f(item, e);
        }
    }

    /// Records an item seen under the lock, before the commit.
    pub(crate) fn see(&self, item: u64) {
        let before = self.last.get();
        let first = before.is_none();
        let e = if first {
            self.first_item.set(item);
            Some(self.first)
        } else {
            Ledger::of(self.pool.region()).and_then(|l| l.take_quiet(self.pool))
        };
        let Some(e) = e else {
            self.rest.borrow_mut().push((item, Offset::NULL));
            return;
        };
        e.set(E_OBJ, item);
        e.set(crate::ledger::E_LOCAL, 1);
        e.set(E_PIPE, self.pipe);
        e.set(E_AUX, self.generation);
        e.set(E_NEXT, before.map_or(0, |b| b.offset().get()));
        e.set(E_INDEX, NO_INDEX);
        e.set_kind_then(Kind::Receiving, self.then);
        self.last.set(Some(e));
        if !first {
            self.rest.borrow_mut().push((item, e.offset()));
        }
    }

    /// The receive failed: the first entry goes back (nothing was taken).
    pub(crate) fn abandon(self) {
        debug_assert!(self.last.get().is_none());
        tracked::put(self.pool, self.first);
    }
}

impl OpRecord for RecvRecord<'_> {
    fn begin(&self, at: u64) -> u64 {
        match self.last.get() {
            Some(e) => {
                e.set(E_INDEX, at);
                e.offset().get() | OP_RECV
            }
            // No value was recorded: nothing to resolve.
            None => 0,
        }
    }

    fn committed(&self) {
        if self.last.get().is_none() {
            return;
        }
        self.first.set_kind(self.then);
        for &(_, off) in self.rest.borrow().iter() {
            if let Some(e) = Entry::at(self.pool.region(), off) {
                e.set_kind(self.then);
            }
        }
    }

    fn wait_word(&self) -> Option<&AtomicU64> {
        Some(self.first.word(E_WAIT))
    }
}

/// A region resolves the operations of dead pipe lock holders: the entries are its own.
impl OpResolver for Region {
    fn resolve(&self, op: u64, head: u64, tail: u64) {
        self.note_death();
        let Some(e) = Entry::at(self, Offset::new(op & !OP_KIND)) else {
            return;
        };
        match op & OP_KIND {
            OP_SEND => {
                let at = e.get(E_INDEX);
                if e.kind() == Some(Kind::Sending) && at != NO_INDEX && op_committed(at, tail) {
                    // Committed: the ring holds the reference.
                    e.set_kind(Kind::Free);
                }
            }
            OP_RECV => {
                let at = e.get(E_INDEX);
                let committed = at != NO_INDEX && op_committed(at, head);
                let mut next = Some(e);
                let mut budget = 1u64 << 24;
                while let Some(en) = next {
                    if en.kind() == Some(Kind::Receiving) {
                        let then = en.then_kind().unwrap_or(Kind::Value);
                        en.set_kind(if committed { then } else { Kind::Free });
                    }
                    budget -= 1;
                    next = (budget > 0)
                        .then(|| Entry::at(self, Offset::new(en.get(E_NEXT))))
                        .flatten();
                }
            }
            _ => {}
        }
    }
}

/// The queue of the pipe block at `off` whose generation is `generation`, if it checks
/// out.
fn queue_at(pool: &Pool, off: u64, generation: u64) -> Option<Queue<'_>> {
    super::pipe::queue_of(pool, Offset::new(off), generation).ok()
}

/// What recovery holds while it resolves a dead process's operation on a pipe: the ring's
/// lock (whose repair resolves a dead holder's operation word), or nothing on a lane.
enum Settled<'a> {
    Ring(#[allow(dead_code)] crate::sync::ShmMutexGuard<'a, crate::sync::Os>),
    Lane,
}

/// Settles what the dead process of `ctx` left on `side` of the pipe `q` (a lane's
/// takeover, which completes and resolves its operation; a ring's lock, whose repair
/// does), or `None` if a live process holds it now: try again later.
fn settle<'a>(pool: &Pool, q: &Queue<'a>, side: Side, ctx: &Ctx) -> Option<Settled<'a>> {
    match q {
        Queue::Ring(ring) => ring
            .lock_for_recovery(recovery_wait(ctx))
            .map(Settled::Ring),
        Queue::Lane { lane, .. } => {
            let dead = ctx.dead?;
            let me = crate::sync::process_owner();
            lane.recover_role(side, dead, me, Some(&**pool.region()))
                .then_some(Settled::Lane)
        }
    }
}

/// Gives back a dead process's waiter count recorded in `e`, if it was counted (a
/// ring's; a lane's sleep flag is cleared by its side's recovery).
fn forget_wait(q: &Queue<'_>, e: Entry<'_>, ctx: &mut Ctx) {
    let w = e.get(E_WAIT);
    if w & WaitRecord::STEP == WaitRecord::COUNTED {
        e.set(E_WAIT, 0);
        if let Some(ring) = q.ring() {
            ring.forget_waiter(w & 0xff);
        }
        ctx.tally.waiters += 1;
    }
}

/// A send in progress: under the pipe's lock (whose repair resolves a dead holder's
/// operation word), a `Sending` entry left as it was never committed: the value is still
/// the sender's, and dropped.
fn resolve_sending(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let (pipe, generation) = (e.get(E_PIPE), e.get(E_AUX));
    if !ctx.holds_pipe(pipe, generation) {
        // The pipe may be gone: whether the send committed cannot be read. Leave the value.
        ctx.tally.suspects += 1;
        e.set_kind(Kind::Free);
        return Outcome::Done;
    }
    let Some(q) = queue_at(pool, pipe, generation) else {
        ctx.tally.suspects += 1;
        e.set_kind(Kind::Free);
        return Outcome::Done;
    };
    let Some(g) = settle(pool, &q, Side::Sender, ctx) else {
        return Outcome::Later;
    };
    forget_wait(&q, e, ctx);
    ctx.tally.operations += 1;
    if e.kind() == Some(Kind::Sending) {
        if e.then_kind() == Some(Kind::Received) {
            // A value received from a pipe that redelivers, on its way on (or back):
            // still the one it came from, to go back there.
            restore_origin(e);
        } else {
            tracked::release_dead(pool, e, &mut ctx.tally);
        }
    }
    drop(g);
    Outcome::Done
}

/// Marks entry `e`, which records a value received from a pipe that redelivers
/// ([`Kind::Received`]), as being sent to the pipe at `pipe` of `generation`, keeping
/// where it came from: a send that does not commit leaves it received from there, to be
/// put back if its process dies. The origin is in `E_NEXT` and `E_LOCAL` meanwhile (an
/// entry being sent is not on a free list, and its value has no other handle).
pub(crate) fn mark_sending_received(e: Entry<'_>, pipe: u64, generation: u64) {
    e.set(E_NEXT, e.get(E_PIPE));
    e.set(E_LOCAL, e.get(E_AUX));
    e.set(E_INDEX, NO_INDEX);
    e.set(E_WAIT, 0);
    // The kind first: a death from here on is resolved from the origin, whatever
    // `E_PIPE` says yet.
    e.set_kind_then(Kind::Sending, Kind::Received);
    e.set(E_PIPE, pipe);
    e.set(E_AUX, generation);
}

/// Undoes [`mark_sending_received`]: the entry records the received value again.
pub(crate) fn restore_origin(e: Entry<'_>) {
    e.set(E_PIPE, e.get(E_NEXT));
    e.set(E_AUX, e.get(E_LOCAL));
    e.set(E_LOCAL, 1);
    e.set(E_NEXT, 0);
    e.set_kind(Kind::Received);
}

/// A receive in progress: under the pipe's lock, entries still `Receiving` never had
/// their receive committed (the values are still in the pipe); committed ones were turned
/// into values by the lock's repair and are given back with the values.
fn resolve_receiving(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let (pipe, generation) = (e.get(E_PIPE), e.get(E_AUX));
    let q = ctx
        .holds_pipe(pipe, generation)
        .then(|| queue_at(pool, pipe, generation))
        .flatten();
    let Some(q) = q else {
        // A receive that never committed holds nothing; one that did cannot be told
        // without the pipe: leave its value.
        ctx.tally.suspects += 1;
        e.set_kind(Kind::Free);
        return Outcome::Done;
    };
    let Some(g) = settle(pool, &q, Side::Receiver, ctx) else {
        return Outcome::Later;
    };
    forget_wait(&q, e, ctx);
    if e.kind() == Some(Kind::Receiving) {
        e.set_kind(Kind::Free);
        ctx.tally.operations += 1;
    }
    drop(g);
    Outcome::Done
}

/// A value a dead process received from a pipe that redelivers: back into the pipe, if
/// the process still held a handle of it (so the pipe is there), else dropped.
fn resolve_received(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let (pipe, generation) = (e.get(E_PIPE), e.get(E_AUX));
    let q = ctx
        .holds_pipe(pipe, generation)
        .then(|| queue_at(pool, pipe, generation))
        .flatten();
    // Only a ring redelivers.
    let Some(ring) = q.as_ref().and_then(Queue::ring).filter(|r| r.redelivers()) else {
        tracked::release_dead(pool, e, &mut ctx.tally);
        return Outcome::Done;
    };
    // Sent back as the dead process would have sent it on: a reclaimer that dies
    // meanwhile leaves a `Sending` entry that still knows its origin, resolved like any
    // other. Even into a closed pipe: its receivers drain it, and check for recovery
    // before they report it closed.
    mark_sending_received(e, pipe, generation);
    crate::fault::pause_point("reap.redeliver.marked");
    let rec = SendRecord { e };
    match ring.send_back(e.get(E_OBJ), recovery_wait(ctx), Some(&rec)) {
        Ok(()) => {
            ctx.tally.redelivered += 1;
            Outcome::Done
        }
        Err(super::error::SendFail::Timeout(_) | super::error::SendFail::Full(_)) => {
            // Full, or its lock held: the value stays the dead process's for now.
            restore_origin(e);
            Outcome::Later
        }
        Err(_) => {
            tracked::release_dead(pool, e, &mut ctx.tally);
            Outcome::Done
        }
    }
}

/// A dead process's pipe handle: its sending and receiving ends, then its reference (the
/// last of which destroys the pipe, dropping what is queued).
fn resolve_pipe(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let (pipe, generation) = (e.get(E_PIPE), e.get(E_AUX));
    let held = e.get(E_INDEX);
    let unknown = held & (flags::MOVING_REF | flags::MOVING_SENDER | flags::MOVING_RECEIVER);
    ctx.tally.suspects += u64::from(unknown.count_ones());
    if let Some(q) = queue_at(pool, pipe, generation) {
        // A process killed after its send or receive committed and recorded, before it
        // cleared the ring's operation word, still holds the lock with the word naming
        // its entry: the repair must run now, while the entry is there, not at the next
        // lock, after the dead's chunks are freed (and maybe reused). On a lane, the
        // sides it held are taken back the same way, its operations resolved.
        match &q {
            Queue::Ring(ring) => {
                if ring.lock_for_recovery(recovery_wait(ctx)).is_none()
                    && ring.lock_owner().is_some()
                {
                    return Outcome::Later;
                }
            }
            Queue::Lane { .. } => {
                for side in [Side::Sender, Side::Receiver] {
                    if settle(pool, &q, side, ctx).is_none() {
                        return Outcome::Later;
                    }
                }
            }
        }
        // Each end: marked as moving (held, unknown once a death interrupts), then dropped.
        let ends: [(u64, &dyn Fn()); 2] = [
            (flags::HELD_SENDER, &|| q.drop_sender()),
            (flags::HELD_RECEIVER, &|| q.drop_receiver()),
        ];
        for (flag, drop_end) in ends {
            if held & flag != 0 {
                e.set(E_INDEX, e.get(E_INDEX) ^ (flag | flag << 8));
                drop_end();
                ctx.tally.pipe_counts += 1;
            }
        }
    }
    if held & flags::HELD_REF != 0 {
        e.set(E_INDEX, flags::MOVING_REF);
        crate::fault::pause_point("reap.pipe.marked");
        super::pipe::Pipe::drop_dead_ref(pool, Offset::new(pipe), generation);
        ctx.tally.pipe_counts += 1;
    }
    e.set_kind(Kind::Free);
    Outcome::Done
}

/// How long recovery may wait for a pipe's lock: [`RECOVERY_LOCK_WAIT`] (a dead holder is
/// taken over within it), or not at all inside a caller's own call (a free lock, or one
/// whose holder is dead, is still taken).
fn recovery_wait(ctx: &Ctx) -> Wait {
    if ctx.patient {
        Wait::Until(Os::now_ns().saturating_add(RECOVERY_LOCK_WAIT.as_nanos() as u64))
    } else {
        Wait::No
    }
}

/// Records in entry `e` (this process's, free) a pipe handle's reference to the pipe at
/// `pipe` of `generation`, about to be counted (`taken`: already counted).
pub(crate) fn record_pipe(e: Entry<'_>, pipe: Offset, generation: u64, taken: bool) {
    e.set(E_PIPE, pipe.get());
    e.set(E_AUX, generation);
    e.set(
        E_INDEX,
        if taken {
            flags::HELD_REF
        } else {
            flags::MOVING_REF
        },
    );
    e.set_kind(Kind::Pipe);
}

/// Sets `flag` (one of the `HELD_*`) of a pipe entry around `change`, which changes the
/// count it stands for: `MOVING_*` while it runs (`flag << 8`).
pub(crate) fn count_change(
    e: Option<Entry<'_>>,
    flag: u64,
    held_after: bool,
    change: impl FnOnce(),
) {
    let Some(e) = e else {
        change();
        return;
    };
    let moving = flag << 8;
    e.set(E_INDEX, (e.get(E_INDEX) & !flag) | moving);
    e.word(E_INDEX).fetch_or(0, Ordering::Release);
    change();
    let after = if held_after { flag } else { 0 };
    e.set(E_INDEX, (e.get(E_INDEX) & !moving) | after);
}

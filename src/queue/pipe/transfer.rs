//! Moving values through a pipe: sending and receiving with their ledger records, the
//! waits in break-checker slices, and what a long wait says.

use std::time::Duration;

use super::super::error::{RecvFail, RecvTimeoutError, SendFail, TryRecvError};
use super::super::lane::role::Side;
use super::super::recorded::{self, RecvRecord, SendRecord};
use super::super::ring::{OpRecord, Wait};
use super::turn::{Held, Missed, Turn};
use super::{Pipe, Queue, RECEIVED, RECEIVES};
use crate::ledger::{flags, Kind, E_AUX, E_INDEX, E_PIPE, E_WAIT, NO_INDEX};
use crate::region::Offset;
use crate::sync::atomic::Ordering;
use crate::sync::{Os, Platform};
use crate::val::shared::ShmVal;

impl Pipe {
    pub(super) fn send_val(&self, mut v: ShmVal, limit: Limit) -> Result<(), SendFail<ShmVal>> {
        if v.pool().region().id() != self.pool.region().id() {
            return Err(SendFail::WrongRegion(v));
        }
        let Ok(q) = self.queue() else {
            return Err(SendFail::Corrupted(v));
        };
        // A lane has one sender: the threads of this handle take turns, and another
        // handle is refused while a live one holds the side.
        let (_turn, limit) = match self
            .lane
            .then(|| self.take_turn(&self.send_turn, limit, Dir::Send))
        {
            None => (None, limit),
            Some(Ok((g, left))) => (Some(g), left),
            Some(Err(Missed::Stopped)) => return Err(SendFail::Broken(v)),
            Some(Err(Missed::Over)) if limit == Limit::Once => return Err(SendFail::Full(v)),
            Some(Err(Missed::Over)) => return Err(SendFail::Timeout(v)),
        };
        if !self.take_side(&q, Side::Sender) {
            return Err(SendFail::Taken(v));
        }
        // A sending end from its first send on (counted before the item can arrive, so a
        // receiver never takes this pipe for abandoned while it is being sent to).
        self.count_as_sender_in(&q);
        let raw = v.offset().get();
        // The value's entry says it is being sent here; what it said before comes back if
        // the send fails.
        let before = v.sole_entry().map(|e| {
            let was = (e.kind(), e.get(E_PIPE), e.get(E_AUX));
            if was.0 == Some(Kind::Received) {
                recorded::mark_sending_received(e, self.off.get(), self.generation);
            } else {
                e.set(E_PIPE, self.off.get());
                e.set(E_AUX, self.generation);
                e.set(E_INDEX, NO_INDEX);
                e.set(E_WAIT, 0);
                e.set_kind(Kind::Sending);
            }
            (e, was)
        });
        let rec = before.map(|(e, _)| SendRecord { e });
        let rec = rec.as_ref().map(|r| r as &dyn OpRecord);
        // Once without waiting: a pipe with room takes the item without a clock read.
        let sent = match q.send(raw, Wait::No, rec) {
            Err(SendFail::Full(_)) if limit != Limit::Once => self.sliced(
                limit.deadline(),
                Dir::Send,
                |w| q.send(raw, w, rec),
                |e| matches!(e, SendFail::Timeout(_)),
                || SendFail::Broken(raw),
            ),
            r => r,
        };
        match sent {
            // The pipe holds the reference now.
            Ok(()) => {
                if before.is_some() {
                    v.into_moved();
                } else {
                    let _ = v.into_raw();
                }
                Ok(())
            }
            Err(e) => {
                if let Some((en, (kind, pipe, aux))) = before {
                    if kind == Some(Kind::Received) {
                        recorded::restore_origin(en);
                    } else {
                        en.set(E_PIPE, pipe);
                        en.set(E_AUX, aux);
                        en.set_kind(kind.unwrap_or(Kind::Value));
                    }
                }
                Err(e.map(|_| v))
            }
        }
    }

    pub(super) fn recv_val(&self, limit: Limit) -> Result<ShmVal, RecvFail> {
        let mut got = None;
        self.recv_recorded(limit, 1, |v| got = Some(v))?;
        got.ok_or(RecvFail::Corrupted)?
    }

    /// Receives up to `max` handles into `out`; see [`dequeue_batch`](Self::dequeue_batch).
    pub(super) fn recv_vals(
        &self,
        limit: Limit,
        max: usize,
        out: &mut Vec<ShmVal>,
    ) -> Result<usize, RecvFail> {
        let mut corrupt = false;
        let n = self.recv_recorded(limit, max, |v| match v {
            Ok(v) => out.push(v),
            Err(_) => corrupt = true,
        })?;
        if corrupt {
            return Err(RecvFail::Corrupted);
        }
        Ok(n)
    }

    /// Takes up to `max` values from the ring into `out`, each recorded in an entry of the
    /// process's ledger when it has one: at once if there are any, else (unless `limit` is
    /// `Once`) waiting in break-checker slices.
    fn recv_recorded(
        &self,
        limit: Limit,
        max: usize,
        mut out: impl FnMut(Result<ShmVal, RecvFail>),
    ) -> Result<usize, RecvFail> {
        let q = self.queue().map_err(|_| RecvFail::Corrupted)?;
        // A busy `try_` receiver that holds its side finds an empty pipe empty without
        // taking its turn (a snapshot, as any `try_` answer).
        let ends = self.ends.load(Ordering::Relaxed);
        let held = ends & RECEIVED != 0 && (!self.lane || ends & RECEIVES != 0);
        let once = limit == Limit::Once;
        if once && held && q.looks_empty() {
            return Err(RecvFail::Empty);
        }
        // A lane has one receiver: the threads of this handle take turns, and another
        // handle is refused while a live one holds the side.
        let (_turn, limit) = match self
            .lane
            .then(|| self.take_turn(&self.recv_turn, limit, Dir::Recv))
        {
            None => (None, limit),
            Some(Ok((g, left))) => (Some(g), left),
            Some(Err(Missed::Stopped)) => return Err(RecvFail::Broken),
            Some(Err(Missed::Over)) if limit == Limit::Once => return Err(RecvFail::Empty),
            Some(Err(Missed::Over)) => return Err(RecvFail::Timeout),
        };
        if !self.take_side(&q, Side::Receiver) {
            return Err(RecvFail::Taken);
        }
        if self.ends.load(Ordering::Relaxed) & RECEIVED == 0
            && self.ends.fetch_or(RECEIVED, Ordering::Relaxed) & RECEIVED == 0
        {
            recorded::count_change(self.entry(), flags::HELD_RECEIVER, true, || {
                q.add_receiver()
            });
        }
        // A call that does not wait finds an empty pipe empty without a ledger entry: a
        // busy `try_` receiver polls at the cost of a few loads (looked at above if it
        // held its side already).
        if once && !held && q.looks_empty() {
            return Err(RecvFail::Empty);
        }
        let first = recorded::ledger_of(&self.pool).and_then(|l| l.take(&self.pool));
        let Some(first) = first else {
            // Not recorded: the handles are plain.
            let mut raws = Vec::new();
            let n = self.recv_raw(&q, limit, max, None, |r| raws.push(r))?;
            for raw in raws {
                // SAFETY: each was taken by the receive that just committed, once.
                out(unsafe { self.adopt(raw, Offset::NULL) });
            }
            return Ok(n);
        };
        let rec = RecvRecord::new(
            &self.pool,
            first,
            self.off.get(),
            self.generation,
            q.redelivers(),
        );
        match self.recv_raw(&q, limit, max, Some(&rec), |r| rec.see(r)) {
            Ok(n) => {
                rec.for_each(|raw, entry| {
                    // SAFETY: each was taken by the receive that just committed, once; its
                    // entry (if any) records the reference.
                    out(unsafe { self.adopt(raw, entry) });
                });
                Ok(n)
            }
            Err(e) => {
                rec.abandon();
                Err(e)
            }
        }
    }

    /// Takes up to `max` items from the ring, passing each to `f`: at once if there are
    /// any, else (unless `limit` is `Once`) waiting in break-checker slices.
    fn recv_raw(
        &self,
        q: &Queue<'_>,
        limit: Limit,
        max: usize,
        rec: Option<&dyn OpRecord>,
        mut f: impl FnMut(u64),
    ) -> Result<usize, RecvFail> {
        // Once without waiting: a pipe with items gives them without a clock read.
        let r = match q.recv_many(Wait::No, max, &mut f, rec) {
            Err(RecvFail::Empty) if limit != Limit::Once => self.sliced(
                limit.deadline(),
                Dir::Recv,
                |w| q.recv_many(w, max, &mut f, rec),
                |e| *e == RecvFail::Timeout,
                || RecvFail::Broken,
            ),
            r => r,
        };
        match r {
            Err(RecvFail::Closed | RecvFail::Disconnected) if self.recovery_pending(q) => {
                self.recv_after_recovery(q, limit, max, rec, f)
            }
            r => r,
        }
    }

    /// Whether a dead process may still have items of this pipe to give back: the pipe
    /// redelivers and some process's death is not fully recovered yet.
    fn recovery_pending(&self, q: &Queue<'_>) -> bool {
        q.redelivers() && self.pool.region().recovery_pending()
    }

    /// The pipe looked closed (or without senders) and drained while a dead process's
    /// items may be on their way back into it: recovers (waiting for another survivor's
    /// recovery within the call's limit, at most [`RECOVERY_WAIT`]), then receives again.
    fn recv_after_recovery(
        &self,
        q: &Queue<'_>,
        limit: Limit,
        max: usize,
        rec: Option<&dyn OpRecord>,
        mut f: impl FnMut(u64),
    ) -> Result<usize, RecvFail> {
        let bound = Os::now_ns().saturating_add(nanos(RECOVERY_WAIT));
        let until = limit.deadline().map_or(bound, |d| d.min(bound));
        loop {
            crate::ledger::reap_quick(&self.pool);
            match q.recv_many(Wait::No, max, &mut f, rec) {
                Err(RecvFail::Closed | RecvFail::Disconnected)
                    if limit != Limit::Once && Os::now_ns() < until && self.recovery_pending(q) =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                r => return r,
            }
        }
    }

    /// The handle for an item just received, whose reference `entry` records (null: not
    /// recorded). A slot holding something that is not a value handle is corruption (and
    /// the reference is lost).
    ///
    /// # Safety
    ///
    /// `raw` was taken from the ring by a receive of this process that committed.
    #[inline]
    unsafe fn adopt(&self, raw: u64, entry: Offset) -> Result<ShmVal, RecvFail> {
        // SAFETY: the item is a reference a sender gave up when its send committed, and
        // the receive that committed (advancing `head` past it under the ring lock, as the
        // caller promises) is the only one that takes it: its slot is cleared and no other
        // receiver can get the same item.
        match unsafe { ShmVal::from_raw_unrecorded(&self.pool, Offset::new(raw)) } {
            Ok(v) => Ok(v.with_entry(entry)),
            Err(_) => {
                if let Some(e) = crate::ledger::Entry::at(self.pool.region(), entry) {
                    e.set_kind(Kind::Free);
                    if let Some(l) = crate::ledger::Ledger::of(self.pool.region()) {
                        l.put(e);
                    }
                }
                Err(RecvFail::Corrupted)
            }
        }
    }

    /// Runs `op` until `deadline` (none: forever). With a break checker the wait is cut
    /// into `micro_sleep` slices, and the checker asked after each; an unbounded wait that
    /// lasts `notice_after` says so on standard error, once ([`notice`](Self::notice)).
    pub(super) fn sliced<R, E>(
        &self,
        deadline: Option<u64>,
        dir: Dir,
        mut op: impl FnMut(Wait) -> Result<R, E>,
        is_timeout: impl Fn(&E) -> bool,
        broken: impl FnOnce() -> E,
    ) -> Result<R, E> {
        let started = Os::now_ns();
        let mut notice_at = match (deadline, self.notice_after) {
            (None, Some(after)) => Some(started.saturating_add(nanos(after))),
            _ => None,
        };
        if self.brk.is_none() && notice_at.is_none() {
            return op(deadline.map_or(Wait::Forever, Wait::Until));
        }
        loop {
            let now = Os::now_ns();
            let mut end = u64::MAX;
            if self.brk.is_some() {
                end = end.min(now.saturating_add(nanos(self.micro_sleep)));
            }
            if let Some(n) = notice_at {
                end = end.min(n);
            }
            let (wait, last) = match deadline {
                Some(d) if d <= end => (Wait::Until(d), true),
                _ if end == u64::MAX => (Wait::Forever, false),
                _ => (Wait::Slice(end), false),
            };
            match op(wait) {
                Err(e) if !last && is_timeout(&e) => {
                    if self.brk.as_ref().is_some_and(|b| b()) {
                        return Err(broken());
                    }
                    if notice_at.is_some_and(|n| Os::now_ns() >= n) {
                        notice_at = None;
                        self.notice(dir, Duration::from_nanos(Os::now_ns() - started));
                    }
                }
                r => return r,
            }
        }
    }

    /// Says on standard error that an unbounded `enq` or `deq` has waited `waited`, and
    /// what for, read from the pipe's counters.
    fn notice(&self, dir: Dir, waited: Duration) {
        let label = self.label();
        let why = match (self.stats(), dir) {
            (Err(e), _) => format!("its counters cannot be read ({e})"),
            (Ok(s), Dir::Recv) if s.enqueued == 0 => "nothing has been sent to it yet".into(),
            (Ok(s), Dir::Recv) if s.senders == 0 => {
                "no handle that sends to it is open (it is kept for senders that come and go)"
                    .into()
            }
            (Ok(s), Dir::Recv) => format!("its {} sending end(s) have sent nothing new", s.senders),
            (Ok(s), Dir::Send) if s.dequeued == 0 && s.receivers == 0 => format!(
                "it is full ({} values) and nothing has received from it yet",
                s.capacity
            ),
            (Ok(s), Dir::Send) if s.receivers == 0 => format!(
                "it is full ({} values) and no handle that receives from it is open",
                s.capacity
            ),
            (Ok(s), Dir::Send) => format!(
                "it is full ({} values) and its {} receiving end(s) have taken nothing",
                s.capacity, s.receivers
            ),
        };
        eprintln!(
            "shmval: {} on {label} has waited {:.0} s and goes on waiting: {why}",
            dir.call(),
            waited.as_secs_f64()
        );
    }

    /// Says on standard error that an unbounded `enq` or `deq` of a one-to-one pipe has
    /// waited `waited` for its turn among the threads of its handle.
    fn turn_notice(&self, dir: Dir, waited: Duration) {
        eprintln!(
            "shmval: {} on {} has waited {:.0} s for its turn and goes on waiting: another \
             thread of this handle is in a call on the pipe (threads of one handle take \
             turns on a one-to-one pipe's side)",
            dir.call(),
            self.label(),
            waited.as_secs_f64()
        );
    }

    /// What notices call the pipe.
    fn label(&self) -> String {
        self.label
            .as_deref()
            .map_or_else(|| format!("the pipe at {}", self.off), String::from)
    }

    /// Takes this handle's turn on a lane's side, which another of its threads may have
    /// for one operation: at once if free; else not at all for a `try_` call, within a
    /// timed one's limit, and until it comes for an unbounded one (which says so on
    /// standard error, as a pipe's waits do, once it has waited the pipe's notice time); a
    /// wait asks the break checker as a pipe's waits do. Returns the turn and what is left
    /// of the limit.
    #[inline]
    fn take_turn<'t>(
        &self,
        turn: &'t Turn,
        limit: Limit,
        dir: Dir,
    ) -> Result<(Held<'t>, Limit), Missed> {
        if let Some(h) = turn.try_take() {
            return Ok((h, limit));
        }
        let stop = self
            .brk
            .as_deref()
            .map(|b| (b as &dyn Fn() -> bool, self.micro_sleep));
        let say = |waited| self.turn_notice(dir, waited);
        match limit {
            Limit::Once => Err(Missed::Over),
            Limit::Forever => {
                let notice = self.notice_after.map(|a| (a, &say as &dyn Fn(Duration)));
                turn.wait(None, stop, notice).map(|(h, _)| (h, limit))
            }
            Limit::Within(d) => turn
                .wait(Some(d), stop, None)
                .map(|(h, spent)| (h, Limit::Within(d.saturating_sub(spent)))),
        }
    }
}

/// Which way a waiting call moves values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dir {
    Send,
    Recv,
}

impl Dir {
    /// The unbounded call that waits this way, as notices name it.
    fn call(self) -> &'static str {
        match self {
            Dir::Send => "enq",
            Dir::Recv => "deq",
        }
    }
}

/// A timed receive's error for a ring's failure.
pub(super) fn timeout_error(e: RecvFail) -> RecvTimeoutError {
    match e {
        RecvFail::Timeout | RecvFail::Empty => RecvTimeoutError::Timeout,
        RecvFail::Closed => RecvTimeoutError::Closed,
        RecvFail::Disconnected => RecvTimeoutError::Disconnected,
        RecvFail::Broken => RecvTimeoutError::Broken,
        RecvFail::Taken => RecvTimeoutError::Taken,
        RecvFail::Corrupted => RecvTimeoutError::Corrupted,
    }
}

/// A `try_` receive's error for a ring's failure.
pub(super) fn try_error(e: RecvFail) -> TryRecvError {
    match e {
        RecvFail::Empty | RecvFail::Timeout => TryRecvError::Empty,
        RecvFail::Closed => TryRecvError::Closed,
        RecvFail::Disconnected => TryRecvError::Disconnected,
        RecvFail::Taken => TryRecvError::Taken,
        RecvFail::Broken | RecvFail::Corrupted => TryRecvError::Corrupted,
    }
}

/// The longest a receive that found its pipe closed waits for another process's
/// recovery of a dead receiver, whose items go back into the pipe.
const RECOVERY_WAIT: Duration = Duration::from_secs(1);

/// How long a pipe call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Limit {
    /// Not at all (`try_` calls).
    Once,
    /// Until the pipe closes (or the break checker says stop).
    Forever,
    /// For this long after the call; the clock is read only if the call has to wait.
    Within(Duration),
}

impl Limit {
    /// The deadline on the monotonic clock, `None` for no limit; read when first needed.
    fn deadline(self) -> Option<u64> {
        match self {
            Limit::Within(d) => Some(Os::now_ns().saturating_add(nanos(d))),
            Limit::Once | Limit::Forever => None,
        }
    }
}

pub(super) fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

//! Moving references between handles and names entries, under the names lock, each step
//! recorded (see the [module docs](super#why-a-death-at-any-step-gives-back-exactly-what-it-held)).

use std::time::Instant;

use super::table::{with_entry_value, NamesHead, Slot, FREE, LIVE, MAX_NAMES};
use super::table::{MOVE_IN, MOVE_OUT, MOVE_SWAP, STORED};
use super::Names;
use crate::ledger::{
    Entry as LedgerEntry, Kind as LedgerKind, E_AUX, E_INDEX, E_LOCAL, E_OBJ, E_PIPE,
};
use crate::region::Offset;
use crate::sides::error::SidesError;
use crate::sides::name::ValueName;
use crate::sync::atomic::Ordering;
use crate::val::shared::{region_id, tracked};
use crate::ShmVal;

/// The pause points after each step of a move: recorded, claimed, stored, done, cleared.
type Steps = [&'static str; 5];
const PUBLISH: Steps = [
    "names.publish.recorded",
    "names.publish.claimed",
    "names.publish.stored",
    "names.publish.done",
    "names.publish.cleared",
];
const REPLACE: Steps = [
    "names.replace.recorded",
    "names.replace.claimed",
    "names.replace.stored",
    "names.replace.done",
    "names.replace.cleared",
];
const UNPUBLISH: Steps = [
    "names.unpublish.recorded",
    "names.unpublish.claimed",
    "names.unpublish.stored",
    "names.unpublish.done",
    "names.unpublish.cleared",
];

impl Names {
    /// A free ledger entry of this process (null if it records nothing), taken before the
    /// lock: taking one may run recovery, which may need the lock.
    pub(super) fn take_entry(&self) -> Offset {
        tracked::ledger_of(&self.pool)
            .and_then(|l| l.take(&self.pool))
            .map_or(Offset::NULL, |e| e.offset())
    }

    /// Gives back an entry of [`take_entry`](Self::take_entry) that recorded nothing.
    pub(super) fn put_entry(&self, e: Offset) {
        if let Some(e) = LedgerEntry::at(self.pool.region(), e) {
            tracked::put(&self.pool, e);
        }
    }

    /// [`get`](Self::get) with the lock waited for until `deadline`.
    pub(super) fn get_by(
        &self,
        name: &ValueName,
        deadline: Option<Instant>,
    ) -> Result<Option<ShmVal>, SidesError> {
        let e = self.take_entry();
        let r = self.new_ref(name, deadline, e);
        if !matches!(r, Ok(Some(_))) {
            self.put_entry(e);
        }
        r.map(|h| h.map(ShmVal::tracked))
    }

    /// Under the lock: a new reference to the value named `name`, recorded in the free
    /// entry `e` (if not null) as any new reference is (`Acquiring`, then `Value`).
    fn new_ref(
        &self,
        name: &ValueName,
        deadline: Option<Instant>,
        e: Offset,
    ) -> Result<Option<ShmVal>, SidesError> {
        let head = self.head()?;
        let g = self.lock(head, deadline)?;
        let Some(s) = self.find(head, name) else {
            return Ok(None);
        };
        let v = s.value.load(Ordering::Relaxed);
        let got = with_entry_value(&self.pool, Offset::new(v), |h| {
            let rec = LedgerEntry::at(self.pool.region(), e);
            if let Some(rec) = rec {
                rec.set(E_OBJ, v);
                rec.set(E_LOCAL, 1);
                rec.set(E_PIPE, 0);
                rec.set(E_AUX, 0);
                rec.set_kind(LedgerKind::Acquiring);
            }
            // A handle not recorded: its clone is one more count on the value.
            let new = h.clone();
            crate::fault::pause_point("names.get.counted");
            if let Some(rec) = rec {
                rec.set_kind(LedgerKind::Value);
            }
            new.with_entry(e)
        });
        drop(g);
        got.map(Some)
            .map_err(|_| SidesError::NamesCorrupted("an entry does not hold a value"))
    }

    /// Under the lock: moves the reference of the entry named `name` out into a handle
    /// recorded in the free entry `e` (if not null).
    pub(super) fn take_out(
        &self,
        name: &ValueName,
        e: Offset,
    ) -> Result<Option<ShmVal>, SidesError> {
        let head = self.head()?;
        let g = self.lock(head, self.deadline())?;
        let Some(s) = self.find(head, name) else {
            return Ok(None);
        };
        let v = s.value.load(Ordering::Relaxed);
        // The handle is made (and the value checked) before anything moves.
        // SAFETY: the entry's reference is moved into this handle by the store below,
        // which nothing can fail before; the lock keeps anyone else from taking it.
        let h = match unsafe { ShmVal::from_raw_unrecorded(&self.pool, Offset::new(v)) } {
            Ok(h) => h,
            Err(_) => return Err(SidesError::NamesCorrupted("an entry does not hold a value")),
        };
        let rec = LedgerEntry::at(self.pool.region(), e);
        if let Some(rec) = rec {
            rec.set(E_OBJ, v);
            rec.set(E_LOCAL, 1);
            rec.set(E_PIPE, 0);
        }
        self.moving(head, s, rec, MOVE_OUT, &UNPUBLISH, || {
            s.state.store(FREE, Ordering::Relaxed);
        });
        if let Some(rec) = rec {
            rec.set_kind(LedgerKind::Value);
        }
        Self::changed(head);
        drop(g);
        Ok(Some(h.with_entry(e)))
    }

    /// Records in `rec` (if any) the move `how` of a reference between a handle and slot
    /// `s`, names it in the operation word, runs `store` (the one store that moves it), and
    /// records that it was stored, each step followed by its pause point. See the module
    /// docs for why a death at any step is resolved exactly.
    fn moving(
        &self,
        head: &NamesHead,
        s: &Slot,
        rec: Option<LedgerEntry<'_>>,
        how: u64,
        points: &Steps,
        store: impl FnOnce(),
    ) {
        let pause = crate::fault::pause_point;
        if let Some(rec) = rec {
            rec.set(E_AUX, self.slot_offset(s));
            rec.set(E_INDEX, how);
            rec.set_kind(LedgerKind::Naming);
            pause(points[0]);
            head.op.store(rec.offset().get(), Ordering::Relaxed);
            pause(points[1]);
        }
        store();
        pause(points[2]);
        if let Some(rec) = rec {
            rec.set(E_INDEX, how | STORED);
            pause(points[3]);
            head.op.store(0, Ordering::Relaxed);
            pause(points[4]);
        }
    }

    /// Publishes `value` under `name` (replacing what is there if `replace`, else failing
    /// if the name is taken); the previous value's handle.
    pub(super) fn put(
        &self,
        name: &ValueName,
        mut value: ShmVal,
        replace: bool,
    ) -> Result<Option<ShmVal>, SidesError> {
        if region_id(value.pool()) != region_id(&self.pool) {
            return Err(SidesError::ForeignValue(name.to_string()));
        }
        // Published, a value received from a pipe that redelivers is settled: a death from
        // here on drops it rather than sending it back.
        value.acknowledge();
        // The handle's reference gets an entry of its own, before the lock.
        let e = value.sole_entry().map_or(Offset::NULL, |e| e.offset());
        let head = self.head()?;
        let g = self.lock(head, self.deadline())?;
        let r = match self.find(head, name) {
            Some(_) if !replace => Err((SidesError::NameExists(name.to_string()), value)),
            Some(s) => self.swap(s, head, value, e).map(Some).map_err(|value| {
                (
                    SidesError::NamesCorrupted("an entry does not hold a value"),
                    value,
                )
            }),
            None => match head
                .slots
                .iter()
                .find(|s| s.state.load(Ordering::Relaxed) == FREE)
            {
                Some(s) => {
                    self.insert(s, head, name, value, e);
                    Ok(None)
                }
                None => Err((SidesError::NamesFull(MAX_NAMES), value)),
            },
        };
        if r.is_ok() {
            Self::changed(head);
        }
        drop(g);
        match r {
            Ok(old) => Ok(old.map(ShmVal::tracked)),
            Err((err, value)) => {
                drop(value);
                Err(err)
            }
        }
    }

    /// Under the lock: publishes `value` (recorded in its own entry `e`, if not null)
    /// under `name` in the free slot `s`.
    fn insert(&self, s: &Slot, head: &NamesHead, name: &ValueName, value: ShmVal, e: Offset) {
        let rec = LedgerEntry::at(value.pool().region(), e);
        let v = value.offset().get();
        self.moving(head, s, rec, MOVE_IN, &PUBLISH, || {
            for (w, n) in name.words().iter().zip(&s.name) {
                n.store(*w, Ordering::Relaxed);
            }
            s.value.store(v, Ordering::Relaxed);
            s.state.store(LIVE, Ordering::Relaxed);
        });
        // The reference is the entry's: the handle goes, its ledger entry back to the free
        // list.
        value.into_moved();
    }

    /// Under the lock: replaces the value of the live slot `s` by `value` (recorded in its
    /// own entry `e`, if not null); the old value's handle, recorded in `e` in its turn.
    /// `value` back if the slot does not hold a value.
    fn swap(&self, s: &Slot, head: &NamesHead, value: ShmVal, e: Offset) -> Result<ShmVal, ShmVal> {
        let w = s.value.load(Ordering::Relaxed);
        let v = value.offset().get();
        if w == v {
            // The same value again: the entry keeps its reference, the caller its own.
            return Ok(value);
        }
        // The old value's handle, made (and the value checked) before anything moves, in
        // the new value's pool: the ledger entry `e` is that pool's.
        let vpool = value.pool().clone();
        // SAFETY: the entry's reference to the old value is moved into this handle by the
        // store below, which nothing can fail before; the lock keeps anyone else from
        // taking it.
        let Ok(old) = (unsafe { ShmVal::from_raw_unrecorded(&vpool, Offset::new(w)) }) else {
            return Err(value);
        };
        let rec = LedgerEntry::at(vpool.region(), e);
        if let Some(rec) = rec {
            rec.set(E_PIPE, w);
        }
        self.moving(head, s, rec, MOVE_SWAP, &REPLACE, || {
            s.value.store(v, Ordering::Relaxed);
        });
        if let Some(rec) = rec {
            // The entry records the old value from now on (what `held_by` says it holds
            // once stored): its offset first, so that a death between the two stores
            // leaves an entry that still says so.
            rec.set(E_OBJ, w);
            rec.set_kind(LedgerKind::Value);
            rec.set(E_PIPE, 0);
        }
        // The new value's reference is the names entry's; its ledger entry is the old
        // value's handle's.
        let entry = value.into_entry();
        Ok(old.with_entry(entry))
    }
}

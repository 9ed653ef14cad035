//! What a registered process holds, read from its ledger without changing anything: for a
//! tool that shows a region (`shmval inspect`) and for tests.

use super::book::{chunks, entries_of, CHUNK_BYTES};
use super::entry::{flags, Kind, E_INDEX, E_PIPE, E_WAIT};
use crate::alloc::Pool;
use crate::region::{Offset, SlotInfo};
use crate::sync::atomic::{AtomicU64, Ordering};

/// A pipe a process holds a handle or an end of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeHold {
    /// The pipe's block in the pool (as the directory lists it).
    pub pipe: u64,
    /// A handle (a reference keeping the pipe).
    pub handle: bool,
    /// A sending end.
    pub sender: bool,
    /// A receiving end.
    pub receiver: bool,
}

/// What one process's ledger records: a snapshot, read while its process may be changing
/// it (a live one) or a survivor giving it back (a dead one), so a figure may be off by
/// the entries changing meanwhile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Entries in use.
    pub entries: u64,
    /// References to values it holds (its handles, sharing one entry per value).
    pub values: u64,
    /// Of those, values received from a pipe that redelivers: back into it if the
    /// process dies holding them.
    pub redeliverable: u64,
    /// Operations in progress: sends, receives, values moving into containers or a names
    /// entry, counts being taken or dropped.
    pub operations: u64,
    /// Operations waiting on a pipe's condition variable.
    pub waits: u64,
    /// Pipe handles and ends, by pipe.
    pub pipes: Vec<PipeHold>,
    /// Directory user counts (one per pipe it uses through the sides).
    pub dir_users: u64,
    /// Handles of locked values.
    pub locked_handles: u64,
    /// Locks of locked values it holds.
    pub locks_held: u64,
    /// The ledger's chunks: blocks of the pool, and their bytes as the pool counts them.
    pub chunks: u64,
    /// Bytes of the chunks.
    pub chunk_bytes: u64,
    /// The chunk list did not check out to its end (a chunk without its magic): the
    /// figures cover the chunks before it.
    pub broken: bool,
}

/// What the process of `slot` (from [`Region::slots`](crate::region::Region::slots) of
/// `pool`'s region) holds, as its ledger records it.
pub fn holdings(pool: &Pool, slot: &SlotInfo) -> Holdings {
    let region = pool.region();
    let mut h = Holdings::default();
    let list = match chunks(region, slot.data[0]) {
        Ok(list) => list,
        Err(bad) => {
            h.broken = true;
            // The chunks before the first that did not check out (each checked on the way).
            let mut good = vec![];
            let mut at = slot.data[0];
            while at != 0 && at != bad.get() && good.len() as u64 <= region.len() / CHUNK_BYTES {
                let off = Offset::new(at);
                good.push(off);
                at = region
                    .at::<AtomicU64>(off)
                    .map_or(0, |w| w.load(Ordering::Acquire));
            }
            good
        }
    };
    for c in list {
        h.chunks += 1;
        h.chunk_bytes += pool
            .usable_size_unlocked(c)
            .map_or(0, |n| n + crate::alloc::BLOCK_HEADER);
        for e in entries_of(region, c) {
            let Some(kind) = e.kind() else { continue };
            if kind == Kind::Free {
                continue;
            }
            h.entries += 1;
            if e.get(E_WAIT) != 0 {
                h.waits += 1;
            }
            match kind {
                Kind::Free => {}
                Kind::Value => h.values += 1,
                Kind::Received => {
                    h.values += 1;
                    h.redeliverable += 1;
                }
                Kind::Pipe => {
                    let held = e.get(E_INDEX);
                    let pipe = e.get(E_PIPE);
                    let at = match h.pipes.iter().position(|p| p.pipe == pipe) {
                        Some(i) => i,
                        None => {
                            h.pipes.push(PipeHold {
                                pipe,
                                ..PipeHold::default()
                            });
                            h.pipes.len() - 1
                        }
                    };
                    let p = &mut h.pipes[at];
                    p.handle |= held & flags::HELD_REF != 0;
                    p.sender |= held & flags::HELD_SENDER != 0;
                    p.receiver |= held & flags::HELD_RECEIVER != 0;
                }
                Kind::DirUser => h.dir_users += 1,
                Kind::Locking => {
                    h.locked_handles += 1;
                    h.locks_held += u64::from(e.get(E_INDEX) != 0);
                }
                Kind::Releasing
                | Kind::Detaching
                | Kind::Freeing
                | Kind::Moving
                | Kind::Sending
                | Kind::Receiving
                | Kind::Acquiring
                | Kind::Building
                | Kind::Naming => h.operations += 1,
            }
        }
    }
    h
}

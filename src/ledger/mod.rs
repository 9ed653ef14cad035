//! The ledger: what each process holds in a region, written down where a survivor can
//! read it, so that what a dead process held is given back.
//!
//! A process registered in a region (see [`Region::slots`](crate::region::Region::slots))
//! keeps its entries in chunks of the pool, listed from its registry slot. An entry is one
//! cache line that records one thing the process holds, or one operation it is in the
//! middle of: a reference to a value (a handle and its clones share one), a send or a
//! receive, a value moving into a container or to and from a names entry, a pipe handle's
//! counts, a directory user, a wait on a condition variable. Only its process writes an entry while it lives, so the
//! line stays in that process's cache: a clone or a drop of a handle that is not the last
//! in the process touches no shared line (biased counting), and the value's shared count
//! counts entries, containers and pipe slots, not handles.
//!
//! When a process dies (its registry lock is released by the kernel), a survivor claims its
//! slot and resolves each entry by kind with the resolver the layer that wrote it installed:
//! a reference is dropped, or for a receiver's value of a pipe that redelivers, sent back
//! into the pipe; a send or receive is finished or undone according to the pipe's counts;
//! counts are given back. It happens when a process attaches, when a lock is taken over
//! from a dead owner, when a blocked call wakes, when a survivor makes its next call at
//! least 50 ms after its last look, and on `shmval clean --recover`.
//!
//! # Why a death at any step is resolved right
//!
//! Each step that changes shared state is recorded in the entry first, and the record is
//! chosen so that the survivor can tell whether the step happened:
//!
//! - A handle's reference (`Value`): held until the entry says otherwise. Dropping the
//!   last handle of the process writes `Releasing`, decrements the shared count, then
//!   writes `Freeing` (if it was the last) and frees the graph, then `Free`. A death
//!   between `Releasing` and `Freeing` leaves it unknown whether the decrement happened
//!   (the count is shared with other processes, which change it meanwhile): the survivor
//!   leaves the reference counted. That is the one kind of uncertainty this design has,
//!   and it always resolves to "not freed yet", never to a double free: the value stays
//!   allocated, counted in what recovery reports ([`Tally::suspects`]), a leak of one value
//!   rather than a risk to every reader. The window is the decrement's few instructions,
//!   against the whole time a value is held. A `Freeing` entry is finished by the
//!   survivor: the walk keeps its progress in the objects it frees, which are the
//!   walker's alone, and frees each block with the pool's record (see the value layer's
//!   `free_walk`); only a child's decrement in flight is uncertain in the same way.
//! - A send (`Sending`): the entry names the pipe; under the pipe's lock the sender writes
//!   the ring position into the entry and the entry's offset into the ring's operation
//!   word, commits (advances `tail`), marks the entry free and clears the operation word.
//!   A survivor that takes the lock over from a dead sender finds the operation word set
//!   and compares `tail` with the recorded position: committed or not, exactly. A
//!   `Sending` entry not named by the operation word (read under the lock) never got to
//!   the commit: the value is still the sender's, and is dropped.
//! - A receive (`Receiving`): the same, with `head`; the entry records the value's offset
//!   before the commit, so a committed receive's value is known, and dropped (or sent
//!   back into a pipe that redelivers). A batch chains its entries from the first.
//! - A block being allocated (`Building`): the entry is taken first; the allocator
//!   writes the block's offset into it under the pool lock before marking the block used,
//!   with the entry's word named in the pool's operation word, so a survivor that takes
//!   the pool lock over from the dead process keeps the offset only if the block was
//!   marked used (the same record, cleared under the lock, frees a block). Until the
//!   object in it is whole the block is freed raw; then the entry becomes its `Value`,
//!   before anything can link to it. A container's new data block carries the container
//!   too, and so does its old one while it moves: whichever the container does not link
//!   to when the process dies is freed. Every block a value's build makes is so recorded
//!   from before its allocation until it is counted, by an entry or by its container.
//! - A value moving into a container (`Moving`): the container is the process's own
//!   (unique) one, so the survivor looks for the value's offset in it: found, the
//!   container holds the reference; not found, the entry does. Values a build makes for a
//!   container move in the same way. Blocks and moves are resolved before the process's
//!   values are dropped, while their containers are still alive.
//! - A reference moving between a handle and an entry of the region's named values
//!   (`Naming`): the move is recorded before the store, named in the names directory's
//!   operation word while the names lock is held, and marked stored after it; the lock's
//!   repair after a dead holder reads the names entry to settle the mark, so the survivor
//!   knows exactly which side holds the reference (see
//!   [`Names`](crate::sides::Names)' module).
//! - Counts on pipes and the directory, and a condition variable's waiters: the entry
//!   records the count held, and a step in progress (`MOVING_*` flags, the waiting
//!   steps); a death inside such a step leaves the count as it may be ("not given back
//!   yet"); otherwise it is given back exactly.
//!
//! A survivor that dies while giving back leaves the slot reclaiming under a dead
//! reclaimer, which the next survivor takes over; each resolver is written to be run again
//! on an entry it left half done, for the same reasons as above.

mod book;
mod entry;
mod reap;
mod view;

pub(crate) use book::Ledger;
pub use book::{kept, kept_by, Kept};
pub(crate) use entry::{
    flags, Entry, Kind, E_AUX, E_INDEX, E_LOCAL, E_NEXT, E_OBJ, E_PIPE, E_WAIT, NO_INDEX,
};
pub(crate) use reap::{install, reap, reap_quick, Ctx, Outcome};
pub use reap::{recovered, Recovered, Tally};
pub use view::{holdings, Holdings, PipeHold};

//! `shmval inspect REGION`: what a live region holds, read without disturbing it.
//!
//! It attaches like any process (every header field checked), but never becomes a user of
//! a pipe and writes nothing: the pool, pipe directory and names directory locks are each
//! taken once, briefly, to read their state.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shmval::alloc::Pool;
use shmval::region::{AttachOptions, Offset, Region, RegionError, RegionName, SHM_DIR};
use shmval::sides::{Directory, Names};
use shmval::val::shared::{live_blocks, locked_status};

use crate::output::outln;

/// What `inspect` prints.
#[derive(Debug, Serialize)]
pub struct Inspection {
    region: String,
    id: String,
    version: u32,
    /// The committed size: the bytes the region's file holds now.
    bytes: u64,
    /// The most it may grow to (what every process maps).
    max_bytes: u64,
    /// Growths of the file so far, and the bytes the last one added.
    growths: u64,
    last_growth: u64,
    creator_pid: u32,
    creator_alive: bool,
    pool: PoolView,
    pipes: Vec<PipeView>,
    /// The named values, in directory order.
    names: Vec<NameView>,
    blocks: Vec<BlockKind>,
    /// The process registry: slots, and each registered process.
    registry_slots: u32,
    processes: Vec<crate::registry::SlotView>,
    /// What recovery has given back in the region so far.
    recovered: crate::registry::RecoveredView,
}

#[derive(Debug, Serialize)]
struct PoolView {
    capacity: u64,
    used: u64,
    free: u64,
    largest_free: u64,
    live_allocations: u64,
    free_blocks: u64,
    high_water: u64,
    /// Of `free`, what the processes' block caches hold.
    cached: u64,
    poisoned: bool,
}

#[derive(Debug, Serialize)]
struct PipeView {
    name: String,
    users: u64,
    persist: bool,
    capacity: u64,
    depth: u64,
    receivers_waiting: u32,
    senders_waiting: u32,
    enqueued: u64,
    dequeued: u64,
    timeouts: u64,
    closed: bool,
    poisoned: bool,
    lock_holder: Option<u32>,
}

/// A named value.
#[derive(Debug, Serialize)]
struct NameView {
    name: String,
    tag: String,
    offset: u64,
    /// Its references: the names entry's own, and every other holder's.
    refs: u64,
    /// For a locked value: its lock and what it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    locked: Option<LockedView>,
}

/// A locked value's lock and container, read without taking the lock.
#[derive(Debug, Serialize)]
struct LockedView {
    /// The thread holding the lock, if any.
    holder: Option<u32>,
    /// Whether a thread may be waiting for it.
    waiters: bool,
    /// Whether an operation is under way (or was cut short and awaits the next locker).
    in_operation: bool,
    /// Operations committed since it was made.
    operations: u64,
    /// The container it holds, and its length.
    holds: String,
    len: u64,
}

/// Live pool blocks of one kind.
#[derive(Debug, Serialize)]
struct BlockKind {
    kind: String,
    count: u64,
    bytes: u64,
}

/// Why `inspect` could not show a region.
#[derive(Debug)]
pub enum InspectError {
    /// The argument is not a region's name (exit code 2).
    Usage(String),
    /// The region could not be read (exit code 1).
    Failed(String),
}

/// Reads region `arg` (`NAME` or `/dev/shm/NAME`).
pub fn inspect(arg: &str) -> Result<Inspection, InspectError> {
    let name = region_name(arg)?;
    read(&name).map_err(InspectError::Failed)
}

/// The region `arg` names (`NAME` or `/dev/shm/NAME`), if a region file is there: its
/// header is read first, without mapping the file, so that a file that is not a region is
/// said to be none before attaching finds fault with its mode or size.
pub fn region_name(arg: &str) -> Result<RegionName, InspectError> {
    let name = crate::shmdir::region_arg(arg).map_err(InspectError::Usage)?;
    let name = RegionName::new(name).map_err(|e| InspectError::Usage(e.to_string()))?;
    // The header first, read without mapping the file: a file that is not a region is
    // said to be one, before attaching finds fault with its mode or size.
    match Region::peek(&name) {
        Err(RegionError::BadMagic(_)) => {
            return Err(InspectError::Failed(format!(
                "not a shmval region ({} has no region header)",
                name.file_path().display()
            )))
        }
        Err(RegionError::NotFound(_)) => {
            return Err(InspectError::Failed(format!("no such region in {SHM_DIR}")))
        }
        _ => {}
    }
    Ok(name)
}

fn read(name: &RegionName) -> Result<Inspection, String> {
    // An observer: it takes no registry slot and records nothing, so it changes nothing.
    let region = AttachOptions::new()
        .timeout(Duration::from_secs(1))
        .register(false)
        .attach(name)
        .map_err(|e| e.to_string())?;
    let region = Arc::new(region);
    let info = region.info();
    let pool = Pool::attach(region.clone()).map_err(|e| format!("pool: {e}"))?;
    let s = pool.stats().map_err(|e| format!("pool: {e}"))?;
    let mut pipes = vec![];
    let mut pipe_blocks = HashSet::new();
    let mut pipe_offsets = vec![];
    let dir_off = Offset::new(region.root().load(Ordering::Acquire));
    if let Ok(dir) = Directory::open(&pool) {
        let deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(1));
        for e in dir
            .list(deadline)
            .map_err(|e| format!("pipe directory: {e}"))?
        {
            pipe_blocks.insert(e.offset);
            pipe_offsets.push(e.offset.get());
            let st = e.stats;
            pipes.push(PipeView {
                name: e.name.to_string(),
                users: e.users,
                persist: e.persist,
                capacity: st.capacity,
                depth: st.len,
                receivers_waiting: st.receivers_waiting,
                senders_waiting: st.senders_waiting,
                enqueued: st.enqueued,
                dequeued: st.dequeued,
                timeouts: st.timeouts,
                closed: st.closed,
                poisoned: st.poisoned,
                lock_holder: e.lock_owner.map(|o| o.tid()),
            });
        }
    }
    let mut names = vec![];
    let mut names_off = None;
    if let Ok(n) = Names::open(&pool) {
        names_off = Some(n.block());
        for e in n
            .lock_timeout(Duration::from_secs(1))
            .list()
            .map_err(|e| format!("names directory: {e}"))?
        {
            let locked = locked_status(&pool, e.offset)
                .ok()
                .flatten()
                .map(|st| LockedView {
                    holder: st.holder.map(|o| o.tid()),
                    waiters: st.contended,
                    in_operation: st.in_operation,
                    operations: st.operations,
                    holds: st.tag.name().to_string(),
                    len: st.len,
                });
            names.push(NameView {
                name: e.name.to_string(),
                tag: if locked.is_some() {
                    "locked".to_string()
                } else {
                    e.tag.name().to_string()
                },
                offset: e.offset.get(),
                refs: e.refs,
                locked,
            });
        }
    }
    let pipe_names: Vec<(u64, String)> = pipes
        .iter()
        .zip(&pipe_offsets)
        .map(|(p, off)| (*off, p.name.clone()))
        .collect();
    let processes = crate::registry::slots(&pool, &pipe_names);
    let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (block, tag) in live_blocks(&pool).map_err(|e| format!("pool: {e}"))? {
        let kind = if block.offset == dir_off {
            "pipe directory".to_string()
        } else if Some(block.offset) == names_off {
            "names directory".to_string()
        } else if pipe_blocks.contains(&block.offset) {
            "pipe".to_string()
        } else if block.object && matches!(locked_status(&pool, block.offset), Ok(Some(_))) {
            "locked value".to_string()
        } else {
            match tag {
                Some(tag) => format!("value: {}", tag.name()),
                None => "other (container data)".to_string(),
            }
        };
        let k = kinds.entry(kind).or_default();
        k.0 += 1;
        k.1 += block.size;
    }
    Ok(Inspection {
        region: name.to_string(),
        id: info.id.to_string(),
        version: info.version,
        bytes: info.committed,
        max_bytes: info.size,
        growths: region.growths().0,
        last_growth: region.growths().1,
        creator_pid: info.creator_pid,
        creator_alive: info.creator_alive(),
        pool: PoolView {
            capacity: s.capacity,
            used: s.used,
            free: s.free,
            largest_free: s.largest_free,
            live_allocations: s.live_allocations,
            free_blocks: s.free_blocks,
            high_water: s.high_water,
            cached: s.cached,
            poisoned: pool.is_poisoned(),
        },
        pipes,
        names,
        blocks: kinds
            .into_iter()
            .map(|(kind, (count, bytes))| BlockKind { kind, count, bytes })
            .collect(),
        registry_slots: region.registry_slots(),
        processes,
        recovered: crate::registry::RecoveredView::of(&region),
    })
}

impl Inspection {
    /// Prints it for a person.
    pub fn print(&self) {
        outln!(
            "region {}: {} bytes, layout version {}, id {}",
            self.region,
            self.bytes,
            self.version,
            self.id
        );
        if self.max_bytes > self.bytes || self.growths > 0 {
            outln!(
                "  grows up to {} bytes; grown {} times (last by {} bytes)",
                self.max_bytes,
                self.growths,
                self.last_growth
            );
        }
        outln!(
            "  created by pid {} ({})",
            self.creator_pid,
            if self.creator_alive {
                "running"
            } else {
                "no longer running"
            }
        );
        let p = &self.pool;
        outln!(
            "pool: {} B; used {} B in {} blocks, free {} B in {} blocks (largest {} B; {} B \
             in processes' block caches); high-water {} B{}",
            p.capacity,
            p.used,
            p.live_allocations,
            p.free,
            p.free_blocks,
            p.largest_free,
            p.cached,
            p.high_water,
            if p.poisoned { "; POISONED" } else { "" }
        );
        if self.pipes.is_empty() {
            outln!("pipes: none");
        } else {
            outln!(
                "pipes:\n  {:<16} {:>8} {:>6} {:>9} {:>9} {:>10} {:>10} {:>8} {:>5}  state",
                "name",
                "capacity",
                "depth",
                "recv-wait",
                "send-wait",
                "enqueued",
                "dequeued",
                "timeouts",
                "users"
            );
        }
        for q in &self.pipes {
            let mut state = vec![];
            if q.closed {
                state.push("closed".to_string());
            }
            if q.persist {
                state.push("persisted".to_string());
            }
            if q.poisoned {
                state.push("POISONED".to_string());
            }
            if let Some(t) = q.lock_holder {
                state.push(format!("locked by thread {t}"));
            }
            if state.is_empty() {
                state.push("open".to_string());
            }
            outln!(
                "  {:<16} {:>8} {:>6} {:>9} {:>9} {:>10} {:>10} {:>8} {:>5}  {}",
                q.name,
                q.capacity,
                q.depth,
                q.receivers_waiting,
                q.senders_waiting,
                q.enqueued,
                q.dequeued,
                q.timeouts,
                q.users,
                state.join(", ")
            );
        }
        if self.names.is_empty() {
            outln!("names: none");
        } else {
            outln!(
                "names:\n  {:<24} {:<8} {:>12} {:>6}",
                "name",
                "tag",
                "offset",
                "refs"
            );
        }
        for n in &self.names {
            let lock = n.locked.as_ref().map_or(String::new(), |l| {
                format!(
                    "  {} of {}, {} operations, lock {}{}{}",
                    l.holds,
                    l.len,
                    l.operations,
                    l.holder
                        .map_or("free".to_string(), |t| format!("held by thread {t}")),
                    if l.waiters { ", waiters" } else { "" },
                    if l.in_operation {
                        ", an operation under way"
                    } else {
                        ""
                    }
                )
            });
            outln!(
                "  {:<24} {:<8} {:>12} {:>6}{}",
                n.name,
                n.tag,
                n.offset,
                n.refs,
                lock
            );
        }
        outln!("live blocks by kind:");
        for b in &self.blocks {
            outln!("  {:<24} {:>6} blocks {:>10} B", b.kind, b.count, b.bytes);
        }
        crate::registry::print(self.registry_slots, &self.processes, &self.recovered);
    }
}

//! [`validate`]: a full check of a shared graph, for values from writers not trusted to
//! follow the format.

use std::collections::HashMap;

use super::corrupt;
use super::eq::cell_eq_val;
use super::expand::{Measure, Size};
use super::hash::stable_hash;
use super::layout::{self, boxed_cell, load_cell, Cell, Kind, Obj, CELL_BYTES, MAX_REFCOUNT};
use super::plain::cast;
use super::table::TableRef;
use super::to_val::copy_measured;
use super::views::{array_data, byte_payload, seq_cells};
use super::MAX_COPY_BYTES;
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;
use crate::val::ValError;

/// The table keys hashed so far: each is measured (with one memory of the graph's
/// containers) before it is hashed in place, and all of them together are held within
/// [`MAX_COPY_BYTES`], so hashing keys that share their children stays bounded.
struct Keys<'p> {
    measure: Measure<'p>,
    total: Size,
}

impl Keys<'_> {
    fn measure(&mut self, key: &Cell) -> Result<Size, ValError> {
        let size = self.measure.cell(key)?;
        self.total = self.total.plus(size).within(MAX_COPY_BYTES)?;
        Ok(size)
    }
}

/// One object met by the walk.
struct Node {
    rc: u64,
    /// Links to it from cells of the graph.
    indegree: u64,
    children: Vec<Offset>,
}

/// Walks the graph from `root`, an object of kind `kind` (each object once), and checks
/// each object, opened as the kind that links to it, as every reader opens it; then that
/// every refcount covers the links to it, and that the graph has no cycle.
pub(crate) fn validate(pool: &Pool, root: Offset, kind: Kind) -> Result<(), ValError> {
    let mut nodes: HashMap<Offset, Node> = HashMap::new();
    let mut keys = Keys {
        measure: Measure::new(pool),
        total: Size::default(),
    };
    let mut queue = vec![(root, kind)];
    let root_obj = Obj::open(pool.region(), root, Some(kind))?;
    nodes.insert(
        root,
        Node {
            rc: root_obj.rc().load(Relaxed),
            indegree: 0,
            children: Vec::new(),
        },
    );
    while let Some((off, kind)) = queue.pop() {
        let obj = Obj::open(pool.region(), off, Some(kind))?;
        let mut links = Vec::new();
        check_object(pool, &obj, &mut links, &mut keys)?;
        let mut children = Vec::with_capacity(links.len());
        for (cell_at, cell) in links {
            let Cell::Obj(tag, child) = cell else {
                continue;
            };
            let child_obj = Obj::open_linked(pool.region(), tag, child)
                .map_err(|e| corrupt(cell_at, format!("cell links to {child}: {e}")))?;
            let node = nodes.entry(child).or_insert_with(|| {
                queue.push((child, child_obj.kind));
                Node {
                    rc: child_obj.rc().load(Relaxed),
                    indegree: 0,
                    children: Vec::new(),
                }
            });
            node.indegree = node.indegree.saturating_add(1);
            children.push(child);
        }
        if let Some(n) = nodes.get_mut(&off) {
            n.children = children;
        }
    }
    for (off, n) in &nodes {
        let held = n.indegree.saturating_add(u64::from(*off == root));
        if n.rc < held || n.rc > MAX_REFCOUNT {
            return Err(corrupt(
                off.get(),
                format!("refcount {} with {held} known references", n.rc),
            ));
        }
    }
    check_acyclic(&nodes, root)
}

/// Kahn's algorithm: peel objects no remaining object links to, starting at the root. In an
/// acyclic graph every object is peeled.
fn check_acyclic(nodes: &HashMap<Offset, Node>, root: Offset) -> Result<(), ValError> {
    let mut indeg: HashMap<Offset, u64> = nodes.iter().map(|(o, n)| (*o, n.indegree)).collect();
    if indeg.get(&root).copied().unwrap_or(0) != 0 {
        return Err(corrupt(root.get(), "the value links back to itself"));
    }
    let mut ready = vec![root];
    let mut peeled = 0usize;
    while let Some(o) = ready.pop() {
        peeled = peeled.saturating_add(1);
        for c in nodes.get(&o).map_or(&[][..], |n| &n.children[..]) {
            if let Some(d) = indeg.get_mut(c) {
                // Each link counted once in `indegree` is met once here.
                *d = d.saturating_sub(1);
                if *d == 0 {
                    ready.push(*c);
                }
            }
        }
    }
    if peeled != nodes.len() {
        return Err(corrupt(root.get(), "the graph has a cycle"));
    }
    Ok(())
}

/// Checks a cell's own content (inline strings are UTF-8, no empty cell where a value
/// belongs) and records it for the walk.
fn note(cell: Cell, at: u64, links: &mut Vec<(u64, Cell)>) -> Result<(), ValError> {
    match cell {
        Cell::Empty => return Err(corrupt(at, "an empty cell where a value belongs")),
        Cell::Short(s) => {
            s.as_str()
                .ok_or_else(|| corrupt(at, "an inline string is not UTF-8"))?;
        }
        _ => {}
    }
    links.push((at, cell));
    Ok(())
}

/// Checks one object's header, sizes and contents; pushes the cells it holds on `links`.
fn check_object<'p>(
    pool: &'p Pool,
    obj: &Obj<'_>,
    links: &mut Vec<(u64, Cell)>,
    keys: &mut Keys<'p>,
) -> Result<(), ValError> {
    let at = obj.off.get();
    let usable = pool
        .usable_size(obj.off)
        .map_err(|e| corrupt(at, format!("not a live block: {e}")))?;
    if usable < obj.kind.header_bytes() {
        return Err(corrupt(
            at,
            format!("a {:?} in a block of {usable} bytes", obj.kind),
        ));
    }
    let rc = obj.rc().load(Relaxed);
    if rc == 0 || rc > MAX_REFCOUNT {
        return Err(corrupt(at, format!("refcount {rc}")));
    }
    match obj.kind {
        Kind::Boxed => {
            // A box holds no link: only the cell's own content is checked.
            note(boxed_cell(obj)?, at, &mut Vec::new())?;
        }
        Kind::Str => {
            std::str::from_utf8(byte_payload(pool, obj)?)
                .map_err(|_| corrupt(at, "a string is not UTF-8"))?;
        }
        Kind::BigInt | Kind::BigUint => {
            byte_payload(pool, obj)?;
        }
        Kind::C64 => {}
        // What a locked value holds is read only under its lock: its header is checked
        // here, and the journal's state by the lock's next holder.
        Kind::Locked => {}
        Kind::Arr | Kind::Tup => {
            let (data, cells) = seq_cells(pool, obj)?;
            for (i, w) in (0u64..).zip(cells.chunks_exact(2)) {
                let cat = layout::at(data.get(), i.saturating_mul(CELL_BYTES));
                note(Cell::decode(load_cell(w), cat)?, cat, links)?;
            }
        }
        Kind::Tab | Kind::OTab => check_table(pool, *obj, links, keys)?,
        Kind::Array => {
            let (et, bytes) = array_data(pool, obj)?;
            if et == crate::val::ElemType::Bool {
                cast::<bool>(bytes, at)?;
            }
        }
    }
    Ok(())
}

/// A table: entry counts, every live entry's cells and stored hash, and an index in which
/// each written entry has exactly one slot and each live key is found where it is.
fn check_table<'p>(
    pool: &'p Pool,
    obj: Obj<'_>,
    links: &mut Vec<(u64, Cell)>,
    keys: &mut Keys<'p>,
) -> Result<(), ValError> {
    let at = obj.off.get();
    let t = TableRef::open(pool, obj)?;
    let mut seen = vec![false; layout::to_usize(t.c.used, at)?];
    let mut filled = 0u64;
    for s in t.index {
        let Some(e) = s.load(Relaxed).checked_sub(1) else {
            continue;
        };
        match usize::try_from(e).ok().and_then(|e| seen.get_mut(e)) {
            Some(b) if !*b => *b = true,
            _ => return Err(corrupt(at, format!("index slot names entry {e} wrongly"))),
        }
        filled = filled.saturating_add(1);
    }
    if filled != t.c.used {
        return Err(corrupt(
            at,
            format!("{filled} index slots for {} entries", t.c.used),
        ));
    }
    // The live entries, each key measured before any is hashed: keys too large to hash
    // in all are refused before the work.
    let mut live = Vec::new();
    for e in 0..t.c.used {
        let entry = t.entry(e)?;
        if entry.key == Cell::Empty {
            continue;
        }
        let eat = layout::at(t.c.data.get(), e.saturating_mul(layout::ENTRY_BYTES));
        note(entry.key, layout::at(eat, 8), links)?;
        note(entry.value, layout::at(eat, 24), links)?;
        live.push((e, entry, keys.measure(&entry.key)?));
    }
    for &(e, entry, size) in &live {
        let eat = layout::at(t.c.data.get(), e.saturating_mul(layout::ENTRY_BYTES));
        let hash = stable_hash(pool, &entry.key)?;
        if hash != entry.hash {
            return Err(corrupt(
                eat,
                format!("stored hash {:#x}, key hashes to {hash:#x}", entry.hash),
            ));
        }
        // Another key with the same hash is compared with a copy of this one.
        let mut copy = None;
        let found = t.finds_at(hash, e, |other| {
            let key = match &copy {
                Some(k) => k,
                None => copy.insert(copy_measured(pool, &entry.key, size)?),
            };
            cell_eq_val(pool, other, key, 0)
        })?;
        if !found {
            return Err(corrupt(eat, "lookup of the entry's key does not find it"));
        }
    }
    let live = live.len() as u64;
    if live != t.c.len {
        return Err(corrupt(
            at,
            format!("{live} live entries, header says {}", t.c.len),
        ));
    }
    Ok(())
}

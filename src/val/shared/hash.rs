//! The stable hash of a shared value, computed in place: what
//! [`Val::stable_hash`](crate::Val::stable_hash) gives
//! for its copy, without building the copy (whose tables would hash their keys again).

use super::layout::{Cell, Obj};
use super::to_val::leaf_to_val;
use super::walk::{container_link, Children};
use super::{corrupt, MAX_NESTING};
use crate::alloc::Pool;
use crate::val::cmp::{hash_seq_head, hash_table};
use crate::val::{Tag, ValError, ValHasher};

/// [`Val::stable_hash`](crate::Val::stable_hash) of the value `cell` holds. The work is the size of the value's
/// copy: callers measure it first.
///
/// # Errors
///
/// [`ValError::Corrupt`], [`ValError::TooDeep`].
pub(crate) fn stable_hash(pool: &Pool, cell: &Cell) -> Result<u64, ValError> {
    let mut h = ValHasher::new();
    hash_into(pool, cell, &mut h, 0)?;
    Ok(std::hash::Hasher::finish(&h))
}

/// Feeds the encoding of the value `cell` holds, `depth` containers down, to `h`.
fn hash_into(pool: &Pool, cell: &Cell, h: &mut ValHasher, depth: usize) -> Result<(), ValError> {
    let Some((tag, off)) = container_link(cell) else {
        leaf_to_val(pool, cell)?.hash_into(h);
        return Ok(());
    };
    if depth >= MAX_NESTING {
        return Err(ValError::TooDeep { limit: MAX_NESTING });
    }
    let inner = depth.saturating_add(1);
    let mut children = Children::open(pool, Obj::open_linked(pool.region(), tag, off)?)?;
    if matches!(tag, Tag::Arr | Tag::Tup) {
        hash_seq_head(h, tag == Tag::Tup, children.len);
        while let Some(c) = children.next_cell()? {
            hash_into(pool, &c, h, inner)?;
        }
        return Ok(());
    }
    // A table: entries in any order, summed as `Val` sums them.
    let (mut sum, mut n) = (0u64, 0u64);
    while let Some(k) = children.next_cell()? {
        let v = children
            .next_cell()?
            .ok_or_else(|| corrupt(off.get(), "a key without its value"))?;
        let mut e = ValHasher::new();
        hash_into(pool, &k, &mut e, inner)?;
        hash_into(pool, &v, &mut e, inner)?;
        sum = sum.wrapping_add(std::hash::Hasher::finish(&e));
        n = n.saturating_add(1);
    }
    hash_table(h, n, sum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::region::{Region, RegionName};
    use crate::{otab, tup, val, PoolExt, Val};

    #[test]
    fn shared_values_hash_as_their_copies() {
        let name = RegionName::new(format!("shmval-unit-hash-{}", std::process::id())).unwrap();
        let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20).unwrap())).unwrap();
        let values = [
            val!(1),
            val!("a string long enough for a block"),
            val!([1, 2.5, "x", [Val::None]]),
            tup![1, tup![2]],
            val!({"a": {"b": [1, 2]}, 7: tup![1]}),
            otab! {"z": 1, "a": otab!{1: 2}},
            Val::from(vec![1.5f64, 2.5]),
        ];
        for v in values {
            let h = pool.share(&v).unwrap();
            assert_eq!(
                stable_hash(&pool, &h.cell()).unwrap(),
                v.stable_hash(),
                "{v}"
            );
        }
    }
}

//! A process killed while it builds a value: inside the pool lock as a block is being
//! allocated or freed, after an object is made and before it is counted, while a value
//! moves into a container, and while a container moves to a bigger data block. Every block
//! it had allocated comes back, nothing is freed twice, and the pool works on.

mod common;

use std::time::Duration;

use common::held::in_use;
use common::{spawn_paused, TestName};
use shmval::sides::{ClientSide, ShmMain};
use shmval::{val, PoolExt, Val};

const BYTES: u64 = 1 << 20;
/// Longer than a cell holds inline: a string of its own object.
const LONG: &str = "a string too long to be held in a cell";

/// args: region, what, point. Attaches, builds a first value (so its ledger has its
/// chunk), arms `point`, then builds by `what`; it pauses at the point and is killed there.
fn build(args: &[String]) {
    let main = ClientSide::new(args[0].clone(), "p")
        .timeout(Duration::from_secs(60))
        .start()
        .unwrap();
    let pool = main.pool();
    let warm = pool.share(&Val::from(LONG)).unwrap();
    drop(warm);
    let mut t = pool.tab().unwrap();
    t.insert("first", LONG).unwrap();
    shmval::fault::arm(&args[2]);
    match args[1].as_str() {
        // A value of several objects, copied in one call.
        "share" => {
            let v = pool
                .share(&val!({"a": [LONG, {"b": LONG}], "c": (LONG, 1.5)}))
                .unwrap();
            panic!("built {v:?} without pausing");
        }
        // One more value copied into a container the process holds.
        "insert" => {
            t.insert("second", val!([LONG, LONG])).unwrap();
            panic!("inserted without pausing");
        }
        // Enough entries that the table moves to a bigger data block.
        "grow" => {
            for i in 0..64 {
                t.insert(format!("k{i}"), LONG).unwrap();
            }
            panic!("grew without pausing");
        }
        // An array that grows by pushes.
        "push" => {
            let mut a = pool.arr().unwrap();
            for _ in 0..64 {
                a.push(1.5).unwrap();
            }
            panic!("grew without pausing");
        }
        // Values held until the ledger needs another chunk.
        "hold" => {
            let held: Vec<_> = (0..64)
                .map(|_| pool.share(&Val::from(LONG)).unwrap())
                .collect();
            panic!("held {} values without pausing", held.len());
        }
        // A new pipe made in the region.
        "pipe" => {
            let s = shmval::sides::ServerSide::new(args[0].clone(), "another", 4).start();
            panic!("made a pipe ({:?}) without pausing", s.map(|_| ()));
        }
        w => panic!("unknown build {w}"),
    }
}

#[test]
fn child_role() {
    common::role_entry(&[("build", build)]);
}

/// Kills a builder at `point` while it builds by `what`, then checks that recovery gives
/// everything back and that the pool works on.
fn killed_at(what: &str, point: &str) {
    let name = TestName::new("kill-build");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = shmval::sides::ServerSide::new(name.as_str(), "p", 4)
        .start()
        .unwrap();
    let pool = main.pool();
    drop(pool.share(&Val::from(0u64)).unwrap());
    let base = in_use(pool);
    let child = spawn_paused("build", &[name.as_str(), what, point], point);
    child.kill();
    let r = main.recover();
    assert_eq!(r.processes, 1, "{what} at {point}: {r:?}");
    assert_eq!(r.total.suspects, 0, "{what} at {point}: {r:?}");
    pool.verify().unwrap();
    assert_eq!(
        in_use(pool),
        base,
        "{what} at {point}: the pool is back at its baseline ({r:?})"
    );
    // The pool works on.
    let v = pool.share(&val!({"after": [LONG, LONG]})).unwrap();
    server.pipe().try_enqueue(v).unwrap();
    drop(server.pipe().try_dequeue().unwrap());
    assert_eq!(in_use(pool), base);
}

#[test]
fn killed_inside_the_pool_lock_before_a_block_is_marked_used() {
    killed_at("share", "alloc.mark_used");
}

#[test]
fn killed_inside_the_pool_lock_after_a_block_is_marked_used() {
    killed_at("share", "alloc.used");
}

#[test]
fn killed_after_an_object_is_made_and_before_it_is_counted() {
    killed_at("share", "val.build.allocated");
}

#[test]
fn killed_while_a_value_is_built_into_a_container() {
    killed_at("insert", "val.build.allocated");
}

#[test]
fn killed_after_a_table_moved_to_its_new_data_block() {
    killed_at("grow", "val.grow.linked");
}

#[test]
fn killed_inside_the_pool_lock_freeing_a_tables_old_data_block() {
    killed_at("grow", "alloc.free_recorded");
}

#[test]
fn killed_after_an_array_moved_to_its_new_data_block() {
    killed_at("push", "val.grow.linked");
}

#[test]
fn killed_after_a_pipe_block_is_formatted_and_before_it_is_counted() {
    killed_at("pipe", "pipe.create.formatted");
}

#[test]
fn killed_after_its_ledger_allocated_a_chunk_and_before_it_is_listed() {
    killed_at("hold", "ledger.chunk.allocated");
}

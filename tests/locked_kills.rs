//! A writer of a locked table killed (SIGKILL) at each step of an update: the next locker
//! is told the owner died and finds the table as before the update or as after it, never
//! in between; and once the dead writer's holdings are given back, dropping the table
//! returns the pool to where it was before the table was made (nothing the writer had
//! allocated for the update is lost, nothing is freed twice).

mod common;

use std::time::Duration;

use common::kills::settled;
use common::{role_entry, try_spawn_paused, TestName};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, LockedGuard, ShmLocked, Val};

const T: Duration = Duration::from_secs(30);

#[test]
fn child_role() {
    role_entry(&[("writer", writer)]);
}

/// The table every case starts from: a counter, a log, a nested table, an array, and
/// enough keys that the next new key grows the table out of its first block.
fn initial() -> Val {
    val!({
        "n": 41,
        "log": ["the first event, a long string"],
        "cfg": {"rate": 1, "name": "a name longer than a cell"},
        "xs": Val::from(vec![1.0f64, 2.0, 3.0]),
    })
}

/// Operations of the action `insert-grown`.
const GROWN: usize = 6;

/// The update `action` makes, on any guard, stopping after `ops` operations (an action of
/// several operations may be cut between any two).
fn apply(action: &str, ops: usize, g: &mut LockedGuard<'_>) {
    if ops == 0 {
        return;
    }
    match action {
        "increment" => {
            g.increment("n", 1).unwrap();
        }
        "insert-new" => {
            g.insert(
                "a key longer than a cell",
                val!({"xs": [1, 2, 3], "s": "a value longer than a cell"}),
            )
            .unwrap();
        }
        "insert-grown" => {
            // Grows the table out of its first block, then out of the second: the second
            // growth gives up a data block of its own.
            for i in 0..GROWN.min(ops) {
                g.insert(format!("grown key number {i}"), i).unwrap();
            }
        }
        "replace" => {
            g.insert("cfg", val!({"rate": 2, "name": "another long name here"}))
                .unwrap();
        }
        "remove" => {
            assert!(g.remove("cfg").unwrap());
        }
        "nested" => {
            g.child_mut("cfg")
                .unwrap()
                .insert("extra", "a nested value longer than a cell")
                .unwrap();
        }
        "push" => {
            g.child_mut("log")
                .unwrap()
                .push("another event, a long string")
                .unwrap();
        }
        "array" => {
            g.child_mut("xs")
                .unwrap()
                .update_slice(|xs: &mut [f64]| xs.iter_mut().for_each(|x| *x += 10.0))
                .unwrap();
        }
        a => panic!("unknown action {a}"),
    }
}

/// The child: args region, pipe, action, point. Receives the table's handle, locks it,
/// arms the point and updates; it must pause there.
fn writer(args: &[String]) {
    let c = ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(T)
        .start()
        .unwrap();
    let board = c.pipe().dequeue(T).unwrap().into_locked().unwrap();
    shmval::fault::arm(&args[3]);
    let mut g = board.lock(T).unwrap();
    apply(&args[2], usize::MAX, &mut g);
    drop(g);
    // Done: the parent learns the point is not passed again.
    std::process::exit(3);
}

/// Kills a writer of `action` at `point` (`name` or `name#n`) and checks what the
/// survivor finds; `false` if the writer finished without passing the point.
///
/// With `recover_first`, the dead writer's holdings are given back before anyone locks the
/// table: recovery takes the lock itself and settles the journal first.
fn kill_at(action: &str, point: &str, recover_first: bool) -> bool {
    let name = TestName::new("locked-kill");
    let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    let base = settled(pool);

    // What the table may look like: as before the action or after any of its operations.
    let states: Vec<Val> = (0..=GROWN)
        .map(|ops| {
            let model = ShmLocked::new(pool, initial()).unwrap();
            apply(action, ops, &mut model.lock(T).unwrap());
            let v = model.lock(T).unwrap().to_val().unwrap();
            v
        })
        .collect();
    settled(pool);

    let board = ShmLocked::new(pool, initial()).unwrap();
    server.pipe().try_enqueue(board.clone().into_val()).unwrap();
    let base_name = point.split('#').next().unwrap();
    let args = [name.as_str(), "p", action, point];
    let passed = match try_spawn_paused("writer", &args, base_name) {
        Ok(child) => {
            child.kill();
            true
        }
        Err(status) => {
            assert_eq!(
                status.code(),
                Some(3),
                "{action} at {point}: the writer failed"
            );
            false
        }
    };

    if recover_first {
        main.recover();
        let r = shmval::ledger::recovered(pool.region());
        assert_eq!(
            r.processes, 1,
            "{action} at {point}: the writer is recovered at once"
        );
        let st = board.status().unwrap();
        assert!(
            !st.in_operation,
            "{action} at {point}: recovery settled the journal"
        );
    }
    let g = board.lock(T).unwrap();
    if !recover_first {
        assert_eq!(
            g.owner_died(),
            passed,
            "{action} at {point}: the next locker is told"
        );
    }
    let now = g.to_val().unwrap();
    assert!(
        states.contains(&now),
        "{action} at {point}: the table is half updated: {now}"
    );
    drop(g);
    let st = board.status().unwrap();
    assert!(!st.in_operation && st.holder.is_none());

    // The dead writer's holdings go back; then the table itself.
    main.recover();
    assert!(board.lock(T).is_ok(), "the lock works on");
    drop(board);
    let end = settled(pool);
    assert_eq!(
        end,
        base,
        "{action} at {point}: the pool is back where it was (now {end:?}, was {base:?}); \
         recovered {:?}",
        shmval::ledger::recovered(pool.region())
    );
    drop(server);
    passed
}

/// The steps of an update where a death is interesting; each is walked at its every
/// passing (`name#1`, `name#2`, ...) until the writer finishes without reaching it.
const STEPS: [&str; 10] = shmval::fault::LOCKED_UPDATE_POINTS;

/// Kills a writer of `action` at every passing of every step; returns the kills.
fn every_step(action: &str) -> usize {
    every_step_with(action, false)
}

fn every_step_with(action: &str, recover_first: bool) -> usize {
    let mut kills = 0;
    for step in STEPS {
        for n in 1.. {
            if !kill_at(action, &format!("{step}#{n}"), recover_first) {
                break;
            }
            kills += 1;
        }
    }
    assert!(kills > 0);
    kills
}

#[test]
fn an_increment_is_whole_or_not_at_all() {
    every_step("increment");
}

#[test]
fn an_insert_of_a_new_key_is_whole_or_not_at_all() {
    every_step("insert-new");
}

#[test]
fn inserts_that_grow_the_table_twice_are_each_whole_or_not_at_all() {
    every_step("insert-grown");
}

#[test]
fn a_replace_and_a_remove_are_whole_or_not_at_all() {
    every_step("replace");
    every_step("remove");
}

#[test]
fn nested_writes_are_whole_or_not_at_all() {
    every_step("nested");
    every_step("push");
    every_step("array");
}

#[test]
fn recovery_before_any_locker_settles_the_dead_writers_update() {
    every_step_with("insert-new", true);
    every_step_with("replace", true);
}

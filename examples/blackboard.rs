//! The original's first example (`Val v = Shared(pool, Tab()); v["a"] = "hello";`), with
//! the table written from several processes: a table in shared memory with a lock of its
//! own, found by name.
//!
//! ```text
//! blackboard mempool                 # creates the pool and the table "board", then shows
//!                                    # it each second until every writer said it is done
//! blackboard mempool writer1 1000    # (other processes) writes 1000 updates, then is done
//! blackboard mempool writer2 1000
//! ```
//!
//! Each update takes the table's lock, counts itself in `updates` and its writer's own
//! counter, and records the writer as `last`. A writer killed at any moment leaves the
//! table whole: the next one to lock it is told, and the update it was in is whole or
//! undone.

use std::process::ExitCode;
use std::time::Duration;

use shmval::sides::{Lookup, ShmMain};
use shmval::{val, ShmLocked};

const LOCK: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.as_slice() {
        [region] => board(region, 1),
        [region, writers] if writers.parse::<u64>().is_ok() => {
            board(region, writers.parse().unwrap_or(1))
        }
        [region, name, count] => match count.parse() {
            Ok(n) => write(region, name, n),
            Err(_) => Err(format!("not a count: {count}").into()),
        },
        _ => Err("usage: blackboard REGION [WRITERS] | blackboard REGION WRITER COUNT".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blackboard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Creates the pool and the table, publishes it as "board", and shows it until `writers`
/// writers said they are done.
fn board(region: &str, writers: u64) -> Result<(), Box<dyn std::error::Error>> {
    let main = ShmMain::new(region, 1 << 20).start()?;
    let board = ShmLocked::new(main.pool(), val!({}))?; // Shared(pool, Tab()), with a lock
    board.lock(LOCK)?.insert("a", "hello")?; // v["a"] = "hello"
    main.names()?.publish("board", board.clone().into_val())?;
    println!("table 'board' in region {region}: waiting for {writers} writer(s)");
    loop {
        let g = board.lock(LOCK)?;
        let done = match g.get("done")? {
            Some(d) => d.as_i64()? as u64,
            None => 0,
        };
        println!("{}", g.to_val()?);
        drop(g);
        if done >= writers {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finds the table by name and writes `count` updates to it, then counts itself done.
fn write(region: &str, name: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let board = Lookup::new(region, "board")
        .timeout(Duration::from_secs(60))
        .start()?
        .into_locked()?;
    for _ in 0..count {
        let mut g = board.lock(LOCK)?;
        if g.owner_died() {
            println!("{name}: a writer died holding the table; its last update is whole or undone");
        }
        g.increment("updates", 1)?;
        g.increment(name, 1)?;
        g.insert("last", name)?;
    }
    let mut g = board.lock(LOCK)?;
    g.increment("done", 1)?;
    println!(
        "{name}: {count} updates written; the table now: {}",
        g.to_val()?
    );
    Ok(())
}

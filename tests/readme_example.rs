//! The README's examples, run as written (with a unique region name).

mod common;

use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt};

#[test]
fn the_readme_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    let name = common::TestName::new("readme");
    let mempool = name.as_str();
    let main = ShmMain::new(mempool, 1 << 20).start()?; // the pool, created once
    let server = ServerSide::new(mempool, "pipe1", 4).start()?; // a named pipe in it
    let client = ClientSide::new(mempool, "pipe1").start()?; // (any process)
    let mut packet = server.pool().share(&val!({"seq": 1, "name": "probe"}))?;
    packet.insert("xs", server.pool().array_from(&[1.5, 2.5])?)?; // in place, while unique
    server.pipe().enq(packet)?; // moves the handle
    let got = client.pipe().deq()?; // no copy, no parse
    assert_eq!(got.field("seq")?.as_i64()?, 1); // errors name the key
    assert_eq!(got.field("xs")?.as_slice::<f64>()?, &[1.5, 2.5]);
    drop((client, server, main));
    Ok(())
}

#[test]
fn the_readme_names_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    use shmval::sides::Lookup;
    use std::time::Duration;
    let name = common::TestName::new("readme-names");
    let mempool = name.as_str();
    // The process that made the pool publishes its configuration table...
    let main = ShmMain::new(mempool, 1 << 20).start()?;
    let config = main
        .pool()
        .share(&val!({"rate": 48000, "channels": ["left", "right"]}))?;
    main.names()?.publish("config", config)?; // the entry takes the handle's reference

    // ...and another process waits up to 10 s for the region, then for the name.
    let config = Lookup::new(mempool, "config")
        .timeout(Duration::from_secs(10))
        .start()?;
    assert_eq!(config.field("rate")?.as_i64()?, 48000); // read in place, no copy
    drop((config, main));
    Ok(())
}

#[test]
fn the_readme_locked_table_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    use shmval::sides::Lookup;
    use shmval::ShmLocked;
    use std::time::Duration;
    let name = common::TestName::new("readme-locked");
    let mempool = name.as_str();
    // One process: the pool, a table in it with its own lock, published by name.
    let main = ShmMain::new(mempool, 1 << 20).start()?;
    let v = ShmLocked::new(main.pool(), val!({}))?; // Shared(pool, Tab()), locked
    v.lock(Duration::from_secs(1))?.insert("a", "hello")?; // v["a"] = "hello"
    main.names()?.publish("board", v.clone().into_val())?;

    // Any other process: finds it by name and writes to it too.
    let v = Lookup::new(mempool, "board")
        .timeout(Duration::from_secs(10))
        .start()?
        .into_locked()?;
    let mut g = v.lock(Duration::from_secs(1))?; // the guard: reads and writes
    g.insert("b", "world")?;
    g.increment("visits", 1)?;
    assert_eq!(g.get("a")?.unwrap().as_str()?, "hello"); // borrowed from the guard
    assert_eq!(g.to_val()?, val!({"a": "hello", "b": "world", "visits": 1}));
    drop(g);
    drop((v, main));
    Ok(())
}

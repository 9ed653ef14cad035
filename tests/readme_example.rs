//! The README's example, run as written (with a unique region name).

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

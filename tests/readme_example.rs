//! The README's example, run as written (with a unique region name).

mod common;

use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt, Val};

#[test]
fn the_readme_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    let name = common::TestName::new("readme");
    let mempool = name.as_str();
    let main = ShmMain::new(mempool, 1 << 20).start()?; // the pool, created once
    let server = ServerSide::new(mempool, "pipe1", 4).start()?; // a named pipe in it
    let client = ClientSide::new(mempool, "pipe1").start()?; // (any process)
    let packet = server.pool().share(&val!({"seq": 1, "xs": [1.5, 2.5]}))?;
    server.pipe().enq(packet)?; // moves the handle
    let got = client.pipe().deq()?; // no copy, no parse
    assert_eq!(got.as_tab()?.get("seq")?.unwrap().to_val()?, Val::from(1));
    drop((client, server, main));
    Ok(())
}

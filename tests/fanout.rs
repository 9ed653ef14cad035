//! The fan-out: every output sees every item under `Block`; `DropAfter` and `DropOldest`
//! drop only for a full output, count what they drop, and free what they drop.

// The shared test helpers count with std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::time::Duration;

use common::TestName;
use shmval::sides::{Fanout, Forwarded, OutputStats, Policy, ServerSide, ShmMain};
use shmval::{PoolExt, Val};

const BYTES: u64 = 1 << 20;

struct Setup {
    _name: TestName,
    main: ShmMain,
    input: ServerSide,
    outputs: Vec<ServerSide>,
}

fn setup(tag: &str, caps: &[u64]) -> Setup {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let input = ServerSide::new(name.as_str(), "in", 1024).start().unwrap();
    let outputs = caps
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            ServerSide::new(name.as_str(), format!("out{i}"), c)
                .start()
                .unwrap()
        })
        .collect();
    Setup {
        _name: name,
        main,
        input,
        outputs,
    }
}

impl Setup {
    fn fanout(&self, policy: Policy) -> Fanout {
        Fanout::new(
            self.input.pipe().clone(),
            self.outputs.iter().map(|o| o.pipe().clone()).collect(),
            policy,
        )
    }

    fn send(&self, range: std::ops::Range<i64>) {
        for n in range {
            let v = self.main.pool().share(&Val::from(n)).unwrap();
            self.input.pipe().try_enqueue(v).unwrap();
        }
    }

    fn drain(&self, i: usize) -> Vec<i64> {
        let mut got = vec![];
        while let Ok(v) = self.outputs[i].pipe().try_dequeue() {
            got.push(i64::try_from(&v.to_val().unwrap()).unwrap());
        }
        got
    }

    /// The pool's use, but for what this process's ledgers keep (their chunks grow with
    /// the values held at once, and stay).
    fn used(&self) -> u64 {
        let pool = self.main.pool();
        pool.stats().unwrap().used - shmval::ledger::kept(pool).bytes
    }
}

#[test]
fn block_gives_every_output_every_item_in_order() {
    let s = setup("fanout-block", &[8, 8, 8]);
    let baseline = s.used();
    let mut f = s.fanout(Policy::Block);
    let readers: Vec<_> = s
        .outputs
        .iter()
        .map(|o| {
            let p = o.pipe().clone();
            std::thread::spawn(move || {
                let mut got = vec![];
                while let Ok(v) = p.deq() {
                    got.push(i64::try_from(&v.to_val().unwrap()).unwrap());
                }
                got
            })
        })
        .collect();
    s.send(0..500);
    s.input.pipe().close().unwrap();
    let stats = f.run().unwrap().clone();
    assert_eq!(stats.received, 500);
    assert_eq!(
        stats.outputs,
        vec![
            OutputStats {
                sent: 500,
                dropped: 0
            };
            3
        ]
    );
    for r in readers {
        assert_eq!(r.join().unwrap(), (0..500).collect::<Vec<_>>());
    }
    assert_eq!(s.used(), baseline, "every copy was freed");
}

#[test]
fn drop_after_drops_only_for_the_full_output() {
    let s = setup("fanout-drop-after", &[100, 4]);
    let baseline = s.used();
    let mut f = s.fanout(Policy::DropAfter(Duration::from_millis(1)));
    s.send(0..20);
    for _ in 0..20 {
        assert_eq!(
            f.forward(Some(Duration::from_secs(5))).unwrap(),
            Forwarded::Item
        );
    }
    assert_eq!(
        f.forward(Some(Duration::from_millis(1))).unwrap(),
        Forwarded::Nothing
    );
    assert_eq!(
        f.stats().outputs,
        vec![
            OutputStats {
                sent: 20,
                dropped: 0
            },
            OutputStats {
                sent: 4,
                dropped: 16
            }
        ]
    );
    assert_eq!(s.drain(0), (0..20).collect::<Vec<_>>());
    assert_eq!(s.drain(1), vec![0, 1, 2, 3]);
    assert_eq!(s.used(), baseline, "dropped copies were freed");
}

#[test]
fn drop_oldest_keeps_the_newest_items() {
    let s = setup("fanout-drop-oldest", &[100, 3]);
    let baseline = s.used();
    let mut f = s.fanout(Policy::DropOldest);
    s.send(0..10);
    s.input.pipe().close().unwrap();
    let stats = f.run().unwrap().clone();
    assert_eq!(
        stats.outputs[0],
        OutputStats {
            sent: 10,
            dropped: 0
        }
    );
    assert_eq!(
        stats.outputs[1],
        OutputStats {
            sent: 10,
            dropped: 7
        }
    );
    assert_eq!(s.drain(0), (0..10).collect::<Vec<_>>());
    assert_eq!(s.drain(1), vec![7, 8, 9]);
    assert!(s.outputs[1].pipe().is_closed(), "run closes the outputs");
    assert_eq!(s.used(), baseline);
}

#[test]
fn a_closed_output_counts_as_drops_and_the_others_go_on() {
    let s = setup("fanout-closed", &[8, 8]);
    let mut f = s.fanout(Policy::Block);
    s.outputs[1].pipe().close().unwrap();
    s.send(0..3);
    s.input.pipe().close().unwrap();
    let stats = f.run().unwrap().clone();
    assert_eq!(
        stats.outputs[0],
        OutputStats {
            sent: 3,
            dropped: 0
        }
    );
    assert_eq!(
        stats.outputs[1],
        OutputStats {
            sent: 0,
            dropped: 3
        }
    );
    assert_eq!(s.drain(0), vec![0, 1, 2]);
}

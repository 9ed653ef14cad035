//! A pool that grows while processes are attached: values larger than what is left grow
//! the region's file (in steps of at least 2 MiB, doubling) up to its maximum, every
//! handle and offset staying valid; values sent through a pipe to another process arrive
//! intact; the maximum is an error naming itself; and a grower killed at every step of a
//! growth leaves a pool the survivors go on using.

mod common;

use std::time::Duration;

use common::{role_entry, spawn_paused, TestName};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt, Val, ValError};

const MIB: u64 = 1 << 20;
const T: Duration = Duration::from_secs(30);

#[test]
fn child_role() {
    role_entry(&[("sink", sink), ("grower", grower)]);
}

/// A value of about `bytes` bytes, told apart by `seq`: a string and an array.
fn sized(seq: u64, bytes: usize) -> Val {
    let s: String = std::iter::repeat_n(char::from(b'a' + (seq % 26) as u8), bytes / 2).collect();
    let xs: Vec<f64> = (0..bytes / 16).map(|i| (i as u64 ^ seq) as f64).collect();
    val!({"seq": seq, "s": s, "xs": Val::from(xs)})
}

/// Child: receives args[2] values from pipe args[1] and checks each against `sized`.
fn sink(args: &[String]) {
    let c = ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(T)
        .start()
        .unwrap();
    let n: u64 = args[2].parse().unwrap();
    for want in 0..n {
        let v = c.pipe().dequeue(T).unwrap();
        let seq = v.field("seq").unwrap().as_i64().unwrap() as u64;
        assert_eq!(seq, want);
        let bytes = v.field("s").unwrap().as_str().unwrap().len() * 2;
        assert_eq!(v.to_val().unwrap(), sized(seq, bytes), "packet {seq}");
    }
}

/// Child: attaches and shares a value too large for the pool's room, pausing at the
/// growth's step args[1].
fn grower(args: &[String]) {
    let c = ClientSide::new(args[0].clone(), "p")
        .timeout(T)
        .start()
        .unwrap();
    shmval::fault::arm(&args[1]);
    let v = c.pool().share(&sized(1, 3 * MIB as usize)).unwrap();
    drop(v);
    panic!("grew without pausing at {}", args[1]);
}

#[test]
fn a_pool_started_at_1_mib_grows_under_a_pipeline_and_every_packet_arrives_intact() {
    let name = TestName::new("pool-grow");
    let main = ShmMain::new(name.as_str(), MIB)
        .max_bytes(64 * MIB)
        .start()
        .unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let base = common::kills::settled(main.pool());
    let sizes: Vec<usize> = (0..12).map(|i| 4096usize << i.min(11)).collect();
    let n = sizes.len() as u64;
    let child = common::spawn_role("sink", &[name.as_str(), "p", &n.to_string()]);
    for (seq, bytes) in sizes.iter().enumerate() {
        let v = main.pool().share(&sized(seq as u64, *bytes)).unwrap();
        server
            .pipe()
            .enqueue(v, T)
            .map_err(|e| e.to_string())
            .unwrap();
    }
    child.wait_ok(T);
    let r = main.region();
    let (growths, last) = r.growths();
    assert!(growths >= 2, "grew {growths} times");
    assert!(last >= 2 * MIB, "steps of at least 2 MiB: {last}");
    assert!(r.len() > 8 * MIB && r.len() <= 64 * MIB, "{}", r.len());
    assert_eq!(
        common::kills::settled(main.pool()),
        base,
        "every packet was freed"
    );
    main.pool().verify().unwrap();
}

#[test]
fn growth_stops_at_the_maximum_with_an_error_and_the_pool_stays_usable() {
    let name = TestName::new("pool-max");
    let main = ShmMain::new(name.as_str(), MIB)
        .max_bytes(8 * MIB)
        .start()
        .unwrap();
    let pool = main.pool();
    let mut held = vec![];
    let err = loop {
        match pool.share(&sized(held.len() as u64, MIB as usize)) {
            Ok(v) => held.push(v),
            Err(e) => break e,
        }
    };
    let text = err.to_string();
    assert!(
        text.contains("cannot grow") && text.contains("maximum is 8388608"),
        "{text}"
    );
    assert!(matches!(err, ValError::Pool { .. }), "{err:?}");
    assert_eq!(main.region().len(), 8 * MIB);
    assert!(held.len() >= 5, "{}", held.len());
    // Smaller values still fit, and freed room is used again.
    let small = pool.share(&val!({"a": 1})).unwrap();
    drop(held.pop());
    let again = pool.share(&sized(99, MIB as usize)).unwrap();
    drop((small, again, held));
    pool.verify().unwrap();
    // A block larger than the maximum is refused at once.
    let huge = Val::from("x".repeat(9 * MIB as usize));
    assert!(matches!(
        pool.share(&huge),
        Err(ValError::OutOfMemory { .. })
    ));
}

#[test]
fn a_grower_killed_at_each_step_leaves_a_pool_the_others_go_on_using() {
    for point in [
        "region.grow.begun",
        "region.grow.allocated",
        "region.grow.published",
        "alloc.grow.formatted",
        "alloc.grow.linked",
        "alloc.grow.merged",
    ] {
        let name = TestName::new("pool-grow-kill");
        let main = ShmMain::new(name.as_str(), MIB)
            .max_bytes(32 * MIB)
            .start()
            .unwrap();
        let _server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
        let before = common::kills::settled(main.pool());
        let child = spawn_paused("grower", &[name.as_str(), point], point);
        child.kill();
        main.recover();
        // The survivors allocate on, growing further if need be.
        let big = main.pool().share(&sized(2, 3 * MIB as usize)).unwrap();
        assert_eq!(big.to_val().unwrap(), sized(2, 3 * MIB as usize), "{point}");
        drop(big);
        main.pool().verify().unwrap();
        assert_eq!(
            common::kills::settled(main.pool()),
            before,
            "{point}: nothing lost"
        );
    }
}

#[test]
fn a_growth_past_what_dev_shm_holds_is_an_error_naming_its_space_and_the_pool_goes_on() {
    // Past the whole of /dev/shm, which refuses at once (a growth merely past its free
    // space would take pages until it failed: not for a shared machine).
    let Ok(st) = nix::sys::statvfs::statvfs("/dev/shm") else {
        return;
    };
    let total = st.blocks().saturating_mul(st.fragment_size());
    let max = total.saturating_add(64 * MIB);
    if max > shmval::region::MAX_REGION_SIZE {
        return;
    }
    let name = TestName::new("pool-full");
    let main = ShmMain::new(name.as_str(), MIB)
        .max_bytes(max)
        .start()
        .unwrap();
    let e = main.pool().alloc(total, 16).unwrap_err();
    match &e {
        shmval::alloc::AllocError::CannotGrow { cause, .. } => {
            assert!(
                matches!(cause, shmval::region::RegionError::NoSpaceToGrow { .. }),
                "{cause}"
            );
            assert!(e.to_string().contains("bytes free there"), "{e}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(main.region().len(), MIB, "nothing grew");
    let v = main.pool().share(&sized(3, 64 << 10)).unwrap();
    assert_eq!(v.to_val().unwrap(), sized(3, 64 << 10));
}

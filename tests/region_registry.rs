//! The process registry with real processes: a slot per attached process with its
//! identity, released on detach, seen dead after SIGKILL and reclaimed, and a clear error
//! when every slot is taken.

mod common;

use std::time::Duration;

use common::{own_pid_ns, role_entry, spawn_paused, spawn_role, wait_until, TestName};
use shmval::region::{Region, RegionError, RegionName, SlotState};
use shmval::sides::ShmMain;

const BYTES: u64 = 1 << 20;

/// args: region. Attaches and stays attached until killed.
fn attach_and_stay(args: &[String]) {
    let _r = Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap();
    loop {
        std::thread::park();
    }
}

/// args: region. Attaches with the pause point armed in the middle of claiming a slot.
fn attach_paused(args: &[String]) {
    shmval::fault::arm("registry.claim.locked");
    let _r = Region::attach(&RegionName::new(args[0].clone()).unwrap());
    panic!("the pause point was not reached");
}

#[test]
fn child_role() {
    role_entry(&[("stay", attach_and_stay), ("paused", attach_paused)]);
}

fn region_name(name: &TestName) -> RegionName {
    RegionName::new(name.as_str().to_string()).unwrap()
}

#[test]
fn every_attached_process_has_a_slot_with_its_identity_until_it_detaches() {
    let name = TestName::new("reg-ident");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let own = main.region().slots();
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(own[0].own && own[0].alive && own[0].state == SlotState::Live);
    assert_eq!(own[0].pid, std::process::id());
    assert_eq!(own[0].pid_ns, own_pid_ns());
    assert_ne!(own[0].start_key, 0);

    let child = spawn_role("stay", &[name.as_str()]);
    let pid = child.pid();
    assert!(
        wait_until(Duration::from_secs(60), || main
            .region()
            .slots()
            .iter()
            .any(|s| s.pid == pid && s.alive)),
        "the child never registered: {:?}",
        main.region().slots()
    );
    assert!(main.region().has_live_processes());
    assert!(!main.region().has_dead_slots());
    // A second handle in this process takes a slot of its own and gives it back on drop.
    let other = Region::attach(&region_name(&name)).unwrap();
    assert_eq!(main.region().slots().len(), 3);
    drop(other);
    assert_eq!(main.region().slots().len(), 2);
    drop(child);
}

#[test]
fn a_killed_process_slot_is_seen_dead_and_reclaimed() {
    let name = TestName::new("reg-dead");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let child = spawn_role("stay", &[name.as_str()]);
    let pid = child.pid();
    assert!(wait_until(Duration::from_secs(60), || main
        .region()
        .slots()
        .iter()
        .any(|s| s.pid == pid)));
    child.kill();
    let slot = main
        .region()
        .slots()
        .into_iter()
        .find(|s| s.pid == pid)
        .expect("the dead process's slot stays until reclaimed");
    assert!(!slot.alive, "{slot:?}");
    assert!(main.region().has_dead_slots());
    assert!(!main.region().has_live_processes());
    let r = main.recover();
    assert_eq!(r.processes, 1, "{r:?}");
    assert_eq!(main.region().reclaimed_slots(), 1);
    assert!(!main.region().has_dead_slots());
    assert_eq!(main.region().slots().len(), 1, "only ours is left");
}

#[test]
fn a_process_killed_while_claiming_its_slot_is_reclaimed() {
    let name = TestName::new("reg-claiming");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let child = spawn_paused("paused", &[name.as_str()], "registry.claim.locked");
    let pid = child.pid();
    let claiming = main.region().slots();
    assert!(
        claiming
            .iter()
            .any(|s| s.state == SlotState::Claiming && s.alive),
        "{claiming:?}"
    );
    child.kill();
    assert!(
        main.region().has_dead_slots(),
        "{:?}",
        main.region().slots()
    );
    main.recover();
    assert_eq!(
        main.region().slots().len(),
        1,
        "{:?}",
        main.region().slots()
    );
    assert!(main.region().slots().iter().all(|s| s.pid != pid));
}

#[test]
fn attaching_when_every_slot_is_taken_is_a_clear_error_until_one_is_free() {
    let name = TestName::new("reg-full");
    let main = ShmMain::new(name.as_str(), BYTES)
        .processes(2)
        .start()
        .unwrap();
    assert_eq!(main.region().registry_slots(), 2);
    let second = Region::attach(&region_name(&name)).unwrap();
    match Region::attach(&region_name(&name)) {
        Err(e @ RegionError::RegistryFull { slots: 2, .. }) => {
            assert!(e.to_string().contains(name.as_str()), "{e}");
        }
        other => panic!("expected RegistryFull, got {other:?}"),
    }
    drop(second);
    let third = Region::attach(&region_name(&name)).unwrap();
    // A dead process's slot is free again once reclaimed.
    drop(third);
    let child = spawn_role("stay", &[name.as_str()]);
    let pid = child.pid();
    assert!(wait_until(Duration::from_secs(60), || main
        .region()
        .slots()
        .iter()
        .any(|s| s.pid == pid)));
    assert!(matches!(
        Region::attach(&region_name(&name)),
        Err(RegionError::RegistryFull { .. })
    ));
    child.kill();
    main.recover();
    let _again =
        Region::attach(&region_name(&name)).expect("the dead process's slot is free again");
}

//! `shmval inspect` shows the process registry (a dead process's slot and what it held),
//! and `shmval clean --recover` gives that back, on a region this test makes and a real
//! process it kills.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{json, shmval};
use shmval::sides::{ServerSide, ShmMain};
use shmval::{PoolExt, Val};

/// A child killed and reaped when dropped (a failing test leaves no process behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `shmval role` as a sink of `pipe` that holds each packet for ten minutes, and
/// waits until it announces the first one it received: it then holds that packet.
fn sink_holding_a_packet(region: &str, pipe: &str) -> Killed {
    let spec = serde_json::json!({
        "process": { "name": "holder", "kind": "sink", "in": pipe, "hold": "10m" },
        "region": region,
        "bytes": 0,
        "pipes": [],
        "source_id": 0,
        "notify_at": [],
        "arm": null,
        "runner_pid": std::process::id(),
        "each_item": true,
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .arg("role")
        .arg(spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the sink");
    let out = child.stdout.take().expect("stdout");
    let child = Killed(child);
    let mut seen = vec![];
    for line in BufReader::new(out).lines() {
        let line = line.expect("a line");
        if line.contains("\"got\"") {
            return child;
        }
        seen.push(line);
    }
    panic!("the sink ended without receiving: {seen:?}");
}

fn dead_slots(i: &serde_json::Value) -> Vec<serde_json::Value> {
    i["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["state"] == "dead")
        .cloned()
        .collect()
}

#[test]
fn inspect_shows_a_dead_process_and_clean_recover_gives_back_what_it_held() {
    let name = format!("shmval-test-registry-{}", std::process::id());
    let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let server = ServerSide::new(name.as_str(), "jobs", 8)
        .redeliver(true)
        .start()
        .unwrap();
    for n in 0..3 {
        let v = Val::parse(&format!("{{'src': 0, 'seq': {n}, 'sent_ns': 0}}")).unwrap();
        server.pipe().enq(server.pool().share(&v).unwrap()).unwrap();
    }

    let mut sink = sink_holding_a_packet(&name, "jobs");
    let pid = sink.0.id();
    let i = json(&shmval(&["inspect", "--json", &name]));
    let me = i["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .cloned()
        .expect("the sink's slot");
    assert_eq!(me["state"], "alive", "{me}");
    assert_eq!(me["holds"]["redeliverable"], 1, "{me}");
    assert_eq!(i["pipes"][0]["depth"], 2);

    sink.0.kill().unwrap();
    sink.0.wait().unwrap();
    // Nobody has looked since: the slot waits, with what the dead sink held.
    let i = json(&shmval(&["inspect", "--json", &name]));
    let dead = dead_slots(&i);
    assert_eq!(dead.len(), 1, "{:#}", i["processes"]);
    let d = &dead[0];
    assert_eq!(d["pid"], pid);
    assert_eq!(d["holds"]["values"], 1, "{d}");
    assert_eq!(d["holds"]["redeliverable"], 1, "{d}");
    assert!(d["holds"]["ledger_bytes"].as_u64().unwrap() > 0, "{d}");
    let pipes = d["holds"]["pipes"].as_array().unwrap();
    assert!(
        pipes
            .iter()
            .any(|p| p["pipe"] == "jobs" && p["receiver"] == true && p["handle"] == true),
        "{d}"
    );
    assert_eq!(i["recovered"]["processes"], 0);
    let text = String::from_utf8_lossy(&shmval(&["inspect", &name]).stdout).into_owned();
    assert!(
        text.lines().any(|l| l.contains(&pid.to_string())
            && l.contains(" dead ")
            && l.contains("jobs (handle, receives)")),
        "{text}"
    );
    assert!(text.contains("recovery: nothing given back yet"), "{text}");

    let r = json(&shmval(&["clean", "--recover", "--json", &name]));
    assert_eq!(r["processes"], 1, "{r:#}");
    assert_eq!(r["given_back"]["redelivered"], 1, "{r:#}");
    assert!(
        r["given_back"]["pipe_counts"].as_u64().unwrap() >= 2,
        "{r:#}"
    );
    assert_eq!(r["still_waiting"], false, "{r:#}");

    // The packet is back in the pipe; the slot is free; the totals say what was done.
    let i = json(&shmval(&["inspect", "--json", &name]));
    assert!(dead_slots(&i).is_empty(), "{:#}", i["processes"]);
    assert!(
        i["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pid"] != pid),
        "{:#}",
        i["processes"]
    );
    assert_eq!(i["pipes"][0]["depth"], 3);
    assert_eq!(i["recovered"]["processes"], 1);
    assert_eq!(i["recovered"]["redelivered"], 1);
    assert_eq!(i["recovered"]["last_pid"], pid);
    let text = String::from_utf8_lossy(&shmval(&["inspect", &name]).stdout).into_owned();
    assert!(
        text.contains("recovery: gave back what 1 dead process held: ")
            && text.contains("1 values redelivered"),
        "{text}"
    );

    // Once more: nothing left to give back.
    let again = shmval(&["clean", "--recover", &name]);
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("no dead process held anything"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    drop(server);
    drop(main);
    assert!(!std::path::Path::new("/dev/shm").join(&name).exists());
}

#[test]
fn clean_recover_of_no_region_or_a_bad_name_fails_clearly() {
    let out = shmval(&["clean", "--recover", "shmval-test-registry-none"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such region"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = shmval(&["clean", "--recover", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = shmval(&["clean", "--recover", "--stale"]);
    assert_eq!(out.status.code(), Some(2));
}

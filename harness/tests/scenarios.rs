//! Every scenario in `scenarios/`, run by the built `shmval` as a user runs it: exit 0 and
//! every expectation in the JSON summary holds.

use std::path::PathBuf;
use std::process::Command;

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Runs `file` with a region prefix of its own and returns the summary.
fn run_scenario(file: &str) -> serde_json::Value {
    let (out, summary) = summary_of(&scenarios_dir().join(file), file.trim_end_matches(".toml"));
    let failed: Vec<String> = summary["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["pass"] != true)
        .map(|c| format!("{}: {}", c["name"], c["figure"]))
        .collect();
    assert!(
        out.status.success() && failed.is_empty() && summary["ok"] == true,
        "{file} failed ({}): {failed:#?}\n{}",
        out.status,
        serde_json::to_string_pretty(&summary["processes"]).unwrap_or_default()
    );
    summary
}

/// Runs the scenario file at `path` with a region prefix made of `tag`; returns the output
/// and the JSON summary.
fn summary_of(path: &std::path::Path, tag: &str) -> (std::process::Output, serde_json::Value) {
    let prefix = format!("shmval-test-{tag}-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .args(["run", "--json", "--prefix", &prefix])
        .arg(path)
        .output()
        .expect("run shmval");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{}: no JSON summary ({e}); stdout:\n{text}\nstderr:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, summary)
}

macro_rules! scenarios {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_scenario($file);
            }
        )*

        const FILES: &[&str] = &[$($file),*];
    };
}

scenarios! {
    pipeline => "pipeline.toml",
    fan_in => "fan-in.toml",
    competing_consumers => "competing-consumers.toml",
    multicast_block => "multicast-block.toml",
    multicast_drop => "multicast-drop.toml",
    kill_consumer => "kill-consumer.toml",
    kill_lock_holder => "kill-lock-holder.toml",
    persist_restart => "persist-restart.toml",
    late_joiner => "late-joiner.toml",
    stale_region => "stale-region.toml",
    stop_consumer => "stop-consumer.toml",
    crash_restart_loop => "crash-restart-loop.toml",
    kill_middle_redeliver => "kill-middle-redeliver.toml",
    kill_after_receive => "kill-after-receive.toml",
    blackboard => "blackboard.toml",
    kill_writer => "kill-writer.toml",
    grow => "grow.toml",
    one_to_one => "one-to-one.toml",
}

#[test]
fn every_scenario_file_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".toml"))
        .collect();
    files.sort();
    let mut tested: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    tested.sort();
    assert_eq!(files, tested, "add the new scenario to the list above");
}

#[test]
fn the_pipeline_summary_carries_the_figures() {
    let s = run_scenario("pipeline.toml");
    let client = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "client")
        .expect("client");
    assert_eq!(client["items"], 5000);
    assert!(client["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    assert!(
        s["pool"]["high_water"].as_u64().unwrap() >= s["pool"]["baseline_used"].as_u64().unwrap()
    );
}

#[test]
fn a_bad_scenario_is_named_with_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("shmval-bad-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "name = 'bad'\n[region]\nprefix = 'x'\nbytes = 65536\n\
         [[process]]\nname = 'k'\nkind = 'sink'\nin = 'nowhere'\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    assert!(
        err.contains("in = \"nowhere\" is not a declared pipe"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The check `at_least_once` can fail: kill-after-receive on a pipe that does not
/// redeliver loses the packet the sink died with (its receive had committed), and the run
/// says so; the pool still ends at its baseline.
#[test]
fn at_least_once_fails_when_the_pipe_does_not_redeliver() {
    let text = std::fs::read_to_string(scenarios_dir().join("kill-after-receive.toml"))
        .expect("kill-after-receive.toml");
    assert!(text.contains("redeliver = true"));
    let dir = std::env::temp_dir().join(format!("shmval-no-redeliver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("no-redeliver.toml");
    std::fs::write(&file, text.replace("redeliver = true", "redeliver = false")).unwrap();
    let (out, s) = summary_of(&file, "no-redeliver");
    let _ = std::fs::remove_dir_all(&dir);
    let check = |name: &str| {
        s["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}"))
    };
    assert_eq!(out.status.code(), Some(1), "{s:#}");
    let alo = check("at_least_once");
    assert_eq!(alo["pass"], false, "{alo}");
    assert!(
        alo["figure"].as_str().unwrap().contains("; 1 missing"),
        "{alo}"
    );
    assert_eq!(check("exactly_once")["pass"], false);
    assert_eq!(check("no_leak")["pass"], true, "{}", check("no_leak"));
    assert_eq!(check("recover_within")["pass"], true);
}

/// The blackboard's summary carries the table as read at the end and each reader's reads.
#[test]
fn the_blackboard_summary_carries_the_table() {
    let s = run_scenario("blackboard.toml");
    let board = &s["tables"][0];
    assert_eq!(board["name"], "board");
    assert_eq!(board["exact"], true, "{board}");
    assert_eq!(board["counters"]["counter_a"], 2000, "{board}");
    assert_eq!(board["counters"]["counter_b"], 1500, "{board}");
    assert_eq!(board["lists"]["log"], 2000, "{board}");
    let checks = s["checks"].as_array().unwrap();
    for name in ["counters_exact board", "reads r-lock", "reads r-snap"] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == name && c["pass"] == true),
            "{name}: {checks:#?}"
        );
    }
    assert!(s["seed"].is_null(), "no random choice, no seed");
}

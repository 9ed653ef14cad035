//! Scenario mistakes that `shmval run` refuses before anything runs: exit code 2, a
//! message naming the file and the problem, never a panic.

mod common;

use std::process::Command;

use common::Scratch;

/// A scenario that runs: a source, a sink, one pipe. Each test changes one thing.
const GOOD: &str = r#"
name = "good"
[region]
prefix = "shmval-test-mistakes"
bytes = 65536
[[pipe]]
name = "p"
capacity = 4
[[process]]
name = "s"
kind = "source"
out = "p"
count = 10
[[process]]
name = "k"
kind = "sink"
in = "p"
"#;

/// Runs `shmval run` on `text` (written to `<test>.toml`); returns the exit code and
/// standard error.
fn run(test: &str, text: &str) -> (Option<i32>, String) {
    let dir = Scratch::new(&format!("mistake-{test}"));
    let file = dir.file(&format!("{test}.toml"), text);
    let out = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .arg("run")
        .arg(&file)
        .output()
        .expect("run shmval");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GOOD` with `from` replaced by `to` is refused with exit code 2 and a message that
/// names the file and contains each of `says`.
fn refused(test: &str, from: &str, to: &str, says: &[&str]) -> String {
    assert!(GOOD.contains(from), "{from}");
    let (code, err) = run(test, &GOOD.replacen(from, to, 1));
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(&format!("{test}.toml: ")), "{err}");
    for s in says {
        assert!(err.contains(s), "{s:?} not in: {err}");
    }
    err
}

#[test]
fn the_unchanged_scenario_runs() {
    let (code, err) = run("good", GOOD);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_field_of_another_kind_is_refused() {
    refused(
        "count-on-a-sink",
        "in = \"p\"\n",
        "in = \"p\"\ncount = 3\n",
        &[
            "process \"k\" (a sink): `count` does not belong there",
            "take",
        ],
    );
    refused(
        "take-on-a-source",
        "count = 10\n",
        "count = 10\ntake = 3\n",
        &["process \"s\" (a source): `take` does not belong there"],
    );
    refused(
        "resume-after-on-a-kill",
        "in = \"p\"\n",
        "in = \"p\"\n[[fault]]\nprocess = \"k\"\naction = \"kill\"\non = \"ready\"\n\
         resume_after = \"1s\"\n",
        &["fault on \"k\" (kill): `resume_after` does not belong there"],
    );
}

#[test]
fn a_payload_that_is_not_a_dict_is_refused() {
    refused(
        "payload-list",
        "count = 10\n",
        "count = 10\npayload = \"[1, 2]\"\n",
        &["payload \"[1, 2]\" is a Arr, not a dict"],
    );
    refused(
        "payload-seq",
        "count = 10\n",
        "count = 10\npayload = \"{'seq': 1}\"\n",
        &["has \"seq\", which the source sets"],
    );
}

#[test]
fn a_region_below_the_minimum_is_refused_with_one_figure() {
    // Below the header's need, the pool's and the directory's: one minimum.
    let mut figures = vec![];
    for bytes in [100, 1000, 9000] {
        let err = refused(
            &format!("bytes-{bytes}"),
            "bytes = 65536",
            &format!("bytes = {bytes}"),
            &[&format!("region.bytes = {bytes} is below the minimum of ")],
        );
        let figure = err
            .split("the minimum of ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect("the minimum");
        figures.push(figure);
    }
    assert!(figures.iter().all(|f| *f == figures[0]), "{figures:?}");
    // And it is enough: a region that size runs, given room for its one pipe and its
    // processes' ledgers.
    let min = figures[0];
    let (code, err) = run(
        "bytes-min",
        &GOOD.replace("bytes = 65536", &format!("bytes = {}", min + 8192)),
    );
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_time_bound_too_large_for_a_duration_is_refused() {
    refused(
        "max-seconds",
        "in = \"p\"\n",
        "in = \"p\"\n[expect]\nmax_seconds = 1e30\n",
        &["expect.max_seconds = 1e30 is not a number of seconds"],
    );
}

#[test]
fn a_stop_resumed_after_an_absurd_time_is_refused() {
    refused(
        "resume-after",
        "in = \"p\"\n",
        "in = \"p\"\n[[fault]]\nprocess = \"k\"\naction = \"stop\"\non = \"ready\"\n\
         resume_after = \"9999999999999999999s\"\n",
        &["bad duration \"9999999999999999999s\": at most a day"],
    );
}

#[test]
fn a_rate_too_small_to_schedule_is_refused() {
    refused(
        "rate",
        "count = 10\n",
        "count = 10\nrate = 1e-300\n",
        &[
            "source \"s\": rate = 1e-300 is not",
            "is not a number of packets a second",
        ],
    );
}

#[test]
fn a_scenario_name_that_is_no_file_says_where_it_looked_and_what_there_is() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .args(["run", "pipline"])
        .output()
        .expect("run shmval");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pipline: no such scenario file (looked for pipline, pipline.toml"),
        "{err}"
    );
    assert!(err.contains("scenarios/pipline.toml"), "{err}");
    assert!(err.contains("pipeline, "), "{err}");
    assert!(err.contains("kill-lock-holder"), "{err}");
}

#[test]
fn a_start_after_chain_that_comes_back_is_refused() {
    let text = GOOD
        .replace("count = 10\n", "count = 10\nstart_after = \"k\"\n")
        .replace("in = \"p\"\n", "in = \"p\"\nstart_after = \"s\"\n");
    let (code, err) = run("start-after-loop", &text);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "start-after-loop.toml: process \"s\": its start_after chain comes back to it"
        ),
        "{err}"
    );
}

#[test]
fn a_hold_is_refused_where_it_means_nothing_or_is_no_duration() {
    refused(
        "hold-on-a-source",
        "count = 10\n",
        "count = 10\nhold = \"2ms\"\n",
        &["process \"s\" (a source): `hold` does not belong there"],
    );
    refused(
        "hold-not-a-duration",
        "in = \"p\"\n",
        "in = \"p\"\nhold = \"forever\"\n",
        &["process \"k\": hold: bad duration \"forever\""],
    );
}

#[test]
fn times_is_refused_but_on_a_restart_and_must_count_starts() {
    refused(
        "times-on-a-kill",
        "in = \"p\"\n",
        "in = \"p\"\n[[fault]]\nprocess = \"k\"\naction = \"kill\"\nat_item = 3\ntimes = 2\n",
        &[
            "fault on \"k\" (kill): `times` does not belong there",
            "at_item",
        ],
    );
    refused(
        "times-zero",
        "in = \"p\"\n",
        "in = \"p\"\n[[fault]]\nprocess = \"k\"\naction = \"restart\"\nat_item = 3\ntimes = 0\n",
        &["fault on \"k\": times is the number of starts it hits, 1 or more"],
    );
    refused(
        "times-with-at",
        "in = \"p\"\n",
        "in = \"p\"\n[[fault]]\nprocess = \"k\"\naction = \"restart\"\nat = \"1s\"\ntimes = 3\n",
        &["fault on \"k\": times needs at_item or on"],
    );
}

#[test]
fn redeliver_belongs_to_a_pipe_and_at_least_once_to_the_expectations() {
    refused(
        "redeliver-on-a-sink",
        "in = \"p\"\n",
        "in = \"p\"\nredeliver = true\n",
        &["unknown field `redeliver`"],
    );
    refused(
        "redeliver-not-a-bool",
        "capacity = 4\n",
        "capacity = 4\nredeliver = \"yes\"\n",
        &["redeliver"],
    );
    refused(
        "at-least-once-misspelt",
        "in = \"p\"\n",
        "in = \"p\"\n[expect]\nat_least_one = true\n",
        &["at_least_one"],
    );
}

//! Reading scenario files: what reads, and how each problem is named.

use super::check::MIN_REGION_BYTES;
use super::*;

const MINIMAL: &str = r#"
    name = "t"
    [region]
    prefix = "t"
    bytes = 65536
    [[pipe]]
    name = "p"
    capacity = 4
    [[process]]
    name = "s"
    kind = "source"
    out = "p"
    count = 3
    [[process]]
    name = "k"
    kind = "sink"
    in = "p"
"#;

#[test]
fn a_minimal_scenario_reads() {
    let s = Scenario::parse(MINIMAL).unwrap();
    assert_eq!(s.processes.len(), 2);
    assert!(s.expect.survivors_finish && s.expect.no_files_left);
    assert!(s.runner_creates_region());
}

#[test]
fn problems_are_named() {
    let bad_pipe = MINIMAL.replace("in = \"p\"", "in = \"q\"");
    let e = Scenario::parse(&bad_pipe).unwrap_err();
    assert!(e.contains("in = \"q\" is not a declared pipe"), "{e}");
    let unknown = MINIMAL.replace("count = 3", "count = 3\ncolour = 1");
    let e = Scenario::parse(&unknown).unwrap_err();
    assert!(e.contains("colour"), "{e}");
    let payload = MINIMAL.replace("count = 3", "count = 3\npayload = \"{'a': \"");
    let e = Scenario::parse(&payload).unwrap_err();
    assert!(e.contains("not a Python literal"), "{e}");
}

#[test]
fn durations_read() {
    assert_eq!(duration("5ms").unwrap(), Duration::from_millis(5));
    assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(duration("200us").unwrap(), Duration::from_micros(200));
    assert!(duration("5 parsecs").is_err());
    assert!(duration("ms").is_err());
    assert_eq!(duration("1440m").unwrap(), MAX_DURATION);
    for absurd in [
        "1441m",
        "9999999999999999999s",
        &format!("{}s", "9".repeat(400)),
    ] {
        let e = duration(absurd).unwrap_err();
        assert!(e.contains("at most a day"), "{absurd}: {e}");
    }
}

#[test]
fn random_items_read_and_are_checked() {
    let fault =
        "[[fault]]\nprocess = \"k\"\naction = \"restart\"\nat_random_item = [2, 9]\ntimes = 3";
    let s = Scenario::parse(&format!("seed = 11\n{MINIMAL}\n{fault}")).unwrap();
    assert_eq!(s.seed, Some(11));
    assert_eq!(s.faults[0].at_random_item, Some([2, 9]));
    assert_eq!(s.faults[0].at_item, None);
    let e =
        Scenario::parse(&format!("{MINIMAL}\n{}", fault.replace("[2, 9]", "[9, 2]"))).unwrap_err();
    assert!(e.contains("at_random_item = [9, 2] is not a range"), "{e}");
    let e = Scenario::parse(&format!("{MINIMAL}\n{fault}\nat_item = 4")).unwrap_err();
    assert!(
        e.contains("exactly one of at_item, at_random_item, at, on"),
        "{e}"
    );
    let e = Scenario::parse(&format!("{MINIMAL}\n{}", fault.replace("[2, 9]", "[2]"))).unwrap_err();
    assert!(e.contains("at_random_item"), "{e}");
}

/// The minimum is what the library needs: a region of that size that may not grow starts
/// with its pool and pipe and names directories, one byte less does not. (A region that
/// may grow starts smaller: its pool grows to hold them.)
#[test]
fn the_minimum_region_is_the_smallest_shm_main_starts() {
    let name = format!("shmval-test-min-region-{}", std::process::id());
    let main = shmval::sides::ShmMain::new(name.as_str(), MIN_REGION_BYTES)
        .max_bytes(MIN_REGION_BYTES)
        .start();
    assert!(main.is_ok(), "{:?}", main.err());
    drop(main);
    let e = shmval::sides::ShmMain::new(name.as_str(), MIN_REGION_BYTES - 1)
        .max_bytes(MIN_REGION_BYTES - 1)
        .start()
        .err();
    assert!(
        e.is_some(),
        "a region of {} bytes started",
        MIN_REGION_BYTES - 1
    );
}

/// A table, two writers, a reader, and faults on the writers.
const TABLES: &str = r#"
    name = "t"
    seed = 7
    [region]
    prefix = "t"
    bytes = 65536
    [[table]]
    name = "board"
    value = "{'a': 0, 'b': 5, 'log': ['first']}"
    [[process]]
    name = "w1"
    kind = "writer"
    table = "board"
    ops = 10
    increment = ["a", "b"]
    append = "log"
    hold = "1ms"
    item_bytes = 20
    [[process]]
    name = "w2"
    kind = "writer"
    table = "board"
    ops = 10
    increment = ["a"]
    [[process]]
    name = "r"
    kind = "reader"
    table = "board"
    read = "snapshot"
    reads = 3
    [[fault]]
    process = "w1"
    action = "kill_in_lock"
    at_item = 4
    point = "undo.stored#3"
    [[fault]]
    process = "w2"
    action = "restart"
    at_random_item = [2, 8]
    times = 2
    [expect]
    counters_exact = true
"#;

#[test]
fn tables_writers_and_readers_read() {
    let s = Scenario::parse(TABLES).unwrap();
    assert_eq!(s.seed, Some(7));
    assert_eq!(s.tables.len(), 1);
    assert_eq!(
        s.tables[0].value_val().unwrap().get("b"),
        Some(&Val::from(5))
    );
    let w1 = s.process("w1").unwrap();
    assert_eq!(w1.kind, Kind::Writer);
    assert_eq!((w1.ops, w1.item_bytes), (Some(10), Some(20)));
    assert_eq!(w1.increment, ["a", "b"]);
    assert_eq!(w1.append.as_deref(), Some("log"));
    assert_eq!(w1.hold_for(), Some(Duration::from_millis(1)));
    assert_eq!(w1.lock_of(), Some(LockOf::Table("board")));
    let r = s.process("r").unwrap();
    assert_eq!(
        (r.kind, r.reads, r.read.as_deref()),
        (Kind::Reader, Some(3), Some("snapshot"))
    );
    assert_eq!(s.faults[1].at_random_item, Some([2, 8]));
    assert!(s.expect.counters_exact);
    let writers: Vec<&str> = s.writers_of("board").map(|p| p.name.as_str()).collect();
    assert_eq!(writers, ["w1", "w2"]);
    assert_eq!(
        (s.kills_of("w1"), s.kills_of("w2"), s.kills_of("r")),
        (1, 2, 0)
    );
}

#[test]
fn table_problems_are_named() {
    let cases = [
        (
            "table = \"board\"\n    ops = 10\n    increment = [\"a\", \"b\"]",
            "table = \"nope\"\n    ops = 10\n    increment = [\"a\", \"b\"]",
            "table = \"nope\" is not a declared table",
        ),
        (
            "ops = 10\n    increment = [\"a\", \"b\"]",
            "increment = [\"a\", \"b\"]",
            "writer \"w1\" needs `ops`",
        ),
        (
            "increment = [\"a\", \"b\"]",
            "increment = [\"a\", \"c\"]",
            "no integer under \"c\"",
        ),
        (
            "increment = [\"a\", \"b\"]",
            "increment = [\"a\", \"a\"]",
            "names \"a\" twice",
        ),
        (
            "append = \"log\"\n    hold",
            "append = \"b\"\n    hold",
            "no list under \"b\"",
        ),
        (
            "increment = [\"a\"]\n",
            "",
            "give `increment`, `append` or both",
        ),
        (
            "reads = 3",
            "reads = 3\n    ops = 1",
            "`ops` does not belong there",
        ),
        (
            "read = \"snapshot\"",
            "read = \"copy\"",
            "read is \"lock\" or \"snapshot\"",
        ),
        (
            "value = \"{'a'",
            "value = \"[1, 2]\"\n    x = \"{'a'",
            "`x`",
        ),
        (
            "item_bytes = 20",
            "item_bytes = 5000",
            "item_bytes is at most 4096",
        ),
        (
            "point = \"undo.stored#3\"",
            "point = \"undo.stored#0\"",
            "1 or more",
        ),
        (
            "point = \"undo.stored#3\"",
            "point = \"undo.flushed\"",
            "point must be one of",
        ),
        (
            "point = \"undo.stored#3\"",
            "point = \"ring.send.committed\"",
            "ring.send.committed needs a source",
        ),
        (
            "at_random_item = [2, 8]",
            "at_random_item = [8, 2]",
            "is not a range",
        ),
        (
            "at_random_item = [2, 8]",
            "at_random_item = [2, 8]\n    at_item = 3",
            "exactly one of",
        ),
    ];
    for (from, to, want) in cases {
        assert!(TABLES.contains(from), "{from}");
        let e = Scenario::parse(&TABLES.replacen(from, to, 1)).unwrap_err();
        assert!(e.contains(want), "{to}: {e}");
    }
    let twice = TABLES.replace(
        "[[process]]\n    name = \"w1\"",
        "[[table]]\n    name = \"board\"\n    value = \"{}\"\n    [[process]]\n    name = \"w1\"",
    );
    let e = Scenario::parse(&twice).unwrap_err();
    assert!(e.contains("table \"board\" is declared twice"), "{e}");
    let not_dict = TABLES.replace(
        "value = \"{'a': 0, 'b': 5, 'log': ['first']}\"",
        "value = \"[1]\"",
    );
    let e = Scenario::parse(&not_dict).unwrap_err();
    assert!(e.contains("not a dict"), "{e}");
    let e = Scenario::parse(&format!("{MINIMAL}\n[expect]\ncounters_exact = true")).unwrap_err();
    assert!(
        e.contains("counters_exact needs a [[table]] with a writer"),
        "{e}"
    );
    // A source may not pause inside a table's lock.
    let e = Scenario::parse(&format!(
        "{MINIMAL}\n[[fault]]\nprocess = \"s\"\naction = \"kill_in_lock\"\nat_item = 1\n\
         point = \"undo.committed\""
    ))
    .unwrap_err();
    assert!(e.contains("undo.committed needs a writer"), "{e}");
}

#[test]
fn items_name_their_writer_start_and_update() {
    assert_eq!(item_of("w1", 2, 17, None), "w1-2-17");
    let long = item_of("w-x", 1, 5, Some(20));
    assert_eq!(long, "w-x-1-5.............");
    assert_eq!(long.len(), 20);
    assert_eq!(item_parts(&long), Some(("w-x", 1, 5)));
    assert_eq!(item_parts("w1-2-17"), Some(("w1", 2, 17)));
    assert_eq!(item_parts("first"), None);
    assert_eq!(item_parts("a-b-c"), None);
}

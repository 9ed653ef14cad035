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

/// The minimum is what the library needs: a region of that size starts with its pool
/// and pipe directory, one byte less does not.
#[test]
fn the_minimum_region_is_the_smallest_shm_main_starts() {
    let name = format!("shmval-test-min-region-{}", std::process::id());
    let main = shmval::sides::ShmMain::new(name.as_str(), MIN_REGION_BYTES).start();
    assert!(main.is_ok(), "{:?}", main.err());
    drop(main);
    let e = shmval::sides::ShmMain::new(name.as_str(), MIN_REGION_BYTES - 1)
        .start()
        .err();
    assert!(
        e.is_some(),
        "a region of {} bytes started",
        MIN_REGION_BYTES - 1
    );
}

//! The at_least_once verdict on receipts made up to show each rule.

use super::*;

const TWO_SINKS: &str = r#"
    name = "t"
    [region]
    prefix = "t"
    bytes = 65536
    [[pipe]]
    name = "p"
    capacity = 4
    redeliver = true
    [[process]]
    name = "s"
    kind = "source"
    out = "p"
    count = 10
    [[process]]
    name = "a"
    kind = "sink"
    in = "p"
    [[process]]
    name = "b"
    kind = "sink"
    in = "p"
    [expect]
    at_least_once = true
"#;

/// A start that received `seqs` of source 0 in that order; `killed`, and whether it
/// announced its work on the last one done.
fn start(seqs: &[u64], killed: bool, last_done: bool) -> Receipts {
    let mut r = Receipts::default();
    for &s in seqs {
        r.record(0, s);
        if last_done || Some(&s) != seqs.last() {
            r.done(0, s);
        }
    }
    r.killed = killed;
    r
}

/// The at_least_once verdict when sink `a`'s starts and sink `b`'s received these.
fn verdict(a: Vec<Receipts>, b: Vec<Receipts>) -> Check {
    let sc = Scenario::parse(TWO_SINKS).unwrap();
    let o = Outcome {
        sc: &sc,
        processes: &[],
        reports: vec![None; 3],
        receipts: vec![vec![], a, b],
        sources: vec![SourceAck {
            id: 0,
            count: 10,
            acked: 10,
        }],
        pool: None,
        faults: &[],
        files_left: vec![],
        seconds: 0.0,
        stale_replaced: false,
        tables: &[],
    };
    at_least_once(&o, &arrivals(&o), 10, 0)
}

#[test]
fn every_packet_through_once_passes() {
    let c = verdict(
        vec![start(&[0, 1, 2, 3, 4], false, true)],
        vec![start(&[5, 6, 7, 8, 9], false, true)],
    );
    assert!(c.pass, "{}", c.figure);
}

#[test]
fn a_packet_a_killed_sink_died_working_on_must_arrive_elsewhere() {
    // `a` died holding 3, never done with it; nobody else got it: lost.
    let lost = verdict(
        vec![
            start(&[0, 1, 2, 3], true, false),
            start(&[4, 5, 6, 7], false, true),
        ],
        vec![start(&[8, 9], false, true)],
    );
    assert!(
        !lost.pass && lost.figure.contains("1 missing (1 of them"),
        "{}",
        lost.figure
    );
    // Redelivered to `b`: through, and the second arrival is allowed.
    let redelivered = verdict(
        vec![
            start(&[0, 1, 2, 3], true, false),
            start(&[4, 5, 6, 7], false, true),
        ],
        vec![start(&[3, 8, 9], false, true)],
    );
    assert!(redelivered.pass, "{}", redelivered.figure);
    assert!(
        redelivered.figure.contains("1 delivered again"),
        "{}",
        redelivered.figure
    );
}

#[test]
fn a_packet_done_before_the_kill_counts_and_may_come_again() {
    let c = verdict(
        vec![
            start(&[0, 1, 2, 3], true, true),
            start(&[4, 5, 6, 7], false, true),
        ],
        vec![start(&[8, 9], false, true)],
    );
    assert!(c.pass, "{}", c.figure);
    let again = verdict(
        vec![
            start(&[0, 1, 2, 3], true, true),
            start(&[3, 4, 5, 6, 7], false, true),
        ],
        vec![start(&[8, 9], false, true)],
    );
    assert!(again.pass, "{}", again.figure);
}

#[test]
fn any_other_duplicate_fails() {
    // 2 was acknowledged by the killed start before it took 3: it may not come again.
    let c = verdict(
        vec![
            start(&[0, 1, 2, 3], true, false),
            start(&[2, 3, 4, 5, 6, 7], false, true),
        ],
        vec![start(&[8, 9], false, true)],
    );
    assert!(
        !c.pass && c.figure.contains("1 duplicated otherwise"),
        "{}",
        c.figure
    );
    assert!(c.figure.contains("packet 2 of source 0"), "{}", c.figure);
    // Twice with no kill at all.
    let c = verdict(
        vec![start(&[0, 1, 2, 3, 4], false, true)],
        vec![start(&[4, 5, 6, 7, 8, 9], false, true)],
    );
    assert!(
        !c.pass && c.figure.contains("1 duplicated otherwise"),
        "{}",
        c.figure
    );
}

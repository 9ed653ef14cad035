//! The counters_exact verdict on tables and acknowledgements made up to show each rule.

use shmval::Val;

use super::tables::{tally, WriterRecord, WriterStart};
use crate::scenario::{item_of, ProcessSpec, Scenario};

const TABLE: &str = r#"
    name = "t"
    [region]
    prefix = "t"
    bytes = 65536
    [[table]]
    name = "board"
    value = "{'a': 0, 'b': 0, 'log': ['first']}"
    [[process]]
    name = "w1"
    kind = "writer"
    table = "board"
    ops = 10
    increment = ["a", "b"]
    append = "log"
    [[process]]
    name = "w2"
    kind = "writer"
    table = "board"
    ops = 10
    increment = ["a"]
    append = "log"
    [expect]
    counters_exact = true
"#;

/// A start that acknowledged updates `0..acked`; `cut` if it was cut short.
fn start(acked: u64, cut: bool) -> WriterStart {
    WriterStart {
        acked: (0..acked).collect(),
        cut_short: cut,
    }
}

/// The log a table holds: its first item, then these.
fn log(items: &[String]) -> Val {
    let mut all = vec![Val::from("first")];
    all.extend(items.iter().map(|s| Val::from(s.as_str())));
    Val::from(all)
}

/// The acknowledged items of `w`'s start `s` (1, 2, ...): `0..n`.
fn items(w: &str, s: u32, n: u64) -> Vec<String> {
    (0..n).map(|q| item_of(w, s, q, None)).collect()
}

fn table(a: i64, b: i64, items: &[String]) -> Val {
    let mut t = Val::tab();
    t.insert("a", a).unwrap();
    t.insert("b", b).unwrap();
    t.insert("log", log(items)).unwrap();
    t
}

/// The verdict on `end` when w1's and w2's starts acknowledged these.
fn verdict(end: &Val, w1: Vec<WriterStart>, w2: Vec<WriterStart>) -> crate::report::TableSummary {
    let sc = Scenario::parse(TABLE).unwrap();
    let first = sc.tables[0].value_val().unwrap();
    let spec = |n: &str| -> ProcessSpec { sc.process(n).unwrap().clone() };
    let (s1, s2) = (spec("w1"), spec("w2"));
    let writers = [
        WriterRecord {
            spec: &s1,
            starts: w1,
        },
        WriterRecord {
            spec: &s2,
            starts: w2,
        },
    ];
    tally("board", &first, end, &writers)
}

#[test]
fn every_acknowledged_update_once_passes() {
    let all = [items("w1", 1, 10), items("w2", 1, 10)].concat();
    let t = verdict(
        &table(20, 10, &all),
        vec![start(10, false)],
        vec![start(10, false)],
    );
    assert!(t.exact, "{}", t.figure);
    assert!(t.problems.is_empty());
    assert_eq!(t.counters["a"], 20);
    assert_eq!(t.lists["log"], 21);
    assert!(
        t.figure
            .contains("a = 20: 0 at first + 20 acknowledged + 0 of updates cut short (at most 0)"),
        "{}",
        t.figure
    );
    assert!(
        t.figure
            .contains("log: 1 first items, 20 acknowledged items once each"),
        "{}",
        t.figure
    );
}

#[test]
fn a_killed_writer_may_leave_one_update_cut_short() {
    // w1 killed after acknowledging 4: its fifth update's first increment committed, its
    // item not appended.
    let all = [items("w1", 1, 4), items("w2", 1, 10)].concat();
    let part = verdict(
        &table(15, 4, &all),
        vec![start(4, true)],
        vec![start(10, false)],
    );
    assert!(part.exact, "{}", part.figure);
    // Its whole fifth update, item and all, but not acknowledged.
    let mut whole = all.clone();
    whole.push(item_of("w1", 1, 4, None));
    let t = verdict(
        &table(15, 5, &whole),
        vec![start(4, true)],
        vec![start(10, false)],
    );
    assert!(t.exact, "{}", t.figure);
    assert!(
        t.figure
            .contains("1 items of updates cut short (at most 1)"),
        "{}",
        t.figure
    );
    // Then restarted: its second start's items are its own.
    let again = [whole.clone(), items("w1", 2, 10)].concat();
    let t = verdict(
        &table(25, 15, &again),
        vec![start(4, true), start(10, false)],
        vec![start(10, false)],
    );
    assert!(t.exact, "{}", t.figure);
}

#[test]
fn more_than_one_update_per_kill_fails() {
    let all = [items("w1", 1, 4), items("w2", 1, 10)].concat();
    let t = verdict(
        &table(16, 4, &all),
        vec![start(4, true)],
        vec![start(10, false)],
    );
    assert!(!t.exact);
    assert!(
        t.figure
            .contains("a = 16, 1 more than 0 at first + 14 acknowledged + from 0 to 1"),
        "{}",
        t.figure
    );
    // Without the kill, not even one.
    let all = [items("w1", 1, 10), items("w2", 1, 10)].concat();
    let t = verdict(
        &table(21, 10, &all),
        vec![start(10, false)],
        vec![start(10, false)],
    );
    assert!(!t.exact && t.problems.len() == 1, "{:?}", t.problems);
}

#[test]
fn an_acknowledged_increment_or_item_lost_fails() {
    let all = [items("w1", 1, 10), items("w2", 1, 10)].concat();
    let t = verdict(
        &table(19, 10, &all),
        vec![start(10, false)],
        vec![start(10, false)],
    );
    assert!(
        !t.exact && t.figure.contains("a = 19, 1 less than"),
        "{}",
        t.figure
    );
    let lost: Vec<String> = all.iter().filter(|i| *i != "w2-1-3").cloned().collect();
    let t = verdict(
        &table(20, 10, &lost),
        vec![start(10, false)],
        vec![start(10, false)],
    );
    assert!(!t.exact);
    assert_eq!(t.problems, ["log: acknowledged item \"w2-1-3\" is missing"]);
}

#[test]
fn an_item_twice_or_from_nowhere_fails() {
    let mut all = [items("w1", 1, 10), items("w2", 1, 10)].concat();
    all.push("w1-1-2".into());
    let t = verdict(
        &table(20, 10, &all),
        vec![start(10, false)],
        vec![start(10, false)],
    );
    assert_eq!(
        t.problems,
        ["log: acknowledged item \"w1-1-2\" is there 2 times"]
    );
    // An item no start acknowledged, from a writer that was not cut short.
    let mut all = [items("w1", 1, 10), items("w2", 1, 10)].concat();
    all.push(item_of("w2", 1, 10, None));
    let t = verdict(
        &table(21, 10, &all),
        vec![start(10, false)],
        vec![start(10, false)],
    );
    assert!(!t.exact);
    assert!(
        t.problems
            .iter()
            .any(|p| p.contains("\"w2-1-10\" is there 1 time but no writer")),
        "{:?}",
        t.problems
    );
    // A killed start's item past the update it was making.
    let mut all = [items("w1", 1, 4), items("w2", 1, 10)].concat();
    all.push(item_of("w1", 1, 5, None));
    let t = verdict(
        &table(15, 5, &all),
        vec![start(4, true)],
        vec![start(10, false)],
    );
    assert!(!t.exact, "{}", t.figure);
}

#[test]
fn an_item_of_a_cut_update_without_its_increments_fails() {
    // The item comes after the increments: there, they must be too.
    let mut all = [items("w1", 1, 4), items("w2", 1, 10)].concat();
    all.push(item_of("w1", 1, 4, None));
    let t = verdict(
        &table(14, 4, &all),
        vec![start(4, true)],
        vec![start(10, false)],
    );
    assert!(!t.exact);
    assert!(t.figure.contains("a = 14, 1 less than"), "{}", t.figure);
    assert!(t.figure.contains("b = 4, 1 less than"), "{}", t.figure);
}

#[test]
fn the_first_items_must_stay_and_problems_are_listed_in_full() {
    let mut end = table(20, 11, &[]);
    end.insert("log", Val::from(vec![Val::from("other")]))
        .unwrap();
    let t = verdict(&end, vec![start(10, false)], vec![start(10, false)]);
    assert!(!t.exact);
    assert_eq!(t.problems[0], "log no longer starts with its first 1 items");
    // 20 acknowledged items missing, in the order they were acknowledged, and b off: the
    // figure shows the first 5.
    assert_eq!(t.problems.len(), 1 + 20 + 1, "{:?}", t.problems);
    assert_eq!(
        t.problems[1],
        "log: acknowledged item \"w1-1-0\" is missing"
    );
    assert!(
        t.problems[21].starts_with("b = 11, 1 more than"),
        "{:?}",
        t.problems
    );
    assert!(
        t.figure
            .contains("; and 17 more (the report's tables list them)"),
        "{}",
        t.figure
    );
}

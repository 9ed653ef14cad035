//! `shmval val`: values in on standard input, repr, pretty or JSON out.

use std::io::Write;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmval"))
        .arg("val")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmval");
    // A command that refuses its arguments exits without reading: a broken pipe is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

#[test]
fn prints_each_line_as_its_repr() {
    let r = run(
        &[],
        "{'b': 1, 'a': [1, 2.5, \"x\"]}\n\n# a comment\n(1)\n(1,)\n1e16\n10**0 if False else 2\n\
         OrderedDict([('z', 1), ('a', 2)])\narray([1,2], 'l')\n  (1.5-2j)  \n",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "{'a': [1, 2.5, 'x'], 'b': 1}\n1\n(1,)\n1e+16\n\
         OrderedDict([('z', 1), ('a', 2)])\narray([1,2], 'l')\n(1.5-2j)\n"
    );
    assert_eq!(
        r.stderr,
        "line 7, column 3: expected end of input, found '*'\n"
    );
}

#[test]
fn good_input_exits_zero() {
    let r = run(&[], "None\nTrue\n'it\\'s'\n");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout, "None\nTrue\n\"it's\"\n");
}

#[test]
fn bad_lines_are_reported_and_the_rest_printed() {
    let r = run(&[], "1\n[1,\n'x'\n{'a' 1}\n2\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "1\n'x'\n2\n");
    assert_eq!(
        r.stderr,
        "line 2, column 4: expected a value, found end of input\n\
         line 4, column 6: expected ':', found '1'\n"
    );
}

#[test]
fn whole_reads_one_value_across_lines() {
    let r = run(
        &["--whole"],
        "{\n    'b':[\n        1,\n        2\n    ],\n    'a':None\n}\n",
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout, "{'a': None, 'b': [1, 2]}\n");
    let r = run(&["--whole"], "[\n  1,\n  2 3\n]\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "line 3, column 5: expected ',' or ']', found '3'\n"
    );
}

#[test]
fn pretty_matches_the_original_layout() {
    let r = run(
        &["--pretty"],
        "{'sequence_number': 0, 'bi': 100000000000000000000000000000000000000000000000}\n[]\n",
    );
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        "{\n    'bi':100000000000000000000000000000000000000000000000L,\n    \
         'sequence_number':0\n}\n[ ]\n"
    );
}

#[test]
fn json_output_and_its_limits() {
    let r = run(
        &["--json"],
        "{'b': (1, None), 'a': 'q\"\\n'}\nOrderedDict([('z', 1.5), ('a', True)])\n\
         array([1.0,2.5], 'd')\n123456789012345678901234567890\n{1: 2}\n(1+2j)\nnan\n\
         [1e16, -0.0]\narray([1j], 'D')\n",
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "{\"a\": \"q\\\"\\n\", \"b\": [1, null]}\n{\"z\": 1.5, \"a\": true}\n[1.0, 2.5]\n\
         123456789012345678901234567890\n[1e+16, -0.0]\n"
    );
    assert_eq!(
        r.stderr,
        "line 5: cannot print as JSON: key 1 is not a string\n\
         line 6: cannot print as JSON: complex (1+2j) has no JSON form\n\
         line 7: cannot print as JSON: nan is not a JSON number\n\
         line 9: cannot print as JSON: an array of complex numbers has no JSON form\n"
    );
}

#[test]
fn pretty_and_json_conflict() {
    let r = run(&["--pretty", "--json"], "1\n");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

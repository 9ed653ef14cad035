//! `shmval inspect`, `list` and `clean`, run as a user runs them, on regions this test
//! makes.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{json, shmval};
use shmval::region::header::encode_for_tests;
use shmval::sides::{ServerSide, ShmMain};
use shmval::{PoolExt, Val};

/// A region file removed when dropped.
struct File(PathBuf);

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes a region header image to `/dev/shm/<name>`; `dead` makes its creator one that no
/// longer runs (this pid with another start key, as after pid reuse).
fn region_file(name: &str, dead: bool) -> File {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut image = encode_for_tests(4096, 0).to_vec();
    image.resize(4096, 0);
    if dead {
        image[56..64].copy_from_slice(&0x3fff_ffffu64.to_ne_bytes());
    }
    let path = PathBuf::from("/dev/shm").join(name);
    let _ = std::fs::remove_file(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&image))
        .expect("write region file");
    File(path)
}

#[test]
fn inspect_shows_a_live_region_and_leaves_it_as_it_was() {
    let name = format!("shmval-test-inspect-{}", std::process::id());
    let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let server = ServerSide::new(name.as_str(), "jobs", 8).start().unwrap();
    for n in 0..3 {
        let v = Val::parse(&format!(
            "{{'n': {n}, 'what': 'a string too long for a cell'}}"
        ))
        .unwrap();
        server.pipe().enq(server.pool().share(&v).unwrap()).unwrap();
    }
    let kept = server
        .pool()
        .share(&Val::parse("[1, 2, 3]").unwrap())
        .unwrap();
    let before = main.pool().stats().unwrap();

    let i = json(&shmval(&["inspect", &name, "--json"]));
    assert_eq!(i["region"], name.as_str());
    assert_eq!(i["creator_pid"], std::process::id());
    assert_eq!(i["creator_alive"], true);
    assert_eq!(i["pool"]["used"], before.used);
    // This process's block cache (and its record) counted apart, and as free.
    assert_eq!(i["pool"]["cached"], before.cached);
    assert!(before.cached > 0, "{before:?}");
    let pipe = &i["pipes"][0];
    assert_eq!(pipe["name"], "jobs");
    assert_eq!(pipe["capacity"], 8);
    assert_eq!(pipe["depth"], 3);
    assert_eq!(pipe["enqueued"], 3);
    assert_eq!(pipe["users"], 1);
    assert_eq!(pipe["closed"], false);
    let count = |kind: &str| {
        i["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == kind)
            .map_or(0, |b| b["count"].as_u64().unwrap())
    };
    assert_eq!(count("value: Tab"), 3);
    assert_eq!(count("value: Str"), 3);
    assert_eq!(count("value: Arr"), 1);
    assert_eq!(count("pipe"), 1);
    assert_eq!(count("pipe directory"), 1);

    let text = shmval(&["inspect", &name]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("jobs"), "{text}");
    assert!(text.contains("value: Tab"), "{text}");

    // Nothing changed: the pool, the pipe's users and items.
    assert_eq!(main.pool().stats().unwrap(), before);
    assert_eq!(main.pipes().unwrap()[0].users, 1);
    for n in 0..3 {
        let v = server.pipe().try_dequeue().unwrap();
        assert_eq!(
            v.as_tab()
                .unwrap()
                .get("n")
                .unwrap()
                .unwrap()
                .to::<i64>()
                .unwrap(),
            n
        );
    }
    drop(kept);
}

#[test]
fn inspect_lists_the_named_values() {
    let name = format!("shmval-test-inspect-names-{}", std::process::id());
    let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let names = main.names().unwrap();
    let pool = main.pool();
    let table = pool
        .share(&Val::parse("{'rate': 48000, 'name': 'a string too long for a cell'}").unwrap())
        .unwrap();
    let off = table.offset().get();
    let held = table.clone();
    names.publish("config", table).unwrap();
    names
        .publish("list", pool.share(&Val::parse("[1, 2]").unwrap()).unwrap())
        .unwrap();

    let i = json(&shmval(&["inspect", &name, "--json"]));
    let listed = i["names"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let config = listed.iter().find(|n| n["name"] == "config").unwrap();
    assert_eq!(config["tag"], "Tab");
    assert_eq!(config["offset"], off);
    assert_eq!(config["refs"], 2, "the entry's and this test's handle");
    let list = listed.iter().find(|n| n["name"] == "list").unwrap();
    assert_eq!((&list["tag"], &list["refs"]), (&"Arr".into(), &1.into()));
    let blocks = i["blocks"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b["kind"] == "names directory" && b["count"] == 1),
        "{blocks:?}"
    );

    let text = shmval(&["inspect", &name]);
    let text = String::from_utf8_lossy(&text.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("config"))
        .unwrap_or_else(|| panic!("no line for config in {text}"));
    assert!(
        line.contains("Tab") && line.contains(&off.to_string()),
        "{line}"
    );
    drop(held);
}

#[test]
fn inspect_shows_a_locked_tables_lock_and_size() {
    let name = format!("shmval-test-inspect-locked-{}", std::process::id());
    let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let board =
        shmval::ShmLocked::new(main.pool(), Val::parse("{'a': 1, 'b': 2}").unwrap()).unwrap();
    for _ in 0..3 {
        board
            .lock(Duration::from_secs(5))
            .unwrap()
            .increment("a", 1)
            .unwrap();
    }
    main.names()
        .unwrap()
        .publish("board", board.clone().into_val())
        .unwrap();
    let g = board.lock(Duration::from_secs(5)).unwrap();
    let me = common_tid();

    let i = json(&shmval(&["inspect", &name, "--json"]));
    let b = i["names"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "board")
        .unwrap()
        .clone();
    assert_eq!(b["tag"], "locked");
    let l = &b["locked"];
    assert_eq!(l["holds"], "Tab");
    assert_eq!(l["len"], 2);
    assert_eq!(l["operations"], 3);
    assert_eq!(l["holder"], me, "{b}");
    assert_eq!(l["in_operation"], false);
    let blocks = i["blocks"].as_array().unwrap();
    assert!(
        blocks
            .iter()
            .any(|b| b["kind"] == "locked value" && b["count"] == 1),
        "{blocks:?}"
    );
    drop(g);
    let text = shmval(&["inspect", &name]);
    let text = String::from_utf8_lossy(&text.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("board"))
        .unwrap_or_else(|| panic!("no line for board in {text}"));
    assert!(line.contains("Tab of 2, 3 operations, lock free"), "{line}");
}

/// The calling thread's kernel id.
fn common_tid() -> u64 {
    nix::unistd::gettid().as_raw() as u64
}

#[test]
fn list_shows_regions_and_clean_removes_only_stale_ones() {
    let live_name = format!("shmval-test-list-live-{}", std::process::id());
    let dead_name = format!("shmval-test-list-dead-{}", std::process::id());
    let live = region_file(&live_name, false);
    let dead = region_file(&dead_name, true);

    let l = json(&shmval(&["list", "--json"]));
    let find = |n: &str| {
        l.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not listed: {l}"))
    };
    assert_eq!(find(&live_name)["creator_alive"], true);
    assert_eq!(find(&dead_name)["creator_alive"], false);
    assert_eq!(find(&dead_name)["creator_pid"], std::process::id());

    let refused = shmval(&["clean", &live_name]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("still running"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(live.0.exists());

    let out = shmval(&["clean", &dead_name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dead.0.exists());
    assert!(live.0.exists());

    // A file without our magic is never touched.
    let other = File(
        PathBuf::from("/dev/shm").join(format!("shmval-test-list-other-{}", std::process::id())),
    );
    std::fs::write(&other.0, vec![7u8; 4096]).unwrap();
    let out = shmval(&["clean", other.0.file_name().unwrap().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(other.0.exists());
}

/// A pid that no process has now: that of a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().expect("run true");
    let pid = c.id();
    c.wait().expect("reap true");
    pid
}

#[test]
fn list_shows_unfinished_builds_and_clean_stale_removes_the_dead_ones() {
    let region = format!("shmval-test-list-build-{}", std::process::id());
    let dead = dead_pid();
    // What a builder killed while building under a private name leaves: a file with a
    // header naming it as creator, or one still empty.
    let with_header = File(PathBuf::from("/dev/shm").join(format!("{region}.tmp-{dead}-0")));
    let mut image = encode_for_tests(4096, 0).to_vec();
    image.resize(4096, 0);
    image[48..52].copy_from_slice(&dead.to_ne_bytes());
    std::fs::write(&with_header.0, &image).unwrap();
    let empty = File(PathBuf::from("/dev/shm").join(format!("{region}.tmp-{dead}-1")));
    std::fs::write(&empty.0, b"").unwrap();
    // A build whose builder runs (this process).
    let running =
        File(PathBuf::from("/dev/shm").join(format!("{region}.tmp-{}-2", std::process::id())));
    std::fs::write(&running.0, b"").unwrap();

    let l = json(&shmval(&["list", "--json"]));
    let find = |p: &PathBuf| {
        let n = p.file_name().unwrap().to_str().unwrap();
        l.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not listed: {l}"))
    };
    for (f, pid, alive) in [
        (&with_header, dead, false),
        (&empty, dead, false),
        (&running, std::process::id(), true),
    ] {
        let r = find(&f.0);
        assert_eq!(r["unfinished_build"], true, "{r}");
        assert_eq!(r["creator_pid"], pid, "{r}");
        assert_eq!(r["creator_alive"], alive, "{r}");
    }
    let text = shmval(&["list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("unfinished build"), "{text}");

    // Only this test's files: other stale files on the machine are not ours to remove.
    let out = shmval(&["clean", "--stale", "--prefix", &region]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!with_header.0.exists());
    assert!(!empty.0.exists());
    assert!(running.0.exists());
    let refused = shmval(&["clean", running.0.file_name().unwrap().to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(running.0.exists());
}

/// A file in `/dev/shm` that is not a region: random-looking bytes, mode 0644 as `echo`
/// or `truncate` make it, `len` bytes long.
fn not_a_region(name: &str, len: usize) -> File {
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from("/dev/shm").join(name);
    let _ = std::fs::remove_file(&path);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, bytes).expect("write file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    File(path)
}

#[test]
fn inspect_of_a_file_that_is_not_a_region_says_so() {
    for (what, len) in [("big", 8192), ("small", 3)] {
        let name = format!("shmval-test-not-a-region-{what}-{}", std::process::id());
        let file = not_a_region(&name, len);
        for arg in [name.clone(), format!("/dev/shm/{name}")] {
            let out = shmval(&["inspect", &arg]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("not a shmval region"), "{err}");
            assert!(!err.contains("mode") && !err.contains("truncated"), "{err}");
        }
        assert!(file.0.exists());
    }
    let out = shmval(&[
        "inspect",
        &format!("shmval-test-no-such-{}", std::process::id()),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no such region in /dev/shm"), "{err}");
}

#[test]
fn inspect_and_clean_take_a_region_as_its_path_in_dev_shm() {
    let name = format!("shmval-test-path-arg-{}", std::process::id());
    let main = ShmMain::new(name.as_str(), 1 << 20).start().unwrap();
    let i = json(&shmval(&["inspect", "--json", &format!("/dev/shm/{name}")]));
    assert_eq!(i["region"], name.as_str());
    drop(main);

    let dead = format!("shmval-test-path-arg-dead-{}", std::process::id());
    let file = region_file(&dead, true);
    let out = shmval(&["clean", &format!("/dev/shm/{dead}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!file.0.exists());

    // A path anywhere else is a usage error, for both.
    for cmd in ["inspect", "clean"] {
        let out = shmval(&[cmd, "/tmp/shmval-region"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("regions live in /dev/shm"), "{cmd}: {err}");
    }
}

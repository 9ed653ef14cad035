//! The scenario's processes: starting them (`shmval role SPEC`), reading their events,
//! signalling, reaping and killing them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmval::fault::Notice;

use super::{Run, St, Stage, STDERR_LINES};
use crate::expect::{Receipts, WriterStart};
use crate::report::Event;
use crate::roles::{RoleSpec, TableRole, WriterInfo};
use crate::scenario::{Kind, ProcessSpec};

impl Run {
    pub(super) fn spawn(&mut self, i: usize) {
        let starts = self.procs[i].starts;
        let mut notify_at = vec![];
        let mut arm = None;
        let mut env = vec![];
        // The faults that hit this start: a fault hits its process's first `times` starts,
        // each once.
        for f in self
            .faults
            .iter_mut()
            .filter(|f| f.proc_ == i && f.hits(starts + 1))
        {
            let Some(k) = f.spec.at_item else { continue };
            if f.spec.action == "kill_in_lock" {
                arm = Some((k, f.spec.point.clone().unwrap_or_default()));
                // The process reports reaching its pause point through this page.
                match Notice::new() {
                    Ok(n) => {
                        env.push(n.env());
                        f.notice = Some(n);
                    }
                    Err(e) => f.note = format!("no fault notice: {e}"),
                }
            } else {
                notify_at.push(k);
            }
        }
        let p = &self.procs[i].spec;
        let pipes = match p.kind {
            Kind::Main => self
                .sc
                .pipes
                .iter()
                .filter(|x| p.pipes.contains(&x.name))
                .cloned()
                .collect(),
            _ => vec![],
        };
        // The main that creates the region makes the tables with it.
        let tables = if p.kind == Kind::Main && self.sc.region.created_by.as_ref() == Some(&p.name)
        {
            self.sc.tables.clone()
        } else {
            vec![]
        };
        let spec = RoleSpec {
            process: p.clone(),
            region: self.name.to_string(),
            bytes: self.sc.region.bytes,
            max_bytes: self.sc.region.max_bytes,
            pipes,
            tables,
            table: self.table_role(p),
            start: starts + 1,
            source_id: self.procs[i].source_id,
            notify_at,
            arm,
            runner_pid: std::process::id(),
            each_item: p.kind == Kind::Sink
                && (self.sc.expect.at_least_once || !self.sc.faults.is_empty()),
        };
        let json = serde_json::to_string(&spec).unwrap_or_default();
        // Told through standard input when what it waits for has ended.
        let waits = p.kind == Kind::Reader || !spec.tables.is_empty();
        let child = Command::new(&self.exe)
            .arg("role")
            .arg(json)
            .envs(env)
            .stdin(if waits { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let proc_ = &mut self.procs[i];
        proc_.starts += 1;
        proc_.receipts.push(Receipts::default());
        proc_.updates.push(WriterStart::default());
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                proc_.spawn_error = Some(format!("cannot start: {e}"));
                proc_.st = St::Done;
                return;
            }
        };
        proc_.stdin = child.stdin.take();
        proc_.pid = child.id();
        proc_.pids.push(child.id());
        proc_.ready = false;
        proc_.report = None;
        proc_.exit = None;
        proc_.killed_by_fault = false;
        if let Some(out) = child.stdout.take() {
            let tx = self.tx.clone();
            let inst = proc_.starts;
            let keep = proc_.stderr.clone();
            proc_.reader = Some(std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Event>(&line) {
                        Ok(ev) => {
                            if tx.send((i, inst, ev)).is_err() {
                                break;
                            }
                        }
                        Err(e) => keep_line(&keep, format!("unreadable event ({e}): {line}")),
                    }
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let keep = proc_.stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    keep_line(&keep, line);
                }
            });
        }
        proc_.child = Some(child);
        proc_.st = St::Running;
        let (name, starts) = (proc_.spec.name.clone(), proc_.starts);
        let pid = proc_.pid;
        self.say(format_args!(
            "started {name} (pid {pid}){}",
            if starts > 1 {
                format!(" again (start {starts})")
            } else {
                String::new()
            }
        ));
    }

    pub(super) fn handle_events(&mut self, wait: Duration) {
        let mut first = Some(wait);
        loop {
            let got = match first.take() {
                Some(w) => self.rx.recv_timeout(w).ok(),
                None => self.rx.try_recv().ok(),
            };
            let Some((i, inst, ev)) = got else { return };
            self.event(i, inst, ev);
        }
    }

    pub(super) fn event(&mut self, i: usize, inst: u32, ev: Event) {
        let p = &mut self.procs[i];
        if let Event::Updated { seq } = ev {
            if let Some(u) = p.updates.get_mut(inst as usize - 1) {
                u.acked.push(seq);
            }
            return;
        }
        if let Event::Got { src, seq } | Event::Done { src, seq } = ev {
            if let Some(r) = p.receipts.get_mut(inst as usize - 1) {
                match ev {
                    Event::Got { .. } => r.record(src, seq),
                    _ => r.done(src, seq),
                }
            }
            return;
        }
        if inst != p.starts {
            return;
        }
        let mut due = vec![];
        match ev {
            Event::Ready => {
                p.ready = true;
                due = self.waiting_faults(i, inst, |f| f.on.as_deref() == Some("ready"));
                if self.sc.region.created_by.as_ref() == Some(&self.procs[i].spec.name) {
                    // The keeper attaches while the creator holds the region: it reads the
                    // tables at the end even if the creator has unlinked its name by then.
                    self.read_stats();
                }
            }
            Event::Items { n } => p.items = p.items.max(n),
            Event::At { item } => {
                p.items = p.items.max(item);
                due = self.waiting_faults(i, inst, |f| {
                    f.at_item == Some(item) && f.action != "kill_in_lock"
                });
            }
            Event::Armed { item } => {
                p.items = p.items.max(item);
                for f in &mut self.faults {
                    // The notice may have been read first: never go back from a later stage.
                    if f.proc_ == i
                        && f.spec.action == "kill_in_lock"
                        && matches!(f.stage, Stage::Waiting)
                    {
                        f.stage = Stage::Armed(Instant::now());
                    }
                }
            }
            Event::Report(r) => {
                p.items = r.items;
                p.report = Some(r);
            }
            Event::Got { .. } | Event::Done { .. } | Event::Updated { .. } => {}
        }
        for f in due {
            self.fire(f);
        }
    }

    pub(super) fn signal(&self, i: usize, sig: Signal) {
        let p = &self.procs[i];
        // Only a child not yet reaped: its pid cannot have been reused.
        if p.st == St::Running && p.pid != 0 {
            let _ = kill(Pid::from_raw(p.pid as i32), sig);
        }
    }

    pub(super) fn reap(&mut self) {
        for i in 0..self.procs.len() {
            if self.procs[i].st != St::Running {
                continue;
            }
            let status = match self.procs[i].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(s))) => s,
                Some(Ok(None)) => continue,
                Some(Err(_)) | None => continue,
            };
            self.finish(i, status);
        }
    }

    /// Records the end of a reaped child: its last events first.
    pub(super) fn finish(&mut self, i: usize, status: ExitStatus) {
        if let Some(r) = self.procs[i].reader.take() {
            let _ = r.join();
        }
        self.handle_events(Duration::ZERO);
        let p = &mut self.procs[i];
        p.child = None;
        p.exit = Some(status);
        p.st = St::Done;
        let (name, restart) = (p.spec.name.clone(), p.restart);
        self.say(format_args!(
            "{name} ended: {}",
            super::conclude::exit_of(status)
        ));
        if restart {
            self.procs[i].restart = false;
            self.spawn(i);
        }
    }

    /// A writer's or reader's table as its process is told: the declaration, and the
    /// table's writers with the kills the faults may make of each.
    fn table_role(&self, p: &ProcessSpec) -> Option<TableRole> {
        if !matches!(p.kind, Kind::Writer | Kind::Reader) {
            return None;
        }
        let name = p.table.as_deref()?;
        Some(TableRole {
            table: self.sc.table(name)?.clone(),
            writers: self
                .sc
                .writers_of(name)
                .map(|w| WriterInfo {
                    name: w.name.clone(),
                    increment: w.increment.clone(),
                    append: w.append.clone(),
                    kills: self.sc.kills_of(&w.name),
                })
                .collect(),
        })
    }

    /// Closes the standard input of each running reader whose table's writers have all
    /// ended (it reads once more and ends), and of the main that made the tables once
    /// every writer and reader has ended.
    pub(super) fn release_waiting(&mut self) {
        for i in 0..self.procs.len() {
            let p = &self.procs[i];
            if p.stdin.is_none() {
                continue;
            }
            let reader = p.spec.kind == Kind::Reader;
            let table = p.spec.table.as_deref();
            let busy = self.procs.iter().any(|w| {
                let user = if reader {
                    w.spec.kind == Kind::Writer && w.spec.table.as_deref() == table
                } else {
                    matches!(w.spec.kind, Kind::Writer | Kind::Reader)
                };
                user && w.st != St::Done
            });
            if !busy {
                self.procs[i].stdin = None;
                let name = self.procs[i].spec.name.clone();
                let who = if reader {
                    "its table's writers"
                } else {
                    "the tables' writers and readers"
                };
                self.say(format_args!("told {name} {who} have ended"));
            }
        }
    }

    /// Kills (and reaps) every child still running.
    pub(super) fn kill_all(&mut self) {
        for i in 0..self.procs.len() {
            if self.procs[i].st == St::Running {
                self.signal(i, Signal::SIGKILL);
                self.signal(i, Signal::SIGCONT);
                self.procs[i].killed_by_runner = !self.procs[i].killed_by_fault;
                self.procs[i].restart = false;
                self.procs[i].stdin = None;
                if let Some(mut c) = self.procs[i].child.take() {
                    if let Ok(status) = c.wait() {
                        self.procs[i].child = Some(c);
                        self.finish(i, status);
                    }
                }
            }
        }
    }
}

/// Keeps `line` among the last lines of a process's output.
fn keep_line(keep: &Mutex<VecDeque<String>>, line: String) {
    let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
    if k.len() == STDERR_LINES {
        k.pop_front();
    }
    k.push_back(line);
}

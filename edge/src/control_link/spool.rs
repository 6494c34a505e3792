//! The durable event spool: every call event is appended (and synced) to `events.log` before
//! it is sent, and its id to `acks.log` once the control plane has stored it. After a crash or
//! restart the events without an ack are sent again; the control plane ignores the ones it
//! already has. So an outage of the control plane, or of the edge, loses nothing.
//!
//! Both files are JSON lines, owner-only (0600, in a 0700 directory; looser modes are corrected
//! at open) since events carry what callers said. A torn last line (a crash mid-write) is
//! skipped. A write the disk refuses (full) is an error to the caller, the events stay in memory
//! to be sent, and the next write starts on a fresh line so the torn one cannot take it along. The files are compacted at open and whenever everything has been acknowledged. Plain blocking file I/O,
//! which the publisher runs off the calls' worker threads ([`run_blocking`]): losing durability
//! is worse than a short block, but a call's 20 ms media tick must not wait for a disk sync.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use freya_shared::model::CallEvent;
use freya_shared::private_files;

/// The spool could not be read or written.
#[derive(Debug, Error)]
#[error("event spool {path}: {source}")]
pub struct SpoolError {
    path: PathBuf,
    source: std::io::Error,
}

/// Unacknowledged events, in memory and on disk.
pub struct EventSpool {
    dir: PathBuf,
    events: File,
    acks: File,
    /// Pending events by id. UUIDv7 ids sort by creation time, so this is also replay order.
    pending: BTreeMap<String, CallEvent>,
    /// A write to `events.log` failed (a full disk) and may have left a partial line: the next
    /// write starts on a new line, or its first event would join the torn one and be skipped
    /// at the next open although its append reported success.
    torn: bool,
}

const EVENTS: &str = "events.log";
const ACKS: &str = "acks.log";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.to_owned(),
        source,
    }
}

impl EventSpool {
    /// Opens (or creates) the spool in `dir`, recovering what was not acknowledged.
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        private_files::create_dir(dir).map_err(io_err(dir))?;
        let events_path = dir.join(EVENTS);
        let acks_path = dir.join(ACKS);
        private_files::restrict_file(&events_path).map_err(io_err(&events_path))?;
        let acked: HashSet<String> = read_lines(&acks_path)?
            .into_iter()
            .filter_map(|line| serde_json::from_str::<String>(&line).ok())
            .collect();
        let mut pending = BTreeMap::new();
        for line in read_lines(&events_path)? {
            match serde_json::from_str::<CallEvent>(&line) {
                Ok(event) if !acked.contains(&event.id) => {
                    pending.insert(event.id.clone(), event);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable spool line (torn write?)")
                }
            }
        }
        rewrite(&events_path, pending.values())?;
        private_files::create_file(&acks_path).map_err(io_err(&acks_path))?;
        let events = append(&events_path)?;
        let acks = append(&acks_path)?;
        if !pending.is_empty() {
            tracing::info!(
                pending = pending.len(),
                "recovered unacknowledged call events"
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            events,
            acks,
            pending,
            torn: false,
        })
    }

    /// Makes `event` durable; from now on it is pending until acknowledged.
    pub fn append(&mut self, event: CallEvent) -> Result<(), SpoolError> {
        self.append_all(std::iter::once(event))
    }

    /// Makes `events` durable with one write and one sync (a group commit): under load, calls
    /// report hundreds of events a second, and a sync each would keep the disk busy.
    pub fn append_all(
        &mut self,
        events: impl IntoIterator<Item = CallEvent>,
    ) -> Result<(), SpoolError> {
        let path = self.dir.join(EVENTS);
        let mut lines = Vec::new();
        if self.torn {
            lines.push(b'\n');
        }
        let mut unwritable = None;
        for event in events {
            match serde_json::to_writer(&mut lines, &event) {
                Ok(()) => lines.push(b'\n'),
                Err(e) => unwritable = Some(e),
            }
            // Keep the event in memory even if the disk fails, so it is still sent.
            self.pending.insert(event.id.clone(), event);
        }
        let written = self
            .events
            .write_all(&lines)
            .and_then(|()| self.events.sync_data());
        if let Err(e) = written {
            self.torn = true;
            return Err(io_err(&path)(e));
        }
        self.torn = false;
        match unwritable {
            Some(e) => Err(SpoolError {
                path,
                source: std::io::Error::other(e),
            }),
            None => Ok(()),
        }
    }

    /// Forgets `id`: the control plane has it. Unknown ids (a repeated ack) are ignored.
    pub fn ack(&mut self, id: &str) -> Result<(), SpoolError> {
        if self.pending.remove(id).is_none() {
            return Ok(());
        }
        if self.pending.is_empty() {
            return self.compact();
        }
        let path = self.dir.join(ACKS);
        let mut line = serde_json::to_vec(id).map_err(|e| SpoolError {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        // No sync: a lost ack only means the event is sent again, and stored once.
        self.acks.write_all(&line).map_err(io_err(&path))
    }

    /// The pending event `id`.
    pub fn get(&self, id: &str) -> Option<&CallEvent> {
        self.pending.get(id)
    }

    /// Ids of every pending event, oldest first.
    pub fn pending_ids(&self) -> impl Iterator<Item = &String> {
        self.pending.keys()
    }

    /// How many events wait for an acknowledgement.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn compact(&mut self) -> Result<(), SpoolError> {
        let events_path = self.dir.join(EVENTS);
        let acks_path = self.dir.join(ACKS);
        rewrite(&events_path, self.pending.values())?;
        private_files::create_file(&acks_path).map_err(io_err(&acks_path))?;
        self.events = append(&events_path)?;
        self.acks = append(&acks_path)?;
        Ok(())
    }
}

/// Runs the spool's blocking file work so it does not stall the calls sharing this thread: on
/// the multi-thread runtime the worker first hands its other tasks to another thread. Elsewhere
/// (a current-thread runtime in tests, or no runtime) it simply runs.
pub(crate) fn run_blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, SpoolError> {
    match File::open(path) {
        Ok(file) => BufReader::new(file)
            .lines()
            .filter(|l| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .collect::<Result<_, _>>()
            .map_err(io_err(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn append(path: &Path) -> Result<File, SpoolError> {
    private_files::append_file(path).map_err(io_err(path))
}

/// Replaces `path` with `events` atomically (write a temporary file, sync, rename).
fn rewrite<'a>(path: &Path, events: impl Iterator<Item = &'a CallEvent>) -> Result<(), SpoolError> {
    let tmp = path.with_extension("tmp");
    let mut file = BufWriter::new(private_files::create_file(&tmp).map_err(io_err(&tmp))?);
    for event in events {
        serde_json::to_writer(&mut file, event).map_err(|e| SpoolError {
            path: tmp.clone(),
            source: std::io::Error::other(e),
        })?;
        file.write_all(b"\n").map_err(io_err(&tmp))?;
    }
    let file = file
        .into_inner()
        .map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> CallEvent {
        CallEvent::raw(
            format!("call-{n}"),
            "ws",
            "call.started",
            serde_json::json!({ "n": n }),
        )
    }

    #[test]
    fn unacknowledged_events_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let events: Vec<CallEvent> = (0..5).map(event).collect();
        {
            let mut spool = EventSpool::open(dir.path()).expect("open");
            for e in &events {
                spool.append(e.clone()).expect("append");
            }
            spool.ack(&events[1].id).expect("ack");
            spool.ack(&events[3].id).expect("ack");
        }
        let spool = EventSpool::open(dir.path()).expect("reopen");
        let ids: Vec<&String> = spool.pending_ids().collect();
        assert_eq!(ids, [&events[0].id, &events[2].id, &events[4].id]);
    }

    #[test]
    fn a_group_commit_keeps_every_event_of_the_batch_across_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let events: Vec<CallEvent> = (0..40).map(event).collect();
        {
            let mut spool = EventSpool::open(dir.path()).expect("open");
            spool.append_all(events[..1].iter().cloned()).expect("one");
            spool
                .append_all(events[1..].iter().cloned())
                .expect("the rest");
            spool.ack(&events[7].id).expect("ack");
        }
        let spool = EventSpool::open(dir.path()).expect("reopen");
        let mut expected: Vec<&String> = events.iter().map(|e| &e.id).collect();
        expected.remove(7);
        assert_eq!(spool.pending_ids().collect::<Vec<_>>(), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_work_runs_on_either_runtime_and_returns_its_value() {
        assert_eq!(run_blocking(|| 6 * 7), 42);
        assert_eq!(
            tokio::task::spawn_blocking(|| run_blocking(|| "outside"))
                .await
                .expect("joins"),
            "outside"
        );
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let kept = event(1);
        {
            let mut spool = EventSpool::open(dir.path()).expect("open");
            spool.append(kept.clone()).expect("append");
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(EVENTS))
            .expect("open log");
        file.write_all(b"{\"id\":\"01").expect("write torn line");
        drop(file);
        let spool = EventSpool::open(dir.path()).expect("reopen");
        assert_eq!(spool.pending_len(), 1);
        assert_eq!(spool.get(&kept.id), Some(&kept));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_an_error_and_the_next_event_survives_its_torn_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spool = EventSpool::open(dir.path()).expect("open");
        // A full disk: the write fails, after leaving part of a line behind.
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(EVENTS))
            .expect("open log");
        log.write_all(b"{\"id\":\"01").expect("write torn line");
        spool.events = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let lost = event(1);
        let failed = spool.append(lost.clone());
        assert!(failed.is_err(), "a write the disk refused reported success");
        assert_eq!(
            spool.get(&lost.id),
            Some(&lost),
            "kept in memory to be sent"
        );
        // Space returns.
        spool.events = append(&dir.path().join(EVENTS)).expect("reopen log");
        let kept = event(2);
        spool
            .append(kept.clone())
            .expect("append after the disk recovered");
        drop(spool);
        let spool = EventSpool::open(dir.path()).expect("reopen");
        assert_eq!(
            spool.get(&kept.id),
            Some(&kept),
            "the acknowledged append was lost"
        );
        assert_eq!(spool.pending_len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_spool_is_owner_only_and_looser_files_are_corrected_at_open() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("spool");
        let mut spool = EventSpool::open(&dir).expect("open");
        spool.append(event(3)).expect("append");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(EVENTS)), 0o600);
        assert_eq!(mode(&dir.join(ACKS)), 0o600);
        drop(spool);
        for path in [dir.clone(), dir.join(EVENTS), dir.join(ACKS)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let spool = EventSpool::open(&dir).expect("reopen");
        assert_eq!(spool.pending_len(), 1);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(EVENTS)), 0o600);
        assert_eq!(mode(&dir.join(ACKS)), 0o600);
    }

    #[test]
    fn acknowledging_everything_empties_the_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spool = EventSpool::open(dir.path()).expect("open");
        let e = event(7);
        spool.append(e.clone()).expect("append");
        spool.ack(&e.id).expect("ack");
        spool.ack(&e.id).expect("a repeated ack is harmless");
        let size = std::fs::metadata(dir.path().join(EVENTS))
            .expect("stat")
            .len();
        assert_eq!(size, 0);
        assert_eq!(
            EventSpool::open(dir.path()).expect("reopen").pending_len(),
            0
        );
    }
}

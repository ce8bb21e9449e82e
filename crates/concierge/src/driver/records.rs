//! The call-record file: one JSON line per call. The lines of the calls that ended in one
//! turn of the shard's loop are appended in one write at the end of that turn, before the
//! turn's UDP datagrams are sent: a crash loses no record of a call whose end (the 200 to
//! its BYE, its final response) a peer over UDP could have seen. Where a record goes, the live console's
//! feed goes too: each record, and each call event while calls run.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use concierge_b2bua::{CallEvent, CallRecord};
use tracing::error;

pub(crate) struct Records {
    path: PathBuf,
    file: File,
    /// Also POSTs each record (`[records] webhook_url`).
    pub(crate) webhook: Option<super::webhook::Webhook>,
    /// Also shows each record and call event on the live console (`[console] listen`).
    pub(crate) console: Option<std::sync::Arc<crate::console::Hub>>,
    /// The lines not yet written, each whole and ending in a newline; kept between turns
    /// so its buffer is grown once, not for every call.
    pending: Vec<u8>,
}

/// Pending lines past this many bytes are written at once rather than at the end of the
/// turn, which bounds the buffer whatever a turn ends.
const PENDING_LIMIT: usize = 64 * 1024;

impl Records {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            webhook: None,
            console: None,
            pending: Vec::new(),
        })
    }

    /// A call's event (the switch emits them only when there is a console).
    pub(crate) fn event(&self, event: &CallEvent) {
        if let Some(console) = &self.console {
            console.event(event);
        }
    }

    /// Between two drains, when every event of a call that left has been handed on: the
    /// console drops the calls in progress the switch no longer has (`in_switch`), so one
    /// whose `Ended` was lost is not listed for ever.
    pub(crate) fn resync(&self, in_switch: impl Fn(&str) -> bool) {
        if let Some(console) = &self.console {
            console.resync(in_switch);
        }
    }

    /// Queues a record's line for [`Records::write_pending`], and hands the record to the
    /// console and the webhook at once.
    pub(crate) fn write(&mut self, record: &CallRecord) {
        if let Some(console) = &self.console {
            console.record(record);
        }
        let start = self.pending.len();
        if let Err(e) = serde_json::to_writer(&mut self.pending, record) {
            self.pending.truncate(start);
            error!(error = %e, call_id = %record.call_id, "call record not serialisable");
            return;
        }
        if let Some(webhook) = &mut self.webhook {
            webhook.offer(self.pending[start..].to_vec());
        }
        self.pending.push(b'\n');
        if self.pending.len() >= PENDING_LIMIT {
            self.write_pending();
        }
    }

    /// Appends the queued lines to the file in one write and hands them to the OS. Under
    /// `O_APPEND` one write keeps the lines whole beside another writer of the same file.
    pub(crate) fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(e) = self
            .file
            .write_all(&self.pending)
            .and_then(|_| self.file.flush())
        {
            let lines = self.pending.iter().filter(|&&b| b == b'\n').count();
            error!(error = %e, path = %self.path.display(), lines, "call records write failed");
        }
        self.pending.clear();
    }
}

impl Drop for Records {
    /// A shard that stops (shutdown, or its task dropped) leaves no line unwritten.
    fn drop(&mut self) {
        self.write_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("concierge-records-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("calls.jsonl")
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_records_of_a_turn_reach_the_file_whole_when_the_turn_ends() {
        let path = scratch("turn");
        let mut records = Records::open(&path).unwrap();
        let mut second = crate::metrics::tests::record();
        second.call_id = "c2".into();
        records.write(&crate::metrics::tests::record());
        records.write(&second);
        assert!(lines(&path).is_empty(), "nothing is written mid-turn");

        records.write_pending();
        let written = lines(&path);
        assert_eq!(written.len(), 2);
        assert_eq!(written[0]["call_id"], "c1");
        assert_eq!(written[1]["call_id"], "c2");

        records.write_pending();
        assert_eq!(
            lines(&path).len(),
            2,
            "a turn with no record writes nothing"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_turn_that_ends_many_calls_writes_before_its_buffer_passes_the_limit() {
        let path = scratch("limit");
        let mut records = Records::open(&path).unwrap();
        let record = crate::metrics::tests::record();
        let line = serde_json::to_vec(&record).unwrap().len() + 1;
        for _ in 0..PENDING_LIMIT / line + 1 {
            records.write(&record);
        }
        assert!(records.pending.len() < PENDING_LIMIT);
        assert_eq!(
            lines(&path).len(),
            PENDING_LIMIT / line + 1 - records.pending.len() / line
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_shard_that_stops_leaves_no_record_unwritten() {
        let path = scratch("drop");
        let mut records = Records::open(&path).unwrap();
        records.write(&crate::metrics::tests::record());
        drop(records);
        assert_eq!(lines(&path).len(), 1);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}

//! The call-record file: one JSON line per call, appended and flushed as each call ends,
//! so a crash loses no record of a call that had ended. Where a record goes, the live
//! console's feed goes too: each record, and each call event while calls run.

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
    /// The line being written, kept between records: its buffer is grown once, not
    /// for every call.
    line: Vec<u8>,
}

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
            line: Vec::new(),
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

    pub(crate) fn write(&mut self, record: &CallRecord) {
        if let Some(console) = &self.console {
            console.record(record);
        }
        let line = &mut self.line;
        line.clear();
        if let Err(e) = serde_json::to_writer(&mut *line, record) {
            error!(error = %e, call_id = %record.call_id, "call record not serialisable");
            return;
        }
        if let Some(webhook) = &mut self.webhook {
            webhook.offer(line.clone());
        }
        line.push(b'\n');
        // One write per line keeps lines whole under O_APPEND; flush hands it to the OS.
        if let Err(e) = self.file.write_all(line).and_then(|_| self.file.flush()) {
            error!(error = %e, path = %self.path.display(), call_id = %record.call_id, "call record write failed");
        }
    }
}

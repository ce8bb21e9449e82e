//! Hot reload (SIGHUP, `POST /-/reload`, `concierge reload`): re-reads the configuration,
//! the flows, the prompts and the demo directory, checks them as `concierge check` does,
//! and only then installs them.
//!
//! A refused reload changes nothing: each problem is logged with its file, line and field,
//! and the running version keeps serving. An applied one reaches new calls only: the
//! switch gives each call the program it started with until the call ends. Settings the
//! running process cannot change (listen addresses, ports, limits…) are named in the log
//! when they differ from those it started with, and take effect at the next restart.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use concierge_b2bua::Program;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::config::{Config, Overrides};
use crate::demo;
use crate::metrics::Metrics;
use crate::program::{self, Files};

/// What a reload answers: a summary when applied, the problems when refused.
pub(crate) type ReloadResult = Result<String, Vec<String>>;

/// One request for a reload; `reply` (when someone waits) gets the result.
pub(crate) struct ReloadRequest {
    pub(crate) reply: Option<oneshot::Sender<ReloadResult>>,
}

/// Sections of `concierge.toml` a reload applies; every other setting needs a restart.
/// In `[demo]` only the customer file (its content and path) is reloaded. `[[trunks]]`
/// go to the switch with the flows: new and changed ones register, removed ones
/// un-register.
const LIVE_SECTIONS: [&str; 3] = ["flows", "prompts", "trunks"];
const LIVE_KEYS: [&str; 1] = ["demo.customers"];

pub(crate) struct Reloader {
    /// The config file (for the built-in demo, its name among the embedded files); `None`
    /// when running on defaults alone.
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) files: Files,
    /// The command line's overrides (`--listen` …), applied again to what is re-read.
    pub(crate) overrides: Overrides,
    /// The configuration text the process started with, to name what needs a restart.
    pub(crate) started_with: String,
    pub(crate) programs: mpsc::Sender<Program>,
    /// The demo directory's swap, when the directory is being served.
    pub(crate) directory: Option<watch::Sender<Arc<demo::directory::Directory>>>,
    pub(crate) metrics: Arc<Metrics>,
    /// The live console, told which flows new calls run.
    pub(crate) console: Option<Arc<crate::console::Hub>>,
}

impl Reloader {
    pub(crate) async fn run(self, mut requests: mpsc::Receiver<ReloadRequest>) {
        while let Some(request) = requests.recv().await {
            let result = self.reload().await;
            match &result {
                Ok(summary) => {
                    info!(flows = %summary, "reload applied: new calls run these flows");
                    self.metrics.reload(true);
                }
                Err(problems) => {
                    for p in problems {
                        error!("reload refused: {p}");
                    }
                    error!("reload refused: the running flows and settings keep serving");
                    self.metrics.reload(false);
                }
            }
            if let Some(reply) = request.reply {
                let _ = reply.send(result);
            }
        }
    }

    async fn reload(&self) -> ReloadResult {
        let (mut cfg, text) = match &self.config_path {
            Some(path) => {
                let text = self
                    .files
                    .read_to_string(path)
                    .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
                (
                    Config::parse(path, &text).map_err(|e| vec![e.to_string()])?,
                    text,
                )
            }
            None => (Config::default(), String::new()),
        };
        cfg.apply(&self.overrides)
            .map_err(|e| vec![e.to_string()])?;
        let loaded = program::load(&cfg, self.files)?;
        for w in &loaded.warnings {
            warn!("reload: {w}");
        }
        let program = loaded.program;
        let directory = match &self.directory {
            Some(_) => program::directory(&cfg, self.files).map_err(|e| vec![e])?,
            None => None,
        };
        // Everything checked: from here on the reload happens.
        let restart = restart_needed(&self.started_with, &text);
        if !restart.is_empty() {
            warn!(
                settings = %restart.join(", "),
                "reload: these settings changed but take effect only after a restart"
            );
        }
        let summary = flows_summary(&program);
        self.metrics.set_flows(flow_versions(&program));
        if let Some(console) = &self.console {
            console.install(&program);
        }
        if self.programs.send(program).await.is_err() {
            return Err(vec!["the call switch has stopped".into()]);
        }
        if let (Some(swap), Some(directory)) = (&self.directory, directory) {
            info!(
                customers = directory.len(),
                "demo customer directory reloaded"
            );
            let _ = swap.send(Arc::new(directory));
        }
        Ok(summary)
    }
}

/// `(name, version)` of every flow in `program`, routes and default.
pub(crate) fn flow_versions(program: &Program) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = program
        .default_flow
        .iter()
        .chain(program.routes.values())
        .map(|f| (f.name.as_str(), f.version.as_str()))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// `vip@3f2a…, echo@…` for the log.
pub(crate) fn flows_summary(program: &Program) -> String {
    flow_versions(program)
        .iter()
        .map(|(name, version)| format!("{name}@{version}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The settings (`section.key`) that differ between two configuration texts and that a
/// reload does not apply. Both texts have already parsed as a [`Config`].
pub(crate) fn restart_needed(before: &str, after: &str) -> Vec<String> {
    let parse = |t: &str| t.parse::<toml::Table>().unwrap_or_default();
    let (before, after) = (parse(before), parse(after));
    let empty = toml::Table::new();
    let mut changed = Vec::new();
    let sections: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for section in sections {
        if LIVE_SECTIONS.contains(&section.as_str()) {
            continue;
        }
        let (b, a) = (before.get(section), after.get(section));
        match (b.and_then(|v| v.as_table()), a.and_then(|v| v.as_table())) {
            (None, None) if b != a => changed.push(section.clone()),
            (None, None) => {}
            (bt, at) => {
                let (bt, at) = (bt.unwrap_or(&empty), at.unwrap_or(&empty));
                let keys: std::collections::BTreeSet<&String> =
                    bt.keys().chain(at.keys()).collect();
                for key in keys {
                    let name = format!("{section}.{key}");
                    if bt.get(key) != at.get(key) && !LIVE_KEYS.contains(&name.as_str()) {
                        changed.push(name);
                    }
                }
            }
        }
    }
    changed
}

/// `concierge reload`: asks the running server (its `[metrics] listen`) to reload, and
/// prints what it answered.
pub(crate) fn request(config: Option<&Path>) -> std::process::ExitCode {
    crate::admin::ask(
        config,
        reqwest::Method::POST,
        "/-/reload",
        "reload endpoint",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_a_reload_cannot_apply_are_named() {
        let before = "[sip]\nlisten = \"0.0.0.0:5060\"\n[flows]\ndefault = \"a.toml\"\n\
                      [demo]\ncustomers = \"a.csv\"\n";
        let after = "[sip]\nlisten = \"0.0.0.0:5070\"\n[flows]\ndefault = \"b.toml\"\n\
                     [demo]\ncustomers = \"b.csv\"\ndirectory_listen = \"127.0.0.1:9\"\n\
                     [calls]\nmax_calls = 10\n";
        assert_eq!(
            restart_needed(before, after),
            ["calls.max_calls", "demo.directory_listen", "sip.listen"]
        );
        assert!(restart_needed(before, before).is_empty());
    }
}

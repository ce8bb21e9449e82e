//! The real binary with `[[trunks]]` (issue 23): the reference flow with its demo
//! directory, one trunk `carrier` registering `+4612345`, its password in the process
//! environment only, the operator's listener on a free port (for `concierge status` and
//! `/metrics`), and T1 = 100 ms so that a registrar that never answers is given up on
//! after 64·T1 = 6.4 s.

use std::path::PathBuf;
use std::process::Command;

use super::{free_port, ops, start_vip_env, tail, wait_until, Server, PATIENCE};

/// The environment variable the trunk's password is in (`password_env`).
pub const PASSWORD_VAR: &str = "CONCIERGE_TEST_TRUNK_PASSWORD";

/// The `[[trunks]]` table of `carrier` at `registrar` (a URI), authenticating as
/// `auth_user`, with `more` lines (`expires_s = 30`, `transport = "tcp"` …).
pub fn table(registrar: &str, auth_user: &str, more: &str) -> String {
    format!(
        "[[trunks]]\nname = \"carrier\"\nregistrar = \"{registrar}\"\nusername = \"+4612345\"\nauth_username = \"{auth_user}\"\npassword_env = \"{PASSWORD_VAR}\"\n{more}\n"
    )
}

/// A server with trunks and its operator's listener.
pub struct TrunkServer {
    pub server: Server,
    /// The `[metrics] listen` port (`/metrics`, `/-/status`).
    pub metrics: u16,
    password: String,
}

impl TrunkServer {
    /// Starts the reference flow with the `[[trunks]]` tables `trunks` (and any other
    /// tables in them), `password` in [`PASSWORD_VAR`], `sip_extra` in `[sip]`.
    pub fn start(name: &str, sip_extra: &str, trunks: &str, password: &str) -> Self {
        Self::start_with(name, |f| f, sip_extra, trunks, password)
    }

    /// As [`Self::start`], the flow's text through `edit` first (see `start_vip`).
    pub fn start_with(
        name: &str,
        edit: impl Fn(String) -> String,
        sip_extra: &str,
        trunks: &str,
        password: &str,
    ) -> Self {
        let metrics = free_port();
        let sip = format!("t1_ms = 100\n{sip_extra}");
        let extra = format!("{}{trunks}", ops::metrics_on(metrics));
        let server = start_vip_env(name, edit, &sip, &extra, &[(PASSWORD_VAR, password)]);
        Self {
            server,
            metrics,
            password: password.to_owned(),
        }
    }

    /// The config file the server runs.
    pub fn config(&self) -> PathBuf {
        self.server.dir.join("concierge.toml")
    }

    /// Runs the binary with `args` (the password in its environment, as `run` has it):
    /// whether it succeeded, and what it printed.
    pub fn concierge(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
            .args(args)
            .env(PASSWORD_VAR, &self.password)
            .output()
            .expect("run concierge");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// What `concierge status` prints for the running server.
    pub fn status(&self) -> String {
        let config = self.config();
        let (ok, text) = self.concierge(&["status", "--config", &config.display().to_string()]);
        assert!(ok, "concierge status failed: {text}");
        text
    }

    /// Waits until `concierge status` says `needle`; returns what it said.
    #[track_caller]
    pub fn wait_status(&self, needle: &str) -> String {
        wait_until(PATIENCE, format_args!("status to say {needle:?}"), || {
            let text = self.status();
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(format!(
                    "{text}\nlog tail:\n{}",
                    tail(&self.server.log(), 30)
                ))
            }
        })
    }

    /// Waits for a log line holding `needle`, and returns that line.
    #[track_caller]
    pub fn log_line(&self, needle: &str) -> String {
        let log = self.server.wait_log(needle);
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_owned()
    }

    /// `GET /metrics`.
    pub fn scrape(&self) -> String {
        ops::scrape(self.metrics)
    }
}

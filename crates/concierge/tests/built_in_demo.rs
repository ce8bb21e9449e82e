//! `concierge run` started where there is no repository: the demo compiled into the
//! binary answers, looks the caller up in its own customer directory and transfers a VIP
//! by REFER to the built-in desk. Its ports are moved with `--listen`, `--directory-listen`
//! and `--rtp-ports`, so it runs beside a `concierge run` serving the demo on its default ports.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{header, udp_options_answered, wait_until, RawCall, PATIENCE};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_with_no_files_at_all_serves_the_built_in_demo() {
    let dir = common::scratch_dir("built-in-demo");
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let sip_port = common::free_port();
    let directory = common::free_port();
    let metrics = common::free_port();
    let (rtp_min, rtp_max) = common::free_rtp_range(20);
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_concierge"))
            .arg("run")
            .args(["--listen", &format!("127.0.0.1:{sip_port}")])
            .args(["--directory-listen", &format!("127.0.0.1:{directory}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .args([
                "--console-listen",
                &format!("127.0.0.1:{}", common::free_port()),
            ])
            .args(["--rtp-ports", &format!("{rtp_min}-{rtp_max}")])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let server_log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    wait_until(
        PATIENCE,
        format_args!("an answer to OPTIONS on {sip_port}"),
        || {
            if let Ok(Some(status)) = demo.0.try_wait() {
                panic!("the demo exited ({status})\n{}", server_log());
            }
            if udp_options_answered(sip_port, Duration::from_millis(300)) {
                Ok(())
            } else {
                Err(server_log())
            }
        },
    );
    assert!(
        server_log().contains("running the built-in demo"),
        "{}",
        server_log()
    );
    common::assert_no_demo_ports(demo.0.id(), sip_port);

    // A VIP number of the built-in directory: welcome, lookup over HTTP, REFER to the desk.
    let mut call = RawCall::invite(sip_port, "+46706170786", "builtin-demo-1", "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    let refer_to = header(&refer, "Refer-To").unwrap_or_default();
    assert!(
        refer_to.starts_with(&format!("<sip:vip-desk@127.0.0.1:{sip_port}"))
            && refer_to.contains("X-Concierge-Tier=member"),
        "{refer_to}"
    );
    call.reply(&refer, 202);
    call.bye();
    call.sip.expect("SIP/2.0 200", Duration::from_secs(10));

    // Its call record, in the working directory as the built-in config says.
    let record = wait_until(PATIENCE, "the call's record in calls.jsonl", || {
        let text = std::fs::read_to_string(dir.join("calls.jsonl")).unwrap_or_default();
        match text.lines().find(|l| l.contains("builtin-demo-1")) {
            Some(line) => Ok(serde_json::from_str::<serde_json::Value>(line).unwrap()),
            None => Err(server_log()),
        }
    });
    assert_eq!(record["http"][0]["status"], 200, "{record}");
    assert_eq!(record["caller"], "+46706170786");
    // The start-up summary names what runs and where.
    let log = server_log();
    for needle in [
        "config: config/concierge.toml (built into the binary)",
        "flows: every call -> config/flows/vip.toml",
        "call records: calls.jsonl",
        &format!("RTP ports: {rtp_min}-{rtp_max}"),
        &format!("demo customer directory: http://127.0.0.1:{directory}"),
        &format!("SIP on UDP 127.0.0.1:{sip_port} and TCP 127.0.0.1:{sip_port}"),
        "call ended",
    ] {
        assert!(log.contains(needle), "{needle:?} not in\n{log}");
    }
    assert!(!log.contains("Some("), "{log}");
}

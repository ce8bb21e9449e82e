//! `concierge run` with no arguments, started where there is no repository: the demo
//! compiled into the binary answers on the default port 5060, looks the caller up in its
//! own customer directory (port 8089) and transfers a VIP by REFER to the built-in desk.
//! It takes those two fixed ports, so nothing else may hold them while it runs.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{header, options_request, udp_exchange, RawCall};

/// The demo's fixed SIP port (the built-in config's `[sip] listen`).
const SIP_PORT: u16 = 5060;

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
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_concierge"))
            .arg("run")
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let server_log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let replies = udp_exchange(
            SIP_PORT,
            &options_request(SIP_PORT),
            Duration::from_millis(300),
        );
        if replies.iter().any(|r| r.starts_with("SIP/2.0 200")) {
            break;
        }
        if let Ok(Some(status)) = demo.0.try_wait() {
            panic!(
                "the demo exited ({status}); is port {SIP_PORT} or 8089 taken?\n{}",
                server_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no answer on {SIP_PORT}\n{}",
            server_log()
        );
    }
    assert!(
        server_log().contains("running the built-in demo"),
        "{}",
        server_log()
    );

    // A VIP number of the built-in directory: welcome, lookup over HTTP, REFER to the desk.
    let mut call = RawCall::invite(SIP_PORT, "+46706170786", "builtin-demo-1", "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    let refer_to = header(&refer, "Refer-To").unwrap_or_default();
    assert!(
        refer_to.starts_with("<sip:vip-desk@127.0.0.1:5060")
            && refer_to.contains("X-Concierge-Tier=member"),
        "{refer_to}"
    );
    call.reply(&refer, 202);
    call.bye();
    call.sip.expect("SIP/2.0 200", Duration::from_secs(10));

    // Its call record, in the working directory as the built-in config says.
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let text = std::fs::read_to_string(dir.join("calls.jsonl")).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("builtin-demo-1")) {
            break serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no record\n{}", server_log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(record["http"][0]["status"], 200, "{record}");
    assert_eq!(record["caller"], "+46706170786");
}

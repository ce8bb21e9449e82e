//! A real softphone: baresip dials the server, keys digits by RFC 2833, follows the REFER
//! to the built-in VIP desk, and reads digits back on the echo route. baresip, espeak-ng
//! and sox are required (CI installs them); their absence fails the test.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{path_of, start_vip, wait_until, Server, PATIENCE};

/// One phone at a time: two would only compete for the two cores.
static ONE_PHONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The record of the call to `called`, once it is written.
#[track_caller]
fn record_of_call_to(server: &Server, called: &str) -> serde_json::Value {
    wait_until(
        PATIENCE,
        format_args!("the record of the call to {called}"),
        || {
            let records = server.records();
            match records.iter().find(|r| r["called"] == called) {
                Some(r) => Ok(r.clone()),
                None => Err(format!("records {records:?}")),
            }
        },
    )
}

/// Runs baresip as `user` and drives it with bsctl.py `steps`; returns its events.
fn baresip(dir: &Path, user: &str, steps: &[String]) -> Vec<serde_json::Value> {
    let _phone = ONE_PHONE.lock().unwrap_or_else(|e| e.into_inner());
    let peers = common::repo_root().join("tests/peers");
    let wav = dir.join("caller.wav");
    let speak = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(dir.join("speech.wav"))
        .arg(format!(
            "Hello, I would like to talk about my booking. {}",
            "One two three. ".repeat(25)
        ))
        .status();
    // baresip ends the call when its audio source runs out, so the speech outlasts the test.
    assert!(
        speak.is_ok_and(|s| s.success()),
        "espeak-ng is required (apt-get install -y espeak-ng)"
    );
    let sox = Command::new("sox")
        .arg(dir.join("speech.wav"))
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .status();
    assert!(
        sox.is_ok_and(|s| s.success()),
        "sox is required (apt-get install -y sox)"
    );
    let conf = dir.join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    // Ports of its own, none fixed: the suite runs beside a demo or another phone.
    let sip_port = common::free_port().to_string();
    let ctrl_port = common::free_port().to_string();
    let (rtp_min, rtp_max) = common::free_rtp_range(20);
    let config = std::fs::read_to_string(peers.join("baresip/config.in"))
        .unwrap()
        .replace("@AUDIO@", wav.to_str().unwrap())
        .replace("@SIP_PORT@", &sip_port)
        .replace("@CTRL_PORT@", &ctrl_port)
        .replace("@RTP_PORTS@", &format!("{rtp_min}-{}", rtp_max - 1));
    std::fs::write(conf.join("config"), config).unwrap();
    let accounts = std::fs::read_to_string(peers.join("baresip/accounts.in"))
        .unwrap()
        .replace("@USER@", user)
        .replace("@SIP_PORT@", &sip_port);
    std::fs::write(conf.join("accounts"), accounts).unwrap();
    // stdin must be a pipe: baresip's stdio module cannot poll /dev/null.
    let mut phone = Command::new("baresip")
        .arg("-f")
        .arg(&conf)
        .args(["-t", "60"])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(dir.join("baresip.out")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip is required (apt-get install -y baresip)");
    // Up once its control port takes a connection.
    let port: u16 = ctrl_port.parse().unwrap();
    if common::poll(PATIENCE, || TcpStream::connect(("127.0.0.1", port)).ok()).is_none() {
        let _ = phone.kill();
        let _ = phone.wait();
        panic!(
            "baresip's control port never opened:\n{}",
            std::fs::read_to_string(dir.join("baresip.out")).unwrap_or_default()
        );
    }
    let out = Command::new("python3")
        .arg(peers.join("bsctl.py"))
        .args(["--port", &ctrl_port])
        .args(steps)
        .output()
        .expect("python3");
    let _ = Command::new("python3")
        .arg(peers.join("bsctl.py"))
        .args(["--port", &ctrl_port, "cmd:quit"])
        .output();
    let _ = phone.kill();
    let _ = phone.wait();
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success(),
        "bsctl steps failed: {events:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    events
}

#[test]
fn baresip_keys_a_code_and_follows_the_refer_to_the_vip_desk() {
    let server = start_vip("baresip", |f| f, "");
    common::assert_no_demo_ports(server.pid(), server.port);
    let dir = common::scratch_dir("baresip-run");
    let ivr = format!("sip:ivr@127.0.0.1:{}", server.port);
    let steps: Vec<String> = [
        format!("cmd:dial:{ivr}"),
        "wait:CALL_ESTABLISHED:10".into(),
        "sleep:2".into(),
        "cmd:sndcode:101010".into(),
        "wait:TRANSFER:25".into(),
        "wait:CALL_ESTABLISHED:10".into(),
        "sleep:2".into(),
    ]
    .into();
    let events = baresip(&dir, "caller", &steps);
    let transfer = events
        .iter()
        .find(|e| e["type"] == "TRANSFER")
        .expect("a TRANSFER event");
    let target = transfer["param"].as_str().unwrap();
    assert!(
        target.contains("sip:vip-desk@127.0.0.1") && target.contains("X-Concierge-Tier=gold"),
        "{target}"
    );
    let desk = events
        .iter()
        .filter(|e| e["type"] == "CALL_ESTABLISHED")
        .nth(1)
        .expect("the call to the desk");
    assert!(
        desk["peeruri"]
            .as_str()
            .unwrap()
            .starts_with("sip:vip-desk@"),
        "{desk}"
    );

    // The IVR leg's record, and the desk's: the new call really reached our desk.
    let ivr_leg = record_of_call_to(&server, "ivr");
    assert_eq!(ivr_leg["transfer"]["result"], "succeeded");
    let digits: String = ivr_leg["digits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    // Six keys arrived, and the secret code itself is nowhere in the record.
    assert_eq!(digits, "******");
    assert!(
        !ivr_leg.to_string().contains("101010"),
        "the code leaked into the record: {ivr_leg}"
    );
}

#[test]
fn baresip_digits_are_read_back_on_the_echo_route() {
    let server = start_vip("baresip-echo", |f| f, "");
    common::assert_no_demo_ports(server.pid(), server.port);
    let dir = common::scratch_dir("baresip-echo-run");
    let steps: Vec<String> = [
        format!("cmd:dial:sip:echo-digits@127.0.0.1:{}", server.port),
        "wait:CALL_ESTABLISHED:10".into(),
        "sleep:1".into(),
        "cmd:sndcode:42#".into(),
        "sleep:5".into(),
        "cmd:hangup".into(),
        "sleep:1".into(),
    ]
    .into();
    baresip(&dir, "caller", &steps);
    let rec = record_of_call_to(&server, "echo-digits");
    let path = path_of(&rec);
    assert!(
        path.starts_with(&["ask:done".to_string(), "read_back:next".to_string()]),
        "{path:?}"
    );
    assert!(
        rec["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v[0] == "entered" && v[1] == "42"),
        "{rec}"
    );
}

/// The README's recipe as written: `config/baresip/` (no sound card, no ALSA) dials the IVR
/// as the VIP number in its `accounts` and follows the REFER to the VIP desk. Only its SIP
/// and RTP ports are moved, so it runs beside anything.
#[test]
fn the_shipped_headless_baresip_config_reaches_the_vip_desk() {
    let server = start_vip("readme-baresip", |f| f, "");
    common::assert_no_demo_ports(server.pid(), server.port);
    let dir = common::scratch_dir("readme-baresip-run");
    let _phone = ONE_PHONE.lock().unwrap_or_else(|e| e.into_inner());
    let shipped = common::repo_root().join("config/baresip");
    let config = std::fs::read_to_string(shipped.join("config")).unwrap();
    assert!(
        !config
            .lines()
            .any(|l| l.starts_with("module") && (l.contains("alsa") || l.contains("pulse"))),
        "the headless config loads no sound-card module"
    );
    let sip_port = common::free_port();
    let (rtp_min, rtp_max) = common::free_rtp_range(20);
    let moved = config
        .replace("127.0.0.1:5080", &format!("127.0.0.1:{sip_port}"))
        .replace("30000-30099", &format!("{rtp_min}-{}", rtp_max - 1));
    assert!(
        moved.contains(&format!("sip_listen\t\t127.0.0.1:{sip_port}"))
            && moved.contains(&format!("rtp_ports\t\t{rtp_min}-")),
        "the shipped config's ports are where this test expects them"
    );
    std::fs::write(dir.join("config"), moved).unwrap();
    std::fs::copy(shipped.join("accounts"), dir.join("accounts")).unwrap();
    let mut phone = Command::new("baresip")
        .arg("-f")
        .arg(&dir)
        .args(["-e", &format!("/dial sip:ivr@127.0.0.1:{}", server.port)])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(dir.join("baresip.out")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip is required (apt-get install -y baresip)");
    // Both calls ended (or the time is up, and the assertions below say what is missing).
    let records = common::poll(std::time::Duration::from_secs(30), || {
        let records = server.records();
        let desk_done = records.iter().any(|r| r["called"] == "vip-desk");
        let ivr_done = records.iter().any(|r| r["called"] == "ivr");
        (desk_done && ivr_done).then_some(records)
    })
    .unwrap_or_else(|| server.records());
    let _ = phone.kill();
    let _ = phone.wait();
    let out = std::fs::read_to_string(dir.join("baresip.out")).unwrap_or_default();
    let ivr = records
        .iter()
        .find(|r| r["called"] == "ivr")
        .unwrap_or_else(|| panic!("no IVR call record; baresip said:\n{out}"));
    assert_eq!(ivr["caller"], "+46706170786");
    assert_eq!(ivr["transfer"]["result"], "succeeded", "{ivr}");
    let desk = records
        .iter()
        .find(|r| r["called"] == "vip-desk")
        .unwrap_or_else(|| panic!("baresip never called the VIP desk:\n{out}"));
    assert_eq!(desk["caller"], "+46706170786", "{desk}");
    assert!(!out.contains("could not open auplay"), "{out}");
}

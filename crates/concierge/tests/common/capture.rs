//! What crossed loopback: a tshark capture of a test's RTP ports, for tests that must show
//! no plain RTP went by (SRTP calls).

use std::process::{Child, Command, Stdio};

use super::{scratch_dir, wait_until, PATIENCE};

/// A free range of `len` ports between the softphone harness's 30000-30099 and the
/// kernel's ephemeral ports (32768 up): no other test's server or client socket uses it, so
/// the capture on it holds only this test's media.
pub fn quiet_rtp_range(len: u16) -> (u16, u16) {
    use rand::Rng;
    loop {
        let base = rand::thread_rng().gen_range(15_100..16_300) * 2;
        if (base..base + len).all(|q| std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return (base, base + len);
        }
    }
}

/// tshark writing loopback UDP in `ports` to a file until stopped.
pub struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    pub fn start(name: &str, ports: (u16, u16)) -> Self {
        let dir = scratch_dir(name);
        let file = dir.join("rtp.pcapng");
        let log = dir.join("tshark.log");
        let child = Command::new("tshark")
            .args(["-i", "lo", "-f"])
            .arg(format!("udp portrange {}-{}", ports.0, ports.1))
            .arg("-w")
            .arg(&file)
            .args(["-a", "duration:60"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("tshark log"))
            .spawn()
            .expect("tshark is installed (.ci/run installs it)");
        // Owned at once: a panic below kills it (Drop).
        let capture = Self { child, file };
        // tshark says "Capturing on" once the capture runs.
        wait_until(PATIENCE, "tshark to start capturing", || {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if said.contains("Capturing on") {
                Ok(())
            } else {
                Err(said)
            }
        });
        capture
    }

    /// Stops the capture and returns every UDP packet: (source port, payload).
    pub fn packets(mut self) -> Vec<(u16, Vec<u8>)> {
        // SIGINT lets tshark finish the file.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args(["-T", "fields", "-e", "udp.srcport", "-e", "udp.payload"])
            .output()
            .expect("tshark -r");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (port, hex) = l.split_once('\t')?;
                let hex = hex.replace(':', "");
                let bytes = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .ok()?;
                Some((port.parse().ok()?, bytes))
            })
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#!/usr/bin/env python3
"""Concierge load benchmark: SIPp against the release binary on 127.0.0.1.

Every figure is taken beside a reference measured in the same run (SIPp's own UAS answering
the same calls), because absolute numbers drift on a shared 2-core machine. Prints one
markdown table and writes it to bench/RESULTS.md with the date, core count and commit.

    python3 bench/run.py              # 30 s per step, as the README quotes
    python3 bench/run.py --step 5     # quick look

Workloads, each at rising rates until a step fails:
  plain     INVITE/200/ACK/BYE against a server with no flow (SIPp's built-in uac), beside
            SIPp's own UAS answering the same calls (the reference, same run);
  vip       the full VIP path: HTTP lookup in the customer directory → REFER → NOTIFY 100,
            NOTIFY 200 → BYE (bench/flows/vip-refer.toml, tests/sipp/vip_refer.xml);
  redirect  HTTP lookup while ringing → 302 (bench/flows/redirect.toml, bench/sipp/redirect.xml).
Each step runs for --step seconds; it holds when SIPp reports 0 failed calls. Server CPU per
call is read from /proc/PID/stat (utime+stime) before and after the step.

Then concurrent media (bench/loadgen, `concierge-loadgen callers`): N callers at once through
the reference flow (config/flows/vip.toml): two-way 20 ms PCMU, the code keyed by RFC 4733
during the welcome prompt, the keypad, the REFER answered 202 and held until --media-hold s
after the answer, NOTIFY 200, the server's BYE. Server CPU is sampled between the moment all
N calls are up and the first one ends (CPU µs per call-second, and ns per RTP packet from the
server's /metrics); the server's RTP send jitter is measured by the callers from the kernel's
receive timestamps. Beside it, in the same run, two packet floors: the same N two-way streams
against `concierge-loadgen pump` (a tokio task per port: the floor issue 22 is stated against)
and `pump --lean` (one epoll thread: the bare system calls). The load generator's own CPU is
reported too: it shares the two cores.

Heap allocations per call come from a second build with `--features concierge/alloc-count`,
in short runs of their own at the end. `--perf S` profiles the server (`perf record -g`) S
seconds into each step and prints where its CPU went.
"""
import argparse
import csv
import datetime
import glob
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(span=1):
    """A port free for UDP and TCP, with the `span - 1` above it free for UDP too (SIPp's
    -mp binds the port and the ones above it; the server's parked RTP sockets hold even
    ports of its range for as long as it runs)."""
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        above = []
        try:
            t.bind(("127.0.0.1", port))
            for q in range(port + 1, port + span):
                a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                above.append(a)
                a.bind(("127.0.0.1", q))
            return port
        except OSError:
            continue
        finally:
            for a in [u, t, *above]:
                a.close()


def stat_cpu_seconds(stat):
    """User plus system CPU seconds from the text of a /proc `stat` file (a process's or a
    thread's): fields 14 and 15, counted after the name, which may hold spaces."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        return stat_cpu_seconds(f.read())


def thread_seconds(pid):
    """CPU seconds of each of `pid`'s threads so far, summed by thread name."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        out[name] = out.get(name, 0) + stat_cpu_seconds(text)
    return out


def thread_shares(res, which=6):
    """Each thread's CPU between ALL_UP and FIRST_END as a share of one core (%), by name:
    `which` 6 is the measured process, 7 the load generator."""
    m = res.get("marks", {})
    if "ALL_UP" not in m or "FIRST_END" not in m:
        return {}
    (t0, a), (t1, b) = (m["ALL_UP"][0], m["ALL_UP"][which]), (m["FIRST_END"][0], m["FIRST_END"][which])
    if t1 <= t0:
        return {}
    return {k: (v - a.get(k, 0)) / (t1 - t0) * 100 for k, v in b.items()}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


METRICS = {}  # server pid -> its /metrics URL
SERVER_BIN = [os.path.join(ROOT, "target/release/concierge")]  # --server-bin replaces it
ALLOC_BIN = os.path.join(ROOT, "target/release/concierge-alloc-count")  # built with --features alloc-count


def scrape(pid):
    """The server's /metrics as {name: value} for the unlabelled samples, or {}."""
    url = METRICS.get(pid)
    if not url:
        return {}
    values = {}
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            for line in r.read().decode().splitlines():
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
                    try:
                        values[parts[0]] = float(parts[1])
                    except ValueError:
                        pass
    except OSError:
        pass
    return values


def allocations(pid):
    """The server's heap allocations so far (process_allocations_total, when it was built with
    the alloc-count feature), or None."""
    return scrape(pid).get("process_allocations_total")


def rtp_packets(pid):
    """RTP packets the server has sent and received so far, or None (no metrics)."""
    m = scrape(pid)
    sent, received = m.get("concierge_rtp_packets_sent_total"), m.get("concierge_rtp_packets_received_total")
    return None if sent is None or received is None else sent + received


def start_concierge(workdir, port, flow=None):
    cfg = os.path.join(workdir, f"concierge-{port}.toml")
    metrics = free_port()
    # The load comes from this machine: trusted, so failed codes are counted per caller
    # number (each load caller has its own), not per the one source address.
    text = (f'[sip]\nlisten = "127.0.0.1:{port}"\ntrusted_peers = ["127.0.0.0/8"]\n'
            f'[calls]\nmax_calls = 100000\n'
            # The benchmark measures capacity: admission's rate limits are off.
            f'invite_rate = 0\nsource_invite_rate = 0\n'
            f'[rtp]\nport_min = {RTP_PORTS[0]}\nport_max = {RTP_PORTS[1]}\n'
            f'[records]\npath = "{workdir}/calls-{port}.jsonl"\n[log]\nfilter = "warn"\n'
            f'[metrics]\nlisten = "127.0.0.1:{metrics}"\n')
    if flow:
        crm = free_port()
        if flow == "reference":
            # The shipped reference flow itself; it reaches this run's customer directory
            # through {system.directory_url} ([demo] directory_listen below).
            src = open(os.path.join(ROOT, "config", "flows", "vip.toml")).read()
            flow = "vip.toml"
        else:
            src = open(os.path.join(ROOT, "bench", "flows", flow)).read().replace("CRM", f"http://127.0.0.1:{crm}")
        flow_path = os.path.join(workdir, flow)
        with open(flow_path, "w") as f:
            f.write(src)
        text += (f'[flows]\ndefault = "{flow_path}"\n[prompts]\ndir = "{ROOT}/prompts"\n'
                 f'[demo]\ndirectory = true\ndirectory_listen = "127.0.0.1:{crm}"\n'
                 f'customers = "{ROOT}/config/customers.csv"\n')
    else:
        text += '[demo]\ndirectory = false\n'
    with open(cfg, "w") as f:
        f.write(text)
    proc = subprocess.Popen([SERVER_BIN[0], "run", "--config", cfg], preexec_fn=more_open_files,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "server.log"), "w"))
    wait_options(port)
    METRICS[proc.pid] = f"http://127.0.0.1:{metrics}/metrics"
    return proc


RTP_PORTS = [10000, 60000]  # --rtp-ports
WARM_UP_SECONDS = 8  # each workload's uncounted first calls, at its first rate
NOFILE = [65536]  # --nofile


def more_open_files():
    """The server's open-files limit as a production unit sets it (systemd's LimitNOFILE,
    docker's default): with 65,536 the sockets of all 25,000 ports of the range stay bound
    between calls (`[rtp]` parking, README "Capacity"); where the hard limit is lower, it
    is the hard limit, and fewer are kept. `--nofile` sets another (a low one turns the
    parking off: an A/B of it with one binary)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE[0]
    if want < soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_sipp_uas(workdir, port, scenario=("-sn", "uas")):
    """SIPp answering plain calls: its built-in UAS (180, 200), or `scenario`."""
    proc = subprocess.Popen(["sipp", *scenario, "-i", "127.0.0.1", "-p", str(port), "-nostdin",
                             "-buff_size", "4194304"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def wait_options(port, within=20):
    msg = (f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbench;rport\r\n"
           "From: <sip:b@127.0.0.1>;tag=b\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: bench-probe\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    deadline = time.time() + within
    while time.time() < deadline:
        s.sendto(msg, ("127.0.0.1", port))
        try:
            if s.recv(65536).startswith(b"SIP/2.0 200"):
                return
        except socket.timeout:
            pass
    sys.exit(f"server on {port} did not answer OPTIONS")


def run_uac(workdir, port, rate, seconds, scenario=("-sn", "uac"), tag=""):
    scenario = list(scenario)
    total = int(rate * seconds)
    out = os.path.join(workdir, f"uac-{port}-{rate}{tag}")
    os.makedirs(out, exist_ok=True)
    cmd = ["sipp", *scenario, "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port(4)),
           "-r", str(rate), "-m", str(total),
           "-l", str(max(rate * 4, 1000)), "-nostdin", "-buff_size", "4194304", "-timeout", str(seconds + 30),
           "-timeout_error", "-trace_stat", "-stf", "stat.csv", "-trace_rtt", "-rtt_freq", "1",
           f"127.0.0.1:{port}"]
    r = subprocess.run(cmd, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok, failed = last_stat(os.path.join(out, "stat.csv"))
    rtts = response_times(out)
    return {"rc": r.returncode, "ok": ok, "failed": failed, "p50": pct(rtts, 50), "p99": pct(rtts, 99), "rtts": rtts}


def last_stat(path):
    try:
        with open(path) as f:
            rows = list(csv.reader(f, delimiter=";"))
        head, last = rows[0], rows[-1]
        return int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")])
    except (OSError, ValueError, IndexError):
        return 0, -1


def response_times(out):
    values = []
    for path in glob.glob(os.path.join(out, "*_rtt.csv")):
        with open(path) as f:
            for row in csv.reader(f, delimiter=";"):
                try:
                    values.append(float(row[2]))
                except (ValueError, IndexError):
                    pass
    return values


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def ms(v):
    return "–" if v is None else f"{v:.1f}"


def step(workdir, pid, port, rate, seconds, scenario=("-sn", "uac"), profile=None, tag=""):
    before, allocs = cpu_seconds(pid), allocations(pid)
    perf = start_perf(pid, workdir, profile) if profile and PERF["seconds"] > 0 else None
    res = run_uac(workdir, port, rate, seconds, scenario, tag)
    if perf:
        perf[0].wait()
        print(f"perf profile of the server, {profile} ({perf[1]}):\n{perf_summary(perf[1])}", flush=True)
    res["cpu_s"] = cpu_seconds(pid) - before
    res["cpu_us_per_call"] = res["cpu_s"] / res["ok"] * 1e6 if res["ok"] else None
    after = allocations(pid)
    res["allocs"] = after - allocs if allocs is not None and after else None
    res["allocs_per_call"] = res["allocs"] / res["ok"] if res["ok"] and res["allocs"] is not None else None
    return res


def interleaved(workdir, targets, rate, seconds, rounds, scenario, profile=None):
    """The same plain step against several answering processes (`targets`: pid, port) in
    `rounds` rounds of `seconds / rounds` each, taking turns, so a drift of the shared
    machine (a neighbour, the host's clock) falls on all of them alike instead of on the one
    whose turn it was: each one's calls, failures, CPU and response times pooled over its
    rounds. The first target's first round is the profiled one."""
    parts = [[] for _ in targets]
    for r in range(rounds):
        for i, (pid, port) in enumerate(targets):
            label = profile if i == 0 and r == 0 else None
            parts[i].append(step(workdir, pid, port, rate, seconds / rounds, scenario, label, f"-r{r}"))
    return [pooled(p) for p in parts]


def pooled(parts):
    """One result from the rounds of a step: sums of calls, CPU and allocations, the
    response-time percentiles of all of them."""
    ok = sum(p["ok"] for p in parts)
    rtts = [v for p in parts for v in p["rtts"]]
    allocs = [p["allocs"] for p in parts]
    cpu = sum(p["cpu_s"] for p in parts)
    return {
        "ok": ok,
        "failed": -1 if any(p["failed"] < 0 for p in parts) else sum(p["failed"] for p in parts),
        "p50": pct(rtts, 50),
        "p99": pct(rtts, 99),
        "cpu_us_per_call": cpu / ok * 1e6 if ok else None,
        "allocs_per_call": sum(allocs) / ok if ok and None not in allocs else None,
    }


def stop(server):
    """SIGTERM (drain), then SIGKILL if the drain outlasts a minute."""
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def loadgen():
    return os.path.join(ROOT, "target/release/concierge-loadgen")


PERF = {"seconds": 0}  # --perf: profile the server this long from ALL_UP of each media step


def start_perf(pid, cwd, label):
    """`perf record -g` of `pid` for PERF seconds; returns the process and its data file."""
    data = os.path.join(cwd, f"perf-{label}.data")
    p = subprocess.Popen(["perf", "record", "--call-graph", os.environ.get("PERF_CALL_GRAPH", "fp"), "-F", "999", "-p", str(pid), "-o", data, "--",
                          "sleep", str(PERF["seconds"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, data


def perf_summary(data):
    """Where the profiled CPU went: the top symbols (self time), as perf reports them."""
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "comm,dso,symbol",
                          "--stdio", "--percent-limit", "0.7"], capture_output=True, text=True).stdout
    return "\n".join(l for l in out.splitlines() if l.strip() and not l.startswith("#") and "%" in l
                     and not l.lstrip().startswith("|") and not l.lstrip().startswith("-"))


def udp_receive_drops():
    """Datagrams the kernel dropped on this machine for a full socket receive buffer so far
    (/proc/net/snmp, Udp RcvbufErrors): loopback loses nothing else, so a step where this
    grows lost packets between a sender and a reader that fell behind."""
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def timed_run(cmd, pid, cwd, profile=None):
    """Runs a loadgen mode; samples `pid`'s CPU (and the load generator's own) at ALL_UP and
    FIRST_END; returns its JSON. With `profile` (a label) and --perf, profiles `pid` from
    ALL_UP."""
    start_allocs = allocations(pid)
    start_drops = udp_receive_drops()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    marks = {}
    summary = {}
    perf = None
    for line in proc.stdout:
        line = line.strip()
        if line == "ALL_UP" and profile and PERF["seconds"] > 0:
            perf = start_perf(pid, cwd, profile)
        if line in ("ALL_UP", "FIRST_END"):
            marks[line] = (time.time(), cpu_seconds(pid), rss_now_kib(pid), cpu_seconds(proc.pid), allocations(pid),
                           rtp_packets(pid), thread_seconds(pid), thread_seconds(proc.pid))
        elif line.startswith("{"):
            summary = json.loads(line)
    proc.wait()
    summary["marks"] = marks
    summary["udp_receive_drops"] = udp_receive_drops() - start_drops
    if perf:
        perf[0].wait()
        summary["perf"] = perf_summary(perf[1])
        summary["perf_data"] = perf[1]
    end_allocs = allocations(pid)
    if start_allocs is not None and end_allocs is not None and summary.get("calls"):
        summary["allocs_per_call"] = (end_allocs - start_allocs) / summary["calls"]
    return summary


def rss_now_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_per_call_second(res, n, which=1):
    """CPU µs per call-second between ALL_UP and FIRST_END: `which` 1 is the measured
    process, 3 the load generator itself, 4 the server's allocations (per call-second)."""
    m = res.get("marks", {})
    if "ALL_UP" not in m or "FIRST_END" not in m:
        return None
    t0, t1 = m["ALL_UP"][0], m["FIRST_END"][0]
    c0, c1 = m["ALL_UP"][which], m["FIRST_END"][which]
    if t1 <= t0 or c0 is None or c1 is None:
        return None
    return (c1 - c0) / ((t1 - t0) * n) * (1 if which == 4 else 1e6)


def cpu_per_packet(res):
    """Server CPU ns per RTP packet sent or received between ALL_UP and FIRST_END: unlike CPU
    per call-second it does not fall when a busy machine starves the server of CPU (it then
    sends fewer packets too)."""
    m = res.get("marks", {})
    if "ALL_UP" not in m or "FIRST_END" not in m:
        return None
    (c0, p0), (c1, p1) = (m["ALL_UP"][1], m["ALL_UP"][5]), (m["FIRST_END"][1], m["FIRST_END"][5])
    if p0 is None or p1 is None or p1 <= p0:
        return None
    return (c1 - c0) / (p1 - p0) * 1e9


def media_step(workdir, n, hold):
    port = free_port()
    server = start_concierge(workdir, port, "reference")
    try:
        base = rss_now_kib(server.pid)
        ramp = max(2.0, n / 400)
        res = timed_run([loadgen(), "callers", "--server", f"127.0.0.1:{port}", "--calls", str(n),
                         "--ramp-s", str(ramp), "--hold-s", str(hold)], server.pid, workdir, profile=f"server-{n}")
        res["cpu_us_per_call_s"] = cpu_per_call_second(res, n)
        res["loadgen_us_per_call_s"] = cpu_per_call_second(res, n, 3)
        res["allocs_per_call_s"] = cpu_per_call_second(res, n, 4)
        res["cpu_ns_per_packet"] = cpu_per_packet(res)
        # The RTP thread's share of a core against the rest of the server's, and the load
        # generator's media thread beside them: at 4,000 calls on two cores these say
        # whether the machine, not one thread, is the limit.
        shares = thread_shares(res)
        res["rtp_thread_pct"] = shares.pop("rtp", None)
        res["other_threads_pct"] = sum(shares.values()) if shares else None
        res["loadgen_media_pct"] = thread_shares(res, 7).get("media")
        up = res.get("marks", {}).get("ALL_UP")
        res["rss_per_call_kib"] = (up[2] - base) / n if up else None
        res["peak_rss_mib"] = rss_kib(server.pid) / 1024
        return res
    finally:
        stop(server)


def floor_step(workdir, n, hold, lean=False):
    port_min = 20000  # below the ephemeral ports the streams bind
    ramp = max(2.0, n / 400)
    pump = subprocess.Popen([loadgen(), "pump", "--port-min", str(port_min), "--streams", str(n),
                             "--seconds", str(ramp + hold + 30)] + (["--lean"] if lean else []),
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pump.stdout.readline()  # READY
    try:
        res = timed_run([loadgen(), "streams", "--port-min", str(port_min), "--streams", str(n),
                         "--ramp-s", str(ramp), "--hold-s", str(hold)], pump.pid, workdir)
        res["cpu_us_per_call_s"] = cpu_per_call_second(res, n)
        res["loadgen_us_per_call_s"] = cpu_per_call_second(res, n, 3)
        return res
    finally:
        pump.kill()
        pump.wait()


def jitter_ms(res):
    j = res.get("jitter") or {}
    if not j.get("samples"):
        return "–"
    return f"{j.get('p50_us', 0) / 1000:.2f} / {j.get('p99_us', 0) / 1000:.2f} / {j.get('max_us', 0) / 1000:.1f}"


def ulaw(sample):
    """ITU-T G.711 µ-law of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = magnitude.bit_length() - 8
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def prompt_pcap(workdir, wav_path):
    """The prompt as a pcap SIPp can replay: Ethernet/IPv4/UDP/RTP, PCMU, 20 ms a packet.
    SIPp rewrites the addresses and ports, so the ones written here do not matter. Made once
    per run."""
    path = os.path.join(workdir, "prompt-pcmu.pcap")
    if os.path.exists(path):
        return path
    with wave.open(wav_path) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (8000, 1, 2):
            sys.exit(f"{wav_path}: the reference pcap needs 8 kHz mono 16-bit PCM")
        samples = struct.unpack(f"<{w.getnframes()}h", w.readframes(w.getnframes()))
    payload = bytes(ulaw(x) for x in samples)
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet
        for k in range(0, len(payload) // 160):
            rtp = struct.pack("!BBHII", 0x80, 0x80 if k == 0 else 0, k & 0xFFFF, 160 * k, 0x5150) \
                + payload[160 * k:160 * (k + 1)]
            udp = struct.pack("!HHHH", 4000, 5000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), k & 0xFFFF, 0, 64, 17, 0,
                             bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
            frame = b"\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x01\x08\x00" + ip + udp
            t = 0.02 * k
            f.write(struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)), len(frame), len(frame)))
            f.write(frame)
    return path


def sipp_prompt_step(workdir, n, hold):
    """The reference for concurrent media: SIPp's UAS playing the prompt to N callers."""
    pcap = prompt_pcap(workdir, os.path.join(ROOT, "prompts", "welcome.wav"))
    scenario = os.path.join(workdir, "uas_prompt.xml")
    with open(os.path.join(ROOT, "bench", "sipp", "uas_prompt.xml")) as f:
        text = f.read().replace("PROMPT_PCAP", pcap)
    with open(scenario, "w") as f:
        f.write(text)
    port = free_port()
    uas = subprocess.Popen(["sipp", "-sf", scenario, "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port(4)),
                            "-nostdin", "-buff_size", "4194304"],
                           cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        ramp = max(2.0, n / 400)
        res = timed_run([loadgen(), "callers", "--server", f"127.0.0.1:{port}", "--calls", str(n),
                         "--ramp-s", str(ramp), "--hold-s", str(hold), "--digits", "", "--expect-refer", ""],
                        uas.pid, workdir)
        res["cpu_us_per_call_s"] = cpu_per_call_second(res, n)
        return res
    finally:
        uas.kill()
        uas.wait()


def alloc_section(workdir):
    """Heap allocations per call, from short runs of the counting build (the number of
    allocations does not depend on the load, so these need no rising steps)."""
    SERVER_BIN[0], measured = ALLOC_BIN, SERVER_BIN[0]
    rows = []
    try:
        for name, flow, scenario, rate in [
            ("plain set-up", None, ("-sn", "uac"), 1000),
            ("VIP path (HTTP → REFER → NOTIFY → BYE)", "vip-refer.toml",
             ("-sf", os.path.join(ROOT, "tests", "sipp", "vip_refer.xml"), "-key", "caller", "+46706170786"), 500),
        ]:
            port = free_port()
            server = start_concierge(workdir, port, flow)
            try:
                res = step(workdir, server.pid, port, rate, 5, scenario)
                rows.append(f"| {name} at {rate}/s | {res.get('allocs_per_call') or 0:.0f} per call |")
            finally:
                stop(server)
        res = media_step(workdir, 200, 10)
        a, b = res.get("allocs_per_call_s"), res.get("allocs_per_call")
        rows.append(f"| concurrent media (200 calls, 10 s) | {a or 0:.1f} per call-second, {b or 0:.0f} per call |")
    finally:
        SERVER_BIN[0] = measured
    print("\n".join(rows), flush=True)
    return ["", "## Heap allocations", "",
            "From the build with `--features concierge/alloc-count` (a count beside the system allocator, read from "
            "/metrics), in short runs of its own: the CPU figures above come from the plain build.", "",
            "| workload | allocations |", "|---|---:|", *rows]


def commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine():
    """The CPU model and what one system call costs here (`perf bench syscall basic`, the
    median of three): runs on different hosts differ most in the kernel's cost per system
    call (its CPU and mitigations), which the RTP figures are made of."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    except OSError:
        pass
    costs = []
    for _ in range(3):
        try:
            out = subprocess.run(["perf", "bench", "syscall", "basic"], capture_output=True, text=True).stdout
        except OSError:
            break
        for line in out.splitlines():
            if "usecs/op" in line:
                try:
                    costs.append(float(line.split()[0]) * 1000)
                except ValueError:
                    pass
    if not costs:
        return model
    return f"{model}, a system call {statistics.median(costs):.0f} ns (`perf bench syscall basic`)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", type=float, default=30.0, help="seconds per rate step (default 30)")
    ap.add_argument("--rates", default="1000,2000,3000,4000,5000,6000,7000,8000", help="plain call rates to try, rising")
    ap.add_argument("--vip-rates", default="1000,2000,3000,4000", help="VIP-path call rates, rising")
    ap.add_argument("--redirect-rates", default="500,1000,2000,3000,4000", help="redirect call rates, rising")
    ap.add_argument("--media", default="1000,2000,3000,4000", help="concurrent media calls to try, rising")
    ap.add_argument("--media-hold", type=float, default=30.0, help="seconds each media call lasts from its answer")
    ap.add_argument("--sipp-media-max", type=int, default=1000,
                    help="largest N for the SIPp UAS reference (a thread per call; it saturates near 1,000-2,000)")
    ap.add_argument("--rounds", type=int, default=6,
                    help="plain set-up: the server and the SIPp UAS reference take turns in this many rounds of "
                         "step/rounds seconds, pooled (1: one step each, one after the other)")
    ap.add_argument("--skip-setup", action="store_true", help="only the concurrent media workload")
    ap.add_argument("--no-lean-floor", action="store_true", help="skip the lean floor (the pump on one epoll thread)")
    ap.add_argument("--no-alloc-count", action="store_true",
                    help="skip the allocation count (the counting build and its short runs)")
    ap.add_argument("--no-floor", action="store_true", help="skip both floors (a quick look at the server alone)")
    ap.add_argument("--server-bin", help="the concierge binary to measure (default: the release build), e.g. an "
                    "older commit's for a before/after comparison; implies --no-build for it")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"), help="where the table goes")
    ap.add_argument("--perf", type=float, default=0,
                    help="profile the server (perf record -g) this many seconds from each media step's ALL_UP; "
                         "the summary is printed and kept beside the results")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--rtp-ports", default="10000-60000",
                    help="the server's [rtp] port range, MIN-MAX (6,000 calls/s keep 24,000 ports resting)")
    ap.add_argument("--nofile", type=int, default=65536,
                    help="the server's open-files limit (capped at the hard limit); 1100 keeps no RTP socket parked")
    args = ap.parse_args()
    if not shutil.which("sipp"):
        sys.exit("sipp is required: apt-get install -y sip-tester")
    if not args.no_build:
        if not args.no_alloc_count:
            # The counting build is a copy of its own: its CPU figures would carry the count's
            # cost (two shared atomic additions per allocation, ~10 % of a call set-up).
            subprocess.run(["cargo", "build", "--release", "-p", "concierge", "--features", "concierge/alloc-count"],
                           cwd=ROOT, check=True)
            shutil.copy2(os.path.join(ROOT, "target/release/concierge"), ALLOC_BIN)
        subprocess.run(["cargo", "build", "--release", "-p", "concierge", "-p", "concierge-loadgen"],
                       cwd=ROOT, check=True)
    PERF["seconds"] = args.perf
    if args.server_bin:
        SERVER_BIN[0] = os.path.abspath(args.server_bin)
    RTP_PORTS[:] = [int(p) for p in args.rtp_ports.split("-")]
    NOFILE[0] = args.nofile
    rates = [int(r) for r in args.rates.split(",") if r]
    workdir = tempfile.mkdtemp(prefix="concierge-bench-")
    rows = []

    vip = ("-sf", os.path.join(ROOT, "tests", "sipp", "vip_refer.xml"), "-key", "caller", "+46706170786")
    redirect = ("-sf", os.path.join(ROOT, "bench", "sipp", "redirect.xml"), "-key", "caller", "+46706170786")
    workloads = [
        ("plain set-up", None, ("-sn", "uac"), [int(r) for r in args.rates.split(",") if r], True),
        ("VIP path (HTTP → REFER → NOTIFY → BYE)", "vip-refer.toml", vip, [int(r) for r in args.vip_rates.split(",") if r], False),
        ("redirect (HTTP → 302)", "redirect.toml", redirect, [int(r) for r in args.redirect_rates.split(",") if r], False),
    ]
    best = {}
    peak_rss = {}
    if args.skip_setup:
        workloads = []
    for name, flow, scenario, rates, with_reference in workloads:
        port = free_port()
        server = start_concierge(workdir, port, flow)
        ref = ref_port = None
        if with_reference:
            # SIPp's built-in UAS answers with the server's own messages: 180 and 200 at
            # once (no 100 Trying: both ring within §17.2.1's 200 ms), 200 to the BYE.
            ref_port = free_port()
            ref = start_sipp_uas(workdir, ref_port)
        try:
            # Uncounted: a fresh server binds each RTP port the first time it hands it out
            # (afterwards the port's socket is parked and taken over), and the first step
            # would carry those binds; every answering process gets the same warm-up.
            if rates:
                for answering in [p for p in (port, ref_port) if p]:
                    run_uac(workdir, answering, rates[0], WARM_UP_SECONDS, scenario, "-warm-up")
            for rate in rates:
                label = f"{name.split()[0]}-{rate}".replace("/", "")
                if ref:
                    res, refres = interleaved(
                        workdir, [(server.pid, port), (ref.pid, ref_port)],
                        rate, args.step, args.rounds, scenario, profile=label)
                else:
                    res = step(workdir, server.pid, port, rate, args.step, scenario, profile=label)
                    refres = None
                held = res["failed"] == 0 and res["ok"] >= rate * args.step * 0.99
                rows.append((name, rate, res, refres, held))
                print(f"{name} {rate}/s: ok={res['ok']} failed={res['failed']} cpu/call={res['cpu_us_per_call']} "
                      f"allocs/call={res.get('allocs_per_call')}"
                      + (f" | sipp uas cpu/call={refres['cpu_us_per_call']}" if refres else ""), flush=True)
                if not held:
                    break
                best[name] = rate
            peak_rss[name] = rss_kib(server.pid)
        finally:
            stop(server)
            if ref:
                ref.terminate()

    media_rows = []
    for n in [int(x) for x in args.media.split(",") if x]:
        res = media_step(workdir, n, args.media_hold)
        floor = {} if args.no_floor else floor_step(workdir, n, args.media_hold)
        lean = {} if args.no_lean_floor or args.no_floor else floor_step(workdir, n, args.media_hold, lean=True)
        ref = sipp_prompt_step(workdir, n, args.media_hold) if n <= args.sipp_media_max else {}
        media_rows.append((n, res, floor, lean, ref))
        if res.get("perf"):
            print(f"perf profile of the server at {n} calls ({res['perf_data']}):\n{res['perf']}", flush=True)
        print(f"media {n}: failed={res.get('failed')} {res.get('failures')} cpu/call-s={res.get('cpu_us_per_call_s')} "
              f"floor={floor.get('cpu_us_per_call_s')} lean floor={lean.get('cpu_us_per_call_s')} "
              f"loadgen={res.get('loadgen_us_per_call_s')} allocs/call-s={res.get('allocs_per_call_s')} "
              f"allocs/call={res.get('allocs_per_call')} rss/call={res.get('rss_per_call_kib')} "
              f"ns/packet={res.get('cpu_ns_per_packet')} udp drops={res.get('udp_receive_drops')} "
              f"rtp thread %={res.get('rtp_thread_pct')} other threads %={res.get('other_threads_pct')} "
              f"loadgen media thread %={res.get('loadgen_media_pct')} sent/received={res.get('rtp_sent')}/{res.get('rtp_received')} "
              f"jitter={res.get('jitter')} floor jitter={floor.get('jitter')} lean jitter={lean.get('jitter')} "
              f"sipp uas={ref.get('cpu_us_per_call_s')} failed={ref.get('failed')} {ref.get('failures')}", flush=True)
        if res.get("failed", 1) != 0:
            break

    lines = [
        f"# Benchmark results\n",
        f"{datetime.date.today().isoformat()} · {os.cpu_count()} cores ({machine()}) · commit {commit()} · "
        f"{args.step:.0f} s per step · `python3 bench/run.py --step {args.step:.0f}`\n",
        "| workload | calls/s | ok | failed | p50 ms | p99 ms | server CPU µs/call | SIPp UAS CPU µs/call | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    num = lambda v: "–" if v is None else f"{v:.0f}"
    for name, rate, res, refres, held in rows:
        c = res["cpu_us_per_call"]
        r = (refres or {}).get("cpu_us_per_call")
        ratio = f"{c / r:.2f}" if c and r else "–"
        lines.append(f"| {name}{'' if held else ' (failed)'} | {rate} | {res['ok']} | {res['failed']} | {ms(res['p50'])} | "
                     f"{ms(res['p99'])} | {c or 0:.0f} | {f'{r:.0f}' if r else '–'} | {ratio} |")
    lines.append("")
    for name, _, _, _, _ in workloads:
        lines.append(f"- {name}: highest rate held with 0 failed calls **{best.get(name, 0)} calls/s**; "
                     f"server peak RSS {peak_rss.get(name, 0) / 1024:.1f} MiB.")
    lines.append("")
    lines.append("p50/p99: SIPp response time (INVITE to the 200, to the REFER, or to the 302), in ms at SIPp's 1 ms "
                 "resolution. CPU µs/call: server user+system CPU during the step over successful calls. "
                 "A failed step is the first rate that did not hold. Each workload starts with "
                 f"{WARM_UP_SECONDS} s of calls at its first rate that are not counted (a fresh server binds each RTP port "
                 "the first time it hands it out), against the reference too. SIPp UAS: `sipp -sn uas`, which answers "
                 "with the server's own messages (180 and 200 at once, no 100 Trying; 200 to the BYE). The server and the "
                 f"reference answer the same `sipp -sn uac` at the same rate in {args.rounds} rounds of "
                 f"{args.step / args.rounds:.0f} s each, taking turns (server, UAS, again), each one's calls and CPU pooled "
                 "over its rounds, so a drift of the machine falls on both alike.")
    if media_rows:
        lines += [
            "",
            "## Concurrent media calls",
            "",
            f"{args.media_hold:.0f} s per call from its answer · reference flow, keypad path, REFER held to the end · "
            "`concierge-loadgen callers` against the server, `concierge-loadgen streams` against `concierge-loadgen pump` (the floor)",
            "",
            "| calls | failed | server CPU µs per call-second | floor µs per call-second | ratio | "
            "lean floor µs per call-second | ratio | SIPp UAS µs per call-second (failed) | ratio | "
            "server send jitter p50 / p99 / max ms | floor jitter p50 / p99 / max ms | lean floor jitter p50 / p99 / max ms | "
            "RSS per call KiB | server peak RSS MiB | "
            "server CPU ns per RTP packet | load generator µs per call-second | "
            "% of a core: server RTP thread / other server threads / load generator media thread | "
            "datagrams the kernel dropped | lean floor's dropped |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---|---:|---:|",
        ]
        for n, res, floor, lean, ref in media_rows:
            c, f, l = res.get("cpu_us_per_call_s"), floor.get("cpu_us_per_call_s"), lean.get("cpu_us_per_call_s")
            ratio = f"{c / f:.2f}" if c and f else "–"
            lean_ratio = f"{c / l:.2f}" if c and l else "–"
            rss = res.get("rss_per_call_kib")
            u = ref.get("cpu_us_per_call_s")
            uas = f"{num(u)} ({ref.get('failed', '–')})" if ref else "–"
            uas_ratio = f"{c / u:.2f}" if c and u else "–"
            lines.append(f"| {n} | {res.get('failed', '–')} | {num(c)} | {num(f)} | {ratio} | {num(l)} | {lean_ratio} | "
                         f"{uas} | {uas_ratio} | {jitter_ms(res)} | {jitter_ms(floor)} | {jitter_ms(lean)} | {num(rss)} | "
                         f"{res.get('peak_rss_mib', 0):.1f} | {num(res.get('cpu_ns_per_packet'))} | "
                         f"{num(res.get('loadgen_us_per_call_s'))} | {num(res.get('rtp_thread_pct'))} / "
                         f"{num(res.get('other_threads_pct'))} / {num(res.get('loadgen_media_pct'))} | "
                         f"{num(res.get('udp_receive_drops'))} | {num(lean.get('udp_receive_drops'))} |")
        lines += [
            "",
            "CPU per call-second: server user+system CPU between the moment all N calls were up and the "
            "first one ended, over N × that time. Jitter: |gap − 20 ms| between consecutive packets of "
            "the server as each caller's socket received them (the kernel's receive timestamps, so the "
            "callers' own scheduling is not in it); floor jitter is the same measure of the packet pumps' streams, so where both "
            "rise together the bound is the machine, not the server. The floor is `concierge-loadgen pump`, a "
            "tokio task and timer per port (the floor issue 22 states its targets against); the lean floor is "
            "`pump --lean`, the same ports on one epoll thread with one deadline heap (the bare system calls). "
            "CPU per RTP packet: the server's CPU between the same marks over the RTP packets it sent and received "
            "(its /metrics), which a starved server cannot flatter by sending less. Load generator: "
            "`concierge-loadgen callers`' own CPU between the marks, on the same two cores; % of a core: each "
            "thread's CPU between the same marks (the server's RTP thread makes its RTP system calls, the others "
            "run the switch and SIP; the load generator's media thread sends and reads every caller's RTP). "
            "Dropped: datagrams the kernel dropped for a full socket receive buffer during the whole step "
            "(/proc/net/snmp RcvbufErrors, on any socket of the machine: a reader that fell behind). RSS per call: resident memory "
            "growth from the idle server to all calls up. SIPp UAS: `bench/sipp/uas_prompt.xml`, SIPp answering "
            "the same callers (no transfer; they hang up after the hold) and playing the welcome prompt in a loop "
            "(play_pcap_audio, 20 ms PCMU), its CPU sampled the same way; it neither decodes the callers' audio "
            "nor runs a flow.",
        ]
    if os.path.exists(ALLOC_BIN) and not args.no_alloc_count and not args.server_bin:
        lines += alloc_section(workdir)
    table = "\n".join(lines) + "\n"
    print(table)
    with open(args.out, "w") as f:
        f.write(table)


if __name__ == "__main__":
    main()

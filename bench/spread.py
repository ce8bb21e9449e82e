#!/usr/bin/env python3
"""How far one run's figures move from run to run on this machine: the plain set-up against
SIPp's UAS, and the 4,000-call media step against the lean floor, each repeated with the two
sides alternated. `bench/run.py` takes each figure once; this script says how much a single
figure can be trusted.

    python3 bench/spread.py [--rounds 3] [--rates 1000,6000] [--step 20] [--media 4000]

Uses bench/run.py's helpers and the release binaries it builds (run it once first, or
`cargo build --release`)."""
import argparse
import statistics
import tempfile

import run as b


def plain(workdir, rates, rounds, seconds):
    port, ref_port = b.free_port(), b.free_port()
    server = b.start_concierge(workdir, port)
    ref = b.start_sipp_uas(workdir, ref_port)
    out = {}
    try:
        for rate in rates:
            for i in range(rounds):
                s = b.step(workdir, server.pid, port, rate, seconds)
                r = b.step(workdir, ref.pid, ref_port, rate, seconds)
                ratio = s["cpu_us_per_call"] / r["cpu_us_per_call"] if s["ok"] and r["ok"] else None
                out.setdefault(rate, []).append((s, r, ratio))
                print(f"plain {rate}/s round {i + 1}: server {s['cpu_us_per_call']:.1f} µs/call "
                      f"(failed {s['failed']}), sipp -sn uas {r['cpu_us_per_call']:.1f}, ratio {ratio:.2f}", flush=True)
    finally:
        b.stop(server)
        ref.terminate()
    return out


def media(workdir, n, rounds, hold):
    out = []
    for i in range(rounds):
        res = b.media_step(workdir, n, hold)
        lean = b.floor_step(workdir, n, hold, lean=True)
        out.append((res, lean))
        print(f"media {n} round {i + 1}: failed {res.get('failed')}, server {res['cpu_us_per_call_s']:.0f} µs per "
              f"call-second, jitter {b.jitter_ms(res)}, {res.get('udp_receive_drops')} datagrams dropped; "
              f"lean floor {lean['cpu_us_per_call_s']:.0f}, jitter {b.jitter_ms(lean)}, "
              f"{lean.get('udp_receive_drops')} dropped", flush=True)
    return out


def spread(values):
    values = [v for v in values if v is not None]
    return f"{min(values):.2f}–{max(values):.2f} (median {statistics.median(values):.2f})" if values else "–"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rates", default="1000,6000")
    ap.add_argument("--step", type=float, default=20)
    ap.add_argument("--media", type=int, default=4000, help="concurrent calls (0: skip)")
    ap.add_argument("--media-hold", type=float, default=30)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="concierge-spread-")
    rates = [int(r) for r in args.rates.split(",") if r]
    p = plain(workdir, rates, args.rounds, args.step) if rates else {}
    m = media(workdir, args.media, args.rounds, args.media_hold) if args.media else []
    print("\n| measure | runs | spread |\n|---|---:|---|")
    for rate, runs in p.items():
        print(f"| plain {rate}/s, server µs/call | {len(runs)} | {spread([s['cpu_us_per_call'] for s, _, _ in runs])} |")
        print(f"| plain {rate}/s, `sipp -sn uas` µs/call | {len(runs)} | {spread([r['cpu_us_per_call'] for _, r, _ in runs])} |")
        print(f"| plain {rate}/s, ratio | {len(runs)} | {spread([x for _, _, x in runs])} |")
    if m:
        p99 = lambda res: ((res.get("jitter") or {}).get("p99_us") or 0) / 1000 or None
        print(f"| media {args.media}, failed calls | {len(m)} | {', '.join(str(r.get('failed')) for r, _ in m)} |")
        drops = ", ".join(f"{r.get('udp_receive_drops')} / {l.get('udp_receive_drops')}" for r, l in m)
        print(f"| media {args.media}, datagrams the kernel dropped (server / lean floor) | {len(m)} | {drops} |")
        print(f"| media {args.media}, server jitter p99 ms | {len(m)} | {spread([p99(r) for r, _ in m])} |")
        print(f"| media {args.media}, lean floor jitter p99 ms | {len(m)} | {spread([p99(l) for _, l in m])} |")
        print(f"| media {args.media}, server / lean floor CPU | {len(m)} | "
              f"{spread([r['cpu_us_per_call_s'] / l['cpu_us_per_call_s'] for r, l in m])} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A PJSIP softphone (pjsua2 from PyPI) with only a TCP transport (or, with
--transport udp, only UDP; with --transport tls, only TLS, not verifying the server's
self-signed certificate), scripted. With --dtmf it keys those digits by RFC 2833
--dtmf-after seconds into the call; with --srtp it insists on SRTP, keyed over TLS only.

It calls URI over TCP, records what it hears to a WAV file, answers the REFER it gets
with 603 (it only observes it: its transport cannot reach the UDP target), listens a while
longer and hangs up. The last stdout line is a JSON summary:
  {"states": [...], "confirmed": bool, "refer_to": str|null, "disconnect_code": int,
   "rms": float, "tx_errors": [lines of PJSIP's log naming a failed send],
   "answer_to_refer_s": seconds from the 200 OK (the call confirmed) to the REFER | null}
PJSIP's own log goes to LOG (level 5: every message it sends and receives).
"""
import argparse
import sys
import time

import pjsua2 as pj

import phone


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--caller", default="+46706170786")
    ap.add_argument("--wav", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--after-refer", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--transport", choices=["tcp", "udp", "tls"], default="tcp")
    ap.add_argument("--dtmf", default="")
    ap.add_argument("--dtmf-after", type=float, default=2.0)
    ap.add_argument("--srtp", action="store_true",
                    help="insist on SRTP (SDES), keys only over secure signalling (TLS)")
    args = ap.parse_args()
    out = phone.new_summary(args.wav)

    kind = {"tcp": pj.PJSIP_TRANSPORT_TCP, "udp": pj.PJSIP_TRANSPORT_UDP,
            "tls": pj.PJSIP_TRANSPORT_TLS}[args.transport]
    ep, tid = phone.start_endpoint(args.log, 5, kind,
                                   verify_server=args.transport != "tls")
    acfg = phone.account_config(args.caller, tid)
    if args.srtp:
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        # 1: SDES keys only in SIP over TLS (sips or transport=tls).
        acfg.mediaConfig.srtpSecureSignaling = 1
    acc = phone.create_account(acfg)

    call = phone.Call(acc, out)
    call.makeCall(args.uri, pj.CallOpParam(True))
    hung_up = False
    keyed = not args.dtmf

    def step():
        nonlocal hung_up, keyed
        if not keyed and out.get("confirmed_at") \
                and time.monotonic() > out["confirmed_at"] + args.dtmf_after:
            keyed = True
            dp = pj.CallSendDtmfParam()
            dp.digits = args.dtmf
            dp.method = pj.PJSUA_DTMF_METHOD_RFC2833
            call.sendDtmf(dp)
        refer_at = out.get("refer_at")
        if not hung_up and refer_at and time.monotonic() > refer_at + args.after_refer:
            hung_up = True
            call.hangup(pj.CallOpParam(True))

    phone.run(ep, out, args.timeout, step)
    recorded = phone.stop_recording(call)
    del call
    ep.libDestroy()
    out["rms"] = phone.rms_of(args.wav, 0.0, 2.0) if recorded else 0.0
    confirmed_at = out.pop("confirmed_at", None)
    refer_at = out.pop("refer_at", None)
    out["answer_to_refer_s"] = (refer_at - confirmed_at
                                if refer_at is not None and confirmed_at is not None else None)
    out["tx_errors"] = phone.tx_errors(args.log)
    phone.print_summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A PJSIP softphone (pjsua2 from PyPI) that insists on SRTP (SDES keys in the SDP,
RFC 4568, over plain UDP signalling), scripted.

It calls URI, records what it hears to a WAV file, keys DIGITS by RFC 2833 once the call
has been up DIGITS_AFTER seconds, answers the REFER it gets with 603 (it only observes it),
listens a while longer and hangs up. The last stdout line is a JSON summary:
  {"states": [...], "confirmed": bool, "refer_to": str|null, "disconnect_code": int,
   "rms": float, "tx_errors": [...]}
PJSIP's own log goes to LOG (level 4: no SIP bodies, so no keys, are written there).
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
    ap.add_argument("--digits", default="101010")
    ap.add_argument("--digits-after", type=float, default=2.0)
    args = ap.parse_args()
    out = phone.new_summary(args.wav)

    # Level 4: no SIP bodies, so no keys, are written to the log.
    ep, tid = phone.start_endpoint(args.log, 4)
    acfg = phone.account_config(args.caller, tid)
    # SRTP or no call; SDES over plain UDP signalling (0: do not require sips/TLS).
    acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
    acfg.mediaConfig.srtpSecureSignaling = 0
    acc = phone.create_account(acfg)

    call = phone.Call(acc, out)
    call.makeCall(args.uri, pj.CallOpParam(True))
    hung_up = False
    dialled = False

    def step():
        nonlocal hung_up, dialled
        up_at = out.get("confirmed_at")
        if not dialled and up_at and time.monotonic() > up_at + args.digits_after:
            dialled = True
            # RFC 2833 telephone-events (PJSUA's default DTMF method), inside SRTP.
            call.dialDtmf(args.digits)
        refer_at = out.get("refer_at")
        if not hung_up and refer_at and time.monotonic() > refer_at + args.after_refer:
            hung_up = True
            call.hangup(pj.CallOpParam(True))

    phone.run(ep, out, args.timeout, step)
    recorded = phone.stop_recording(call)
    del call
    ep.libDestroy()
    out["rms"] = phone.rms_of(args.wav, 0.0, 2.0) if recorded else 0.0
    out.pop("refer_at", None)
    out.pop("confirmed_at", None)
    out["tx_errors"] = phone.tx_errors(args.log)
    phone.print_summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

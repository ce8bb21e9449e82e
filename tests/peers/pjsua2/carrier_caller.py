#!/usr/bin/env python3
"""A PJSIP softphone (pjsua2 from PyPI) configured as a carrier gateway would be: 100rel
mandatory (RFC 3262: every 18x must come reliably and is PRACKed) and session timers
required (RFC 4028). It calls URI over UDP, records what it hears from the first media
(early media included) to a WAV file, stays HOLD seconds after the call is confirmed and
hangs up. The last stdout line is a JSON summary:
  {"states": [...], "confirmed": bool, "disconnect_code": int,
   "early_rms": float, "rms": float}
where early_rms is the RMS of what was heard before the call was confirmed. PJSIP's own
log goes to LOG (level 5: every message it sends and receives).
"""
import argparse
import sys
import time

import pjsua2 as pj

import phone


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--caller", default="+46700000004")
    ap.add_argument("--wav", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--hold", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    out = phone.new_summary(args.wav)

    ep, tid = phone.start_endpoint(args.log, 5)
    acfg = phone.account_config(args.caller, tid)
    acfg.callConfig.prackUse = pj.PJSUA_100REL_MANDATORY
    acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_REQUIRED
    acfg.callConfig.timerSessExpiresSec = 90
    acfg.callConfig.timerMinSESec = 90
    acc = phone.create_account(acfg)

    call = phone.Call(acc, out, refuse_refer=False)
    call.makeCall(args.uri, pj.CallOpParam(True))
    hung_up = False

    def step():
        nonlocal hung_up
        at = out.get("confirmed_at")
        if not hung_up and at and time.monotonic() > at + args.hold:
            hung_up = True
            call.hangup(pj.CallOpParam(True))

    phone.run(ep, out, args.timeout, step)
    media_at = call.media_at
    recorded = phone.stop_recording(call)
    del call
    ep.libDestroy()
    confirmed_at = out.pop("confirmed_at", None)
    early = (confirmed_at - media_at) if (recorded and confirmed_at and media_at) else 0.0
    out["early_s"] = round(early, 2)
    # The first second of early media (the recorder starts with the media, before the 200).
    out["early_rms"] = (phone.rms_of(args.wav, 0.2, min(1.0, max(early - 0.2, 0.0)))
                        if early > 0.4 else 0.0)
    out["rms"] = phone.rms_of(args.wav, 0.0, 30.0) if recorded else 0.0
    phone.print_summary(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

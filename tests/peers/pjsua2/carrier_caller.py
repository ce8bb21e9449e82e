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
import json
import math
import struct
import sys
import time
import wave

import pjsua2 as pj


class Call(pj.Call):
    def __init__(self, acc, out):
        super().__init__(acc)
        self.out = out
        self.recorder = None
        self.media_at = None

    def onCallState(self, prm):
        ci = self.getInfo()
        self.out["states"].append(ci.stateText)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not self.out["confirmed"]:
            self.out["confirmed"] = True
            self.out["confirmed_at"] = time.monotonic()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.out["disconnect_code"] = ci.lastStatusCode
            self.out["done"] = True

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.recorder is None:
                    self.media_at = time.monotonic()
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.out["wav"])
                    self.getAudioMedia(i).startTransmit(self.recorder)


def rms_of(path, start, seconds):
    """RMS of `seconds` of a 16-bit WAV from `start` (0 for silence or no audio)."""
    try:
        with wave.open(path, "rb") as w:
            rate = w.getframerate()
            w.setpos(min(w.getnframes(), int(rate * start)))
            frames = w.readframes(int(rate * seconds))
            width = w.getsampwidth()
    except (OSError, EOFError, wave.Error):
        return 0.0
    if width != 2 or not frames:
        return 0.0
    samples = struct.unpack("<%dh" % (len(frames) // 2), frames)
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--caller", default="+46700000004")
    ap.add_argument("--wav", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--hold", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    out = {"states": [], "confirmed": False, "disconnect_code": 0, "done": False,
           "wav": args.wav}

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.filename = args.log
    cfg.medConfig.hasIoqueue = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    acfg = pj.AccountConfig()
    acfg.idUri = "sip:%s@127.0.0.1" % args.caller
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.port = 0
    acfg.callConfig.prackUse = pj.PJSUA_100REL_MANDATORY
    acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_REQUIRED
    acfg.callConfig.timerSessExpiresSec = 90
    acfg.callConfig.timerMinSESec = 90
    acc = pj.Account()
    acc.create(acfg)

    call = Call(acc, out)
    call.makeCall(args.uri, pj.CallOpParam(True))
    deadline = time.monotonic() + args.timeout
    hung_up = False
    while time.monotonic() < deadline and not out["done"]:
        ep.libHandleEvents(20)
        at = out.get("confirmed_at")
        if not hung_up and at and time.monotonic() > at + args.hold:
            hung_up = True
            call.hangup(pj.CallOpParam(True))
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ep.libHandleEvents(20)
    media_at = call.media_at
    recorded = call.recorder is not None
    call.recorder = None
    del call
    ep.libDestroy()
    confirmed_at = out.pop("confirmed_at", None)
    early = (confirmed_at - media_at) if (recorded and confirmed_at and media_at) else 0.0
    out["early_s"] = round(early, 2)
    # The first second of early media (the recorder starts with the media, before the 200).
    out["early_rms"] = rms_of(args.wav, 0.2, min(1.0, max(early - 0.2, 0.0))) if early > 0.4 else 0.0
    out["rms"] = rms_of(args.wav, 0.0, 30.0) if recorded else 0.0
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

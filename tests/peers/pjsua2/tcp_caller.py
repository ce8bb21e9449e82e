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

    def onCallState(self, prm):
        ci = self.getInfo()
        self.out["states"].append(ci.stateText)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.out["confirmed"] = True
            self.out.setdefault("confirmed_at", time.monotonic())
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.out["disconnect_code"] = ci.lastStatusCode
            self.out["done"] = True

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                if self.recorder is None:
                    self.recorder = pj.AudioMediaRecorder()
                    self.recorder.createRecorder(self.out["wav"])
                    self.getAudioMedia(i).startTransmit(self.recorder)

    def onCallTransferRequest(self, prm):
        self.out["refer_to"] = prm.dstUri
        self.out["refer_at"] = time.monotonic()
        prm.statusCode = 603


def rms_of(path, seconds):
    """RMS of the first `seconds` of a 16-bit WAV (0 for silence)."""
    try:
        with wave.open(path, "rb") as w:
            n = min(w.getnframes(), int(w.getframerate() * seconds))
            frames = w.readframes(n)
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
    out = {"states": [], "confirmed": False, "refer_to": None, "disconnect_code": 0,
           "done": False, "wav": args.wav}

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
    kind = {"tcp": pj.PJSIP_TRANSPORT_TCP, "udp": pj.PJSIP_TRANSPORT_UDP,
            "tls": pj.PJSIP_TRANSPORT_TLS}[args.transport]
    if args.transport == "tls":
        # The demo's certificate is self-signed: encrypted, not authenticated.
        tcfg.tlsConfig.verifyServer = False
    tid = ep.transportCreate(kind, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()

    acfg = pj.AccountConfig()
    acfg.idUri = "sip:%s@127.0.0.1" % args.caller
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    # Any free RTP port (PJSIP's default 4000 would clash between parallel runs).
    acfg.mediaConfig.transportConfig.port = 0
    if args.srtp:
        acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        # 1: SDES keys only in SIP over TLS (sips or transport=tls).
        acfg.mediaConfig.srtpSecureSignaling = 1
    acc = pj.Account()
    acc.create(acfg)

    call = Call(acc, out)
    prm = pj.CallOpParam(True)
    call.makeCall(args.uri, prm)
    deadline = time.monotonic() + args.timeout
    hung_up = False
    keyed = not args.dtmf
    while time.monotonic() < deadline and not out["done"]:
        ep.libHandleEvents(20)
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
    # Let the BYE's answer and the last log lines through.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ep.libHandleEvents(20)
    recorded = call.recorder is not None
    call.recorder = None
    del call
    # The WAV's header is complete once the recorder and the library are gone.
    ep.libDestroy()
    out["rms"] = rms_of(args.wav, 2.0) if recorded else 0.0
    confirmed_at = out.pop("confirmed_at", None)
    refer_at = out.pop("refer_at", None)
    out["answer_to_refer_s"] = (refer_at - confirmed_at
                                if refer_at is not None and confirmed_at is not None else None)
    try:
        with open(args.log) as f:
            out["tx_errors"] = [l.strip() for l in f
                                if "Unsupported transport" in l or "Error sending" in l]
    except OSError:
        out["tx_errors"] = []
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the scripted PJSIP softphones (pjsua2 from PyPI) share: the call that records
what it hears and notes its states, the endpoint and account set-up, the event loop, and
the summary's measures. Each script (tcp_caller, srtp_caller, carrier_caller) only says
how its phone is configured and what it does during the call.

Every script prints one JSON line last: the `out` dict a `Call` fills (states, confirmed,
disconnect_code, refer_to, …) plus the script's measures.
"""
import json
import math
import struct
import time
import wave

import pjsua2 as pj


class Call(pj.Call):
    """An outgoing call that fills `out`: every state's text, `confirmed` (and when),
    `disconnect_code`, `done`; it records the audio it receives to `out["wav"]` from the
    first active media (early media included, `media_at`). With `refuse_refer` it answers a
    REFER with 603, noting its target (`refer_to`, `refer_at`): it only observes it."""

    def __init__(self, acc, out, refuse_refer=True):
        super().__init__(acc)
        self.out = out
        self.recorder = None
        self.media_at = None
        self.refuse_refer = refuse_refer

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
                    self.media_at = time.monotonic()

    def onCallTransferRequest(self, prm):
        if not self.refuse_refer:
            return
        self.out["refer_to"] = prm.dstUri
        self.out["refer_at"] = time.monotonic()
        prm.statusCode = 603


def new_summary(wav):
    """The summary a `Call` fills, before the call."""
    return {"states": [], "confirmed": False, "refer_to": None, "disconnect_code": 0,
            "done": False, "wav": wav}


def start_endpoint(log, level, kind=pj.PJSIP_TRANSPORT_UDP, verify_server=True):
    """A started PJSIP endpoint with one transport of `kind` on 127.0.0.1 (any free port)
    and no sound device; its log (at `level`; 5 shows every message) goes to `log`.
    Returns (endpoint, transport id)."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = level
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.filename = log
    cfg.medConfig.hasIoqueue = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = "127.0.0.1"
    if not verify_server:
        # A self-signed certificate (the demo's): encrypted, not authenticated.
        tcfg.tlsConfig.verifyServer = False
    tid = ep.transportCreate(kind, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    return ep, tid


def account_config(caller, tid):
    """An account calling as `caller`@127.0.0.1 over transport `tid`, its RTP on any free
    port of 127.0.0.1 (PJSIP's default 4000 would clash between parallel runs). The
    caller adjusts it (SRTP, 100rel, timers) before `create_account`."""
    acfg = pj.AccountConfig()
    acfg.idUri = "sip:%s@127.0.0.1" % caller
    acfg.sipConfig.transportId = tid
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.port = 0
    return acfg


def create_account(acfg):
    acc = pj.Account()
    acc.create(acfg)
    return acc


def run(ep, out, timeout, step):
    """Handles PJSIP's events until the call is over or `timeout` s passed, calling
    `step()` between turns (it keys digits, hangs up …); then lets the last messages and
    log lines through for half a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not out["done"]:
        ep.libHandleEvents(20)
        step()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ep.libHandleEvents(20)


def stop_recording(call):
    """Drops the call's recorder; returns whether it recorded anything. The WAV's header
    is complete only once the recorder and then the library are gone: the script deletes
    its call and destroys the library next (`ep.libDestroy()`), in that order."""
    recorded = call.recorder is not None
    call.recorder = None
    return recorded


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


def tx_errors(log):
    """Lines of PJSIP's log naming a send that failed (a transport it could not use)."""
    try:
        with open(log) as f:
            return [l.strip() for l in f
                    if "Unsupported transport" in l or "Error sending" in l]
    except OSError:
        return []


def print_summary(out):
    print(json.dumps(out), flush=True)

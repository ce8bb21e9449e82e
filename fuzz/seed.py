#!/usr/bin/env python3
"""Writes the seed corpora of every fuzz target into fuzz/corpus/<target>/.

Seeds are made from the project's own vectors: the RFC 4475 torture messages in
crates/sip/tests/torture/, the messages SIPp sends in tests/sipp/*.xml (keywords filled in
as SIPp would), the shipped flows, and a few hand-written RTP / INFO / Digest samples.
The fuzzer grows that corpus (minimised with `cargo fuzz cmin`).
Run from the repository root: python3 fuzz/seed.py
"""
import glob, hashlib, os, re, struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


KEYWORDS = {
    "remote_ip": "127.0.0.1", "remote_port": "5060", "local_ip": "127.0.0.1",
    "local_port": "5070", "transport": "UDP", "branch": "z9hG4bK-1-0", "pid": "4242",
    "call_number": "1", "call_id": "1-4242@127.0.0.1", "caller": "+46706170786",
    "local_ip_type": "4", "media_ip_type": "4", "media_ip": "127.0.0.1",
    "media_port": "6000", "next_url": "sip:ivr@127.0.0.1:5060", "peer_tag_param": ";tag=abc",
    "service": "ivr", "cseq": "2",
}


def sipp_messages():
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "sipp", "*.xml"))):
        text = open(path, encoding="latin-1").read()
        for block in re.findall(r"<!\[CDATA\[(.*?)\]\]>", text, re.S):
            lines = [l.strip() for l in block.strip("\n").split("\n")]
            msg = "\r\n".join(lines).strip("\r\n")
            head, _, body = msg.partition("\r\n\r\n")
            body = body + "\r\n" if body else ""
            head = re.sub(r"\[last_([A-Za-z-]+):\]", lambda m: f"{m.group(1)}: x", head)
            head = head.replace("[len]", str(len(body)))
            def fill(m):
                return KEYWORDS.get(m.group(1), "1")
            head = re.sub(r"\[\$?([A-Za-z_]+)\]", fill, head)
            body = re.sub(r"\[\$?([A-Za-z_]+)\]", fill, body)
            yield (head + "\r\n\r\n" + body).encode()


def torture():
    for path in sorted(glob.glob(os.path.join(ROOT, "crates", "sip", "tests", "torture", "*", "*.sip"))):
        yield open(path, "rb").read()


HOSTILE = [
    b"OPTIONS sip:a@127.0.0.1 SIP\xc3\xa9/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\r\n",
    b"OPTI\xc3\xa9NS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\r\n",
    b"SIP/2.0 2\xc3\xa900 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\r\n",
    b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nV\xc3\xada: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\r\n",
]


def main():
    msgs = list(torture()) + list(sipp_messages()) + HOSTILE
    for m in msgs:
        put("sip_datagram", m)
    for i, m in enumerate(msgs):
        if b"Content-Length" in m or b"\r\nl:" in m:
            put("sip_stream", bytes([1 + (i * 37) % 200]) + m + b"\r\n\r\n" + m)
    for m in msgs:
        _, _, body = m.partition(b"\r\n\r\n")
        if body.startswith(b"v=0"):
            put("sdp_offer_answer", body)
    put("sdp_offer_answer", b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=ptime:30\r\na=sendonly\r\n"
        b"m=video 4002 RTP/AVP 31\r\n")
    # RTP: a PCMU frame, then the three end packets of key 5 at payload type 101.
    def rtp(pt, seq, ts, payload, marker=False):
        return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, 0x1234) + payload
    pkts = [rtp(0, 1, 160, b"\xff" * 20)]
    pkts += [rtp(101, 2 + i, 320, bytes([5, 0x0a | (0x80 if i else 0), 0, 160]), marker=(i == 0)) for i in range(4)]
    pkts.append(bytes([0x80, 200, 0, 1]) + b"\0" * 8)  # RTCP
    put("rtp_events", b"".join(bytes([len(p)]) + p for p in pkts))
    put("rtp_events", b"".join(struct.pack("!IB", 320 + 160 * i, i == 0) + bytes([i % 16, 0x80, 0, 160]) for i in range(8)))
    for body in [b"\x00Signal=5\r\nDuration=160\r\n", b"\x01#", b"\x02signal= 11\n", b"\x03x", b"\x00Signal=10"]:
        put("info_body", body)
    for ch in [
        b'Digest realm="atlanta.example.com", nonce="84a4cc6f3082121f32b42a2187831a9e", qop="auth", algorithm=MD5',
        b'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth,auth-int", opaque="o", stale=TRUE\n'
        b'Digest realm="r", nonce="n"',
        b'Basic realm="x"',
        b'Digest realm="a\\"b", nonce=abc, qop=auth-int',
    ]:
        put("digest_challenge", ch)
    body = b'{"customer": {"number": "+46706170786", "hasVIPMembership": true, "tier": "gold"}}'
    for path in sorted(glob.glob(os.path.join(ROOT, "config", "flows", "*.toml"))):
        put("flow_toml", open(path, "rb").read() + b"\0" + body)
    print("seeds in", OUT)


main()

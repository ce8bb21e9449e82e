#!/usr/bin/env python3
"""Verifies Concierge's signed transfer context (the X-Concierge-Token header).

When a flow's transfer carries variables (X-Concierge-Tier …), Concierge adds
X-Concierge-Call-Id, X-Concierge-Caller and X-Concierge-Token. A REFER's Refer-To passes
through the caller's phone, which could change the tier on the way; the token lets the
queue side (or a proxy in front of it) check that Concierge set these values, for this
call, recently.

Token: v1;exp=<unix seconds>;h=<header names, lowercase, comma-separated>;sig=<hex>
  sig = HMAC-SHA256(key, "v1\\n" + exp + "\\n" + "".join(name + ":" + value + "\\n" for name in h))
The key is the value of the environment variable (the same bytes Concierge read).

Usage:
  CONCIERGE_TRANSFER_KEY=... verify_transfer_token.py --uri '<sip:vip@q?X-Concierge-Tier=gold&...>'
  CONCIERGE_TRANSFER_KEY=... verify_transfer_token.py < invite.txt   # the INVITE as received
Exit status: 0 valid (the signed headers are printed), 1 invalid or expired, 2 usage error.
"""

import argparse
import hashlib
import hmac
import os
import sys
import time
import urllib.parse


def headers_from_uri(uri):
    """URI headers (RFC 3261 §19.1.1) of a Refer-To / Contact value, unescaped."""
    uri = uri.strip()
    if uri.startswith("<"):
        uri = uri[1 : uri.index(">")]
    if "?" not in uri:
        return []
    query = uri.split("?", 1)[1]
    out = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        # Not unquote_plus: a '+' is a literal plus (E.164), not a space.
        out.append((urllib.parse.unquote(name), urllib.parse.unquote(value)))
    return out


def headers_from_message(text):
    """Header fields of a SIP message, up to the blank line (folded lines joined)."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n")[1:]:
        if not line.strip():
            break
        if line[0] in " \t" and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return out


def verify(headers, key, now):
    """Returns (ok, message)."""
    by_name = {}
    for name, value in headers:
        lname = name.lower()
        if lname in by_name:
            return False, f"header {name} appears twice"
        by_name[lname] = value
    token = by_name.get("x-concierge-token")
    if token is None:
        return False, "no X-Concierge-Token"
    fields = dict(p.partition("=")[::2] for p in token.split(";")[1:])
    if not token.startswith("v1;") or not {"exp", "h", "sig"} <= fields.keys():
        return False, "not a v1 token"
    try:
        exp = int(fields["exp"])
    except ValueError:
        return False, "bad expiry"
    names = fields["h"].split(",") if fields["h"] else []
    message = f"v1\n{exp}\n"
    for name in names:
        if name not in by_name:
            return False, f"signed header {name} is missing"
        message += f"{name}:{by_name[name]}\n"
    expected = hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["sig"]):
        return False, "signature does not match (altered, or another key)"
    if now > exp:
        return False, f"expired {now - exp} s ago"
    return True, "\n".join(f"{n}: {by_name[n]}" for n in names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri", help="a Refer-To or Contact URI with headers")
    ap.add_argument("--key-env", default="CONCIERGE_TRANSFER_KEY")
    ap.add_argument("--now", type=int, help="unix time to check the expiry against")
    args = ap.parse_args()
    key = os.environ.get(args.key_env)
    if not key:
        print(f"the environment variable {args.key_env} is not set", file=sys.stderr)
        return 2
    headers = headers_from_uri(args.uri) if args.uri else headers_from_message(sys.stdin.read())
    ok, message = verify(headers, key.encode(), args.now if args.now is not None else int(time.time()))
    print(("valid\n" if ok else "INVALID: ") + message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

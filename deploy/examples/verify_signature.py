#!/usr/bin/env python3
"""Verify a Freya webhook delivery or tool request (Python standard library only).

Webhook deliveries and agent tool requests from Freya carry

    Freya-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

Copy `verify` into your server and call it with the raw request body (bytes, before any JSON
parsing) and the header's value. Run as a script to check a captured request:

    python3 verify_signature.py --secret SECRET --signature 't=...,v1=...' --body-file body.json

Exit status 0 means the signature is valid, 1 that it is not (the reason is printed).
"""

import argparse
import hashlib
import hmac
import sys
import time

TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """The request was not signed by Freya with this secret, or is too old (or too new)."""


def verify(secret, header, body, now=None, tolerance=TOLERANCE_SECONDS):
    """Returns the request's timestamp, or raises InvalidSignature.

    secret: your webhook `secret` or agent `tool_secret` (str or bytes)
    header: the value of the Freya-Signature header
    body:   the raw request body, bytes
    """
    if isinstance(secret, str):
        secret = secret.encode()
    if not secret:
        raise InvalidSignature("empty secret")
    timestamp = None
    signatures = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise InvalidSignature("malformed header")
        if key == "t":
            if not value.isdigit():
                raise InvalidSignature("malformed timestamp")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("malformed header")
    now = int(time.time()) if now is None else int(now)
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(f"timestamp is {abs(now - timestamp)} s away from now")
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise InvalidSignature("signature does not match")
    return timestamp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--signature", required=True, help="the Freya-Signature header value")
    parser.add_argument("--body-file", required=True, help="the raw request body")
    parser.add_argument("--now", type=int, help="the receiver's clock, in unix seconds")
    args = parser.parse_args()
    with open(args.body_file, "rb") as f:
        body = f.read()
    try:
        verify(args.secret, args.signature, body, now=args.now)
    except InvalidSignature as e:
        print(f"rejected: {e}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

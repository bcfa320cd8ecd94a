#!/usr/bin/python3
"""Print a web identity token for the local AWS (tests/kms/kms-server.py):
an HS256-signed JWT as an OIDC provider (EKS, GitHub, ...) would issue it,
signed with the key of a config "oidc_providers" entry.

Usage: make-jwt.py --key-b64 K --iss URL --sub S --aud A --ttl SECONDS
A negative --ttl gives a token that has already expired.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(key, iss, sub, aud, ttl, now=None):
    """The compact JWT (header.claims.signature) for these claims."""
    now = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT", "kid": "cryptvol-test"}
    claims = {"iss": iss, "sub": sub, "aud": aud, "iat": now, "nbf": now, "exp": now + ttl}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64url(json.dumps(claims, separators=(",", ":")).encode()))
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Make an HS256 web identity token (JWT).")
    ap.add_argument("--key-b64", required=True, help="the provider's HS256 key, base64")
    ap.add_argument("--iss", required=True, help="issuer URL (the provider's \"issuer\")")
    ap.add_argument("--sub", required=True, help="subject, e.g. system:serviceaccount:ns:sa")
    ap.add_argument("--aud", default="sts.amazonaws.com", help="audience")
    ap.add_argument("--ttl", type=int, default=3600,
                    help="seconds until it expires; negative: already expired")
    opts = ap.parse_args(argv)
    try:
        key = base64.b64decode(opts.key_b64, validate=True)
    except ValueError:
        ap.error("--key-b64 is not base64")
    # No newline: a token file is read whole, as kubelet writes it.
    sys.stdout.write(make_jwt(key, opts.iss, opts.sub, opts.aud, opts.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())

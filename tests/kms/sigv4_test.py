#!/usr/bin/python3
"""The local test KMS's SigV4 verification, checked against fixed vectors.

Run by tests/integration/test-kms-server-sigv4.sh, which makes the test CA,
starts the servers (and stops them with a trap) and passes them in the
environment:
  KMS_CA            CA certificate of the servers
  KMS_PORT_NOSKEW   a server started with --no-clock-skew-check
  KMS_PORT_SKEW     a server with the normal 15-minute clock-skew check
  KMS_CONFIG        the config file both servers read (rewritten here)
  SIGV4_SHARED      optional: ../shared/vectors/sigv4, for AWS's own suites
Without KMS_PORT_* only the in-process checks run.
"""

import glob
import hashlib
import http.client
import importlib.util
import json
import os
import ssl
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("kms_server", os.path.join(HERE, "kms-server.py"))
ks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ks)

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
KMS_TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
VECTOR_TIME = 1440938160.0  # 20150830T123600Z


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def parse_http(text):
    """A request file of the suites -> (method, target, [(name, value)], body)."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    pairs = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and pairs:  # folded continuation line
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        pairs.append((name, value.strip()))
    return method, target, pairs, body.encode("utf-8")


def auth_params(authz):
    params = {}
    for part in authz.split(" ", 1)[1].split(","):
        k, _, v = part.strip().partition("=")
        params[k] = v
    return params


class Case:
    """One vector: the signed request plus the expected creq, sts, signature."""

    def __init__(self, name, service, region, sreq, creq, sts, sig):
        self.name, self.service, self.region = name, service, region
        self.method, self.target, pairs, self.body = parse_http(sreq)
        self.auth = next(v for n, v in pairs if n.lower() == "authorization")
        self.pairs = [(n, v) for n, v in pairs if n.lower() != "authorization"]
        self.all_pairs = pairs
        self.creq, self.sts, self.sig = creq, sts.strip(), sig.strip()
        self.token = next((v for n, v in pairs if n.lower() == "x-amz-security-token"), None)

    def cred(self, secret=SECRET):
        c = {"access_key_id": AKID, "secret_access_key": secret}
        if self.token:
            c["session_token"] = self.token
        return c


def aws4_cases(root, service, prefix=""):
    """aws4_testsuite layout: CASE/CASE.{sreq,creq,sts,authz}, nested dirs too."""
    out = []
    for sreq in sorted(glob.glob(os.path.join(root, prefix + "*", "**", "*.sreq"),
                                 recursive=True)):
        base = sreq[:-5]
        out.append(Case(os.path.relpath(base, root), service, "us-east-1", read(sreq),
                        read(base + ".creq"), read(base + ".sts"),
                        auth_params(read(base + ".authz").strip())["Signature"]))
    return out


def c_auth_cases(root):
    """aws-c-auth layout: CASE/context.json + header-*.txt; POST cases only."""
    out = []
    for d in sorted(glob.glob(os.path.join(root, "post-*"))):
        ctx = json.loads(read(os.path.join(d, "context.json")))
        if ctx.get("omit_session_token") or not ctx.get("normalize", True):
            continue
        f = lambda n: read(os.path.join(d, n))
        out.append(Case(os.path.basename(d), ctx["service"], ctx["region"],
                        f("header-signed-request.txt"), f("header-canonical-request.txt"),
                        f("header-string-to-sign.txt"), f("header-signature.txt")))
    return out


KMS_CASES = aws4_cases(os.path.join(HERE, "vectors", "kms-generated"), "kms")
SHARED = os.environ.get("SIGV4_SHARED")
SHARED_CASES = []
if SHARED and os.path.isdir(SHARED):
    SHARED_CASES = (aws4_cases(os.path.join(SHARED, "aws4_testsuite"), "service", "post-")
                    + c_auth_cases(os.path.join(SHARED, "aws-c-auth-v4")))


def verify(case, **kw):
    cred = kw.pop("cred", case.cred())
    pairs = kw.pop("pairs", case.all_pairs)
    body = kw.pop("body", case.body)
    regions = kw.pop("regions", [case.region])
    kw.setdefault("check_skew", False)
    return ks.verify_sigv4(case.method, case.target, pairs, body,
                           lambda a: cred if a == cred["access_key_id"] else None,
                           regions, service=case.service, **kw)


class InProcess(unittest.TestCase):
    """The verifier's canonical request, string to sign and signature equal the
    vectors', and each signed request is accepted; altered ones are not."""

    def test_have_vectors(self):
        self.assertEqual(len(KMS_CASES), 4)

    def check_case(self, case):
        params = auth_params(case.auth)
        signed = params["SignedHeaders"].split(";")
        path, _, query = case.target.partition("?")
        payload = hashlib.sha256(case.body).hexdigest()
        creq = ks.canonical_request(case.method, path, query, case.pairs, signed, payload)
        self.assertEqual(creq, case.creq.rstrip("\n"), "canonical request")
        amz_date = next(v for n, v in case.pairs if n.lower() == "x-amz-date")
        scope = f"{amz_date[:8]}/{case.region}/{case.service}/aws4_request"
        sts = ks.string_to_sign(amz_date, scope, creq)
        self.assertEqual(sts, case.sts, "string to sign")
        sig = ks.signature(SECRET, amz_date[:8], case.region, case.service, sts)
        self.assertEqual(sig, case.sig, "signature")
        self.assertEqual(params["Signature"], case.sig)
        # The whole verification path accepts the signed request ...
        cred, region = verify(case)
        self.assertEqual(region, case.region)
        # ... at its own date with the skew check on, too,
        verify(case, check_skew=True, now=VECTOR_TIME + 14 * 60)
        # and rejects it when it is stale, early, altered, or signed otherwise.
        self.assert_rejected(case, "InvalidSignatureException", "Signature expired",
                             check_skew=True)
        self.assert_rejected(case, "InvalidSignatureException", "Signature expired",
                             check_skew=True, now=VECTOR_TIME + 16 * 60)
        self.assert_rejected(case, "InvalidSignatureException", "not yet current",
                             check_skew=True, now=VECTOR_TIME - 16 * 60)
        self.assert_rejected(case, "InvalidSignatureException", "does not match",
                             body=case.body + b" ")
        if case.body:
            flipped = bytes([case.body[0] ^ 1]) + case.body[1:]
            self.assert_rejected(case, "InvalidSignatureException", "does not match",
                                 body=flipped)
        bad = dict(case.cred(), secret_access_key=SECRET[:-1] + "X")
        self.assert_rejected(case, "InvalidSignatureException", "does not match", cred=bad)
        other = dict(case.cred(), access_key_id="AKIDOTHER")
        self.assert_rejected(case, "UnrecognizedClientException", None, cred=other)
        self.assert_rejected(case, "InvalidSignatureException", "valid region",
                             regions=["eu-west-1"])
        # A signed header's value changed.
        altered = [(n, v + "x") if n.lower() == "host" else (n, v) for n, v in case.all_pairs]
        self.assert_rejected(case, "InvalidSignatureException", "does not match", pairs=altered)
        if case.token:
            notoken = [(n, v) for n, v in case.all_pairs
                       if n.lower() != "x-amz-security-token"]
            self.assert_rejected(case, "UnrecognizedClientException", None, pairs=notoken)
            wrong = dict(case.cred(), session_token=case.token[:-1] + "0")
            self.assert_rejected(case, "UnrecognizedClientException", None, cred=wrong)
        else:
            self.assert_rejected(case, "UnrecognizedClientException", None,
                                 cred=dict(case.cred(), session_token="expected-token"))

    def assert_rejected(self, case, etype, text, **kw):
        with self.assertRaises(ks.KMSError) as cm:
            verify(case, **kw)
        self.assertEqual(cm.exception.etype, etype, cm.exception.message)
        if text:
            self.assertIn(text, cm.exception.message)

    def test_kms_generated(self):
        for case in KMS_CASES:
            with self.subTest(case=case.name):
                self.check_case(case)

    @unittest.skipUnless(SHARED_CASES, "SIGV4_SHARED not set or absent")
    def test_shared_aws_suites_post(self):
        for case in SHARED_CASES:
            with self.subTest(case=case.name):
                self.check_case(case)
        print(f"\n  shared AWS POST cases checked: {len(SHARED_CASES)}")

    def test_content_sha256_header_must_match_body(self):
        case = KMS_CASES[0]
        pairs = case.all_pairs + [("X-Amz-Content-Sha256", "0" * 64)]
        self.assert_rejected(case, "InvalidSignatureException", "x-amz-content-sha256",
                             pairs=pairs)

    def test_missing_or_malformed_authorization(self):
        case = KMS_CASES[0]
        noauth = [(n, v) for n, v in case.all_pairs if n.lower() != "authorization"]
        self.assert_rejected(case, "MissingAuthenticationTokenException", None, pairs=noauth)
        other = noauth + [("Authorization", "AWS4-HMAC-SHA1 Credential=x")]
        self.assert_rejected(case, "IncompleteSignatureException", None, pairs=other)
        nohost = noauth + [("Authorization", case.auth.replace("content-type;host;",
                                                               "content-type;"))]
        self.assert_rejected(case, "InvalidSignatureException", "Host", pairs=nohost)


@unittest.skipUnless(os.environ.get("KMS_PORT_NOSKEW"), "no server started")
class OverHTTPS(unittest.TestCase):
    """The same signed requests sent to the running server over TLS."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = ssl.create_default_context(cafile=os.environ["KMS_CA"])
        cls.config = os.environ["KMS_CONFIG"]

    def write_config(self, token):
        cred = {"access_key_id": AKID, "secret_access_key": SECRET}
        if token:
            cred["session_token"] = token
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"account_id": "111122223333", "regions": ["us-east-1"],
                       "credentials": [cred]}, f)
        os.replace(tmp, self.config)  # reloaded: its mtime and size change

    def send(self, port, case, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=self.ctx,
                                           timeout=30)
        body = case.body if body is None else body
        try:
            conn.putrequest(case.method, case.target, skip_host=True,
                            skip_accept_encoding=True)
            for n, v in case.all_pairs:
                conn.putheader(n, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            self.assertTrue(r.getheader("x-amzn-RequestId"), "x-amzn-RequestId")
            return r.status, json.loads(data or b"{}"), r.getheader("x-amzn-ErrorType")
        finally:
            conn.close()

    def expect(self, port, case, etype, body=None, text=None):
        status, doc, hdr = self.send(port, case, body)
        self.assertEqual(status, 400, doc)
        self.assertEqual(doc.get("__type"), etype, doc)
        self.assertEqual(hdr, etype)
        if text:
            self.assertIn(text, doc.get("message", ""))

    def test_signed_requests(self):
        noskew, skew = os.environ["KMS_PORT_NOSKEW"], os.environ["KMS_PORT_SKEW"]
        plain = [c for c in KMS_CASES if not c.token]
        tokened = [c for c in KMS_CASES if c.token]
        self.assertEqual((len(plain), len(tokened)), (3, 1))
        for token in (None, KMS_TOKEN):
            self.write_config(token)
            for case in KMS_CASES:
                with self.subTest(case=case.name, configured_token=bool(token)):
                    if bool(case.token) == bool(token):
                        # Signature accepted: the operation ran, and found that the
                        # vector's blob is not this server's / there is no such key.
                        ran = ("InvalidCiphertextException" if b"CiphertextBlob" in case.body
                               else "NotFoundException")
                        self.expect(noskew, case, ran)
                        self.expect(skew, case, "InvalidSignatureException",
                                    text="Signature expired")
                        self.expect(noskew, case, "InvalidSignatureException",
                                    body=case.body.replace(b'"', b"'", 1),
                                    text="does not match")
                    else:
                        self.expect(noskew, case, "UnrecognizedClientException")


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""A local AWS KMS for cryptvol's tests (a test double, not a KMS).

It speaks the AWS JSON 1.1 protocol over HTTPS on 127.0.0.1 (POST /,
X-Amz-Target: TrentService.<Op>), verifies SigV4 (AWS4-HMAC-SHA256) on every
KMS request, and returns errors the way AWS KMS does (HTTP 400 + JSON body
{"__type": ..., "message": ...} + x-amzn-ErrorType; 5xx for internal errors).
Every response carries x-amzn-RequestId.

WHAT IT IS NOT. Its key material is kept in plain JSON in --state-dir, and its
ciphertext blobs are this server's own format (below), not AWS's: a blob made
here decrypts only here. Authenticated encryption is built from the Python
standard library only (no AES-GCM there): encrypt-then-MAC with an
HMAC-SHA256-in-counter-mode keystream and an HMAC-SHA256 tag.

Blob format (all integers big-endian):
    "CVTK" | 0x01 | len(key id) (1 byte) | key id (ASCII) | key version (4)
    | IV (16) | ciphertext (len(plaintext)) | tag (32)
    enc_key = HMAC-SHA256(material, "cryptvol-test-kms enc")
    mac_key = HMAC-SHA256(material, "cryptvol-test-kms mac")
    keystream block i = HMAC-SHA256(enc_key, IV | i as 8 bytes)
    tag = HMAC-SHA256(mac_key, header | len(ciphertext) (4) | ciphertext
                               | canonical JSON of the EncryptionContext)
The EncryptionContext must therefore match exactly on Decrypt ({} == absent).

Besides KMS (with grants), the same port serves STS (Query protocol, see
identity.py) and the SSO portal's GetRoleCredentials; --imds-port-file and
--container-port-file open plain-HTTP loopback listeners for the EC2 instance
metadata and the container credentials endpoint (metadata.py).

Usage: kms-server.py --state-dir DIR --cert server.pem --key server.key
                     [--port N] [--port-file F]
                     [--region-listener REGION=PORT_FILE ...]
                     [--imds-port-file F] [--container-port-file F]
                     [--no-clock-skew-check] [--quiet]
See tests/kms/README.md for the config file, the regions, the identity
services, and the admin API.
"""

import argparse
import base64
import datetime
import email.utils
import fnmatch
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the modules below
import metadata  # noqa: E402
from identity import (STS_VERSION, SIGV4_TO_STS, Identity, STSError,  # noqa: E402
                      sts_error, sts_response)

SERVICE = "kms"
JSON_CT = "application/x-amz-json-1.1"
CLOCK_SKEW = 15 * 60
MAX_BODY = 1 << 20
MAX_CALL_LOG = 10000

# --------------------------------------------------------------------------
# Errors


class KMSError(Exception):
    """An error returned to the client as AWS does: __type, message, status."""

    def __init__(self, etype, message=None, status=400):
        super().__init__(etype, message)
        self.etype = etype
        self.message = message
        self.status = status


# --------------------------------------------------------------------------
# SigV4 (AWS4-HMAC-SHA256) verification


def _sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def _remove_dot_segments(path):
    parts = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
        else:
            parts.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and parts else ""
    return first + "/".join(parts) + last


def canonical_uri(raw_path):
    """Canonical URI for services other than S3: the path as sent, normalized,
    then URI-encoded again (so it is encoded twice), as botocore does."""
    if not raw_path:
        return "/"
    return urllib.parse.quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query):
    pairs = []
    if raw_query:
        for item in raw_query.split("&"):
            if item == "":
                continue
            k, _, v = item.partition("=")
            k = urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~")
            v = urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")
            pairs.append((k, v))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(header_pairs, signed):
    """header_pairs: [(name, value)] as received (repeats allowed).
    signed: lower-case header names from SignedHeaders, in that order."""
    values = {}
    for name, value in header_pairs:
        values.setdefault(name.lower(), []).append(" ".join(str(value).split()))
    return "".join(f"{h}:{','.join(values.get(h, []))}\n" for h in signed)


def canonical_request(method, raw_path, raw_query, header_pairs, signed, payload_hash):
    return "\n".join([
        method,
        canonical_uri(raw_path),
        canonical_query(raw_query),
        canonical_headers(header_pairs, signed),
        ";".join(signed),
        payload_hash,
    ])


def string_to_sign(amz_date, scope, creq):
    return "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                      _sha256_hex(creq.encode("utf-8"))])


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode("utf-8"), date.encode())
    k = _hmac(k, region.encode())
    k = _hmac(k, service.encode())
    return _hmac(k, b"aws4_request")


def signature(secret, date, region, service, sts):
    return hmac.new(signing_key(secret, date, region, service),
                    sts.encode("utf-8"), hashlib.sha256).hexdigest()


_AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256\s+(.*)$", re.S)
_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")


def _fmt_amz(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def verify_sigv4(method, target, header_pairs, body, find_credential, regions,
                 now=None, check_skew=True, service=SERVICE):
    """Verify a header-signed SigV4 request. Returns (credential, region).
    find_credential(access_key) -> dict with "secret_access_key" and optional
    "session_token", or None. regions: the regions this endpoint serves.
    Raises KMSError with the error type AWS returns."""
    headers = {}
    for name, value in header_pairs:
        headers.setdefault(name.lower(), []).append(value)

    def one(name):
        v = headers.get(name)
        return v[0].strip() if v else None

    auth = one("authorization")
    raw_path, _, raw_query = target.partition("?")
    if auth is None:
        if "X-Amz-Algorithm=" in raw_query or "x-amz-algorithm=" in raw_query.lower():
            raise KMSError("IncompleteSignatureException",
                           "This test KMS verifies header-signed requests only "
                           "(no presigned query strings).")
        raise KMSError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = _AUTH_RE.match(auth)
    if not m:
        alg = auth.split(" ", 1)[0]
        raise KMSError("IncompleteSignatureException",
                       f"Unsupported AWS 'algorithm': '{alg}'")
    params = {}
    for part in m.group(1).split(","):
        k, eq, v = part.strip().partition("=")
        if eq:
            params[k.strip()] = v.strip()
    for need in ("Credential", "SignedHeaders", "Signature"):
        if need not in params:
            raise KMSError("IncompleteSignatureException",
                           f"Authorization header requires '{need}' parameter. "
                           f"Authorization={auth.split(' ', 1)[0]}")
    cparts = params["Credential"].split("/")
    if len(cparts) != 5:
        raise KMSError("IncompleteSignatureException",
                       "Credential should have 5 parts: access key/date/region/service/aws4_request")
    akid, cdate, cregion, cservice, term = cparts

    cred = find_credential(akid)
    if cred is None:
        raise KMSError("UnrecognizedClientException",
                       "The security token included in the request is invalid.")
    want_token = cred.get("session_token")
    got_token = one("x-amz-security-token")
    if (want_token or got_token) and not (
            want_token and got_token
            and hmac.compare_digest(want_token.encode(), got_token.encode())):
        raise KMSError("UnrecognizedClientException",
                       "The security token included in the request is invalid.")
    if cred.get("expires") is not None and time.time() >= cred["expires"]:
        raise KMSError("ExpiredTokenException",
                       "The security token included in the request is expired")

    amz_date = one("x-amz-date")
    if amz_date is None:
        d = one("date")
        if d is None:
            raise KMSError("IncompleteSignatureException",
                           "Authorization header requires existence of either a "
                           "'X-Amz-Date' or a 'Date' header.")
        try:
            amz_date = _fmt_amz(email.utils.parsedate_to_datetime(d).timestamp())
        except (TypeError, ValueError):
            raise KMSError("IncompleteSignatureException", f"Invalid Date header: {d}")
    if not _DATE_RE.match(amz_date):
        raise KMSError("IncompleteSignatureException",
                       f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.")
    if cdate != amz_date[:8]:
        raise KMSError("InvalidSignatureException",
                       "Date in Credential scope does not match YYYYMMDD from "
                       f"ISO-8601 version of date from HTTP: '{cdate}' != "
                       f"'{amz_date[:8]}', from '{amz_date}'.")
    if cservice != service:
        raise KMSError("InvalidSignatureException",
                       f"Credential should be scoped to correct service: '{service}'.")
    if cregion not in regions:
        raise KMSError("InvalidSignatureException",
                       f"Credential should be scoped to a valid region, not '{cregion}'.")
    if term != "aws4_request":
        raise KMSError("InvalidSignatureException",
                       "Credential should be scoped with a valid terminator: "
                       f"'aws4_request', not '{term}'.")
    signed = [h.strip().lower() for h in params["SignedHeaders"].split(";") if h.strip()]
    if "host" not in signed:
        raise KMSError("InvalidSignatureException",
                       "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")

    if check_skew:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        now = time.time() if now is None else now
        if t < now - CLOCK_SKEW:
            raise KMSError("InvalidSignatureException",
                           f"Signature expired: {amz_date} is now earlier than "
                           f"{_fmt_amz(now - CLOCK_SKEW)} ({_fmt_amz(now)} - 15 min.)")
        if t > now + CLOCK_SKEW:
            raise KMSError("InvalidSignatureException",
                           f"Signature not yet current: {amz_date} is still later than "
                           f"{_fmt_amz(now + CLOCK_SKEW)} ({_fmt_amz(now)} + 15 min.)")

    payload_hash = _sha256_hex(body)
    declared = one("x-amz-content-sha256")
    if declared is not None and declared.lower() != payload_hash:
        raise KMSError("InvalidSignatureException",
                       "The provided 'x-amz-content-sha256' header does not match "
                       "what was computed.")

    creq = canonical_request(method, raw_path, raw_query, header_pairs, signed, payload_hash)
    scope = f"{cdate}/{cregion}/{cservice}/aws4_request"
    sts = string_to_sign(amz_date, scope, creq)
    want = signature(cred["secret_access_key"], cdate, cregion, cservice, sts)
    if not hmac.compare_digest(want.encode(), params["Signature"].lower().encode()):
        raise KMSError("InvalidSignatureException",
                       "The request signature we calculated does not match the "
                       "signature you provided. Check your AWS Secret Access Key "
                       "and signing method. Consult the service documentation for details.")
    return cred, cregion


# --------------------------------------------------------------------------
# Ciphertext blobs (this server's format; see the module docstring)

MAGIC = b"CVTK"
BLOB_VERSION = 1
IV_LEN = 16
TAG_LEN = 32


def _derive(material, label):
    return _hmac(material, b"cryptvol-test-kms " + label)


def _keystream_xor(enc_key, iv, data):
    out = bytearray(len(data))
    for i in range(0, len(data), 32):
        block = _hmac(enc_key, iv + struct.pack(">Q", i // 32))
        chunk = data[i:i + 32]
        out[i:i + len(chunk)] = bytes(a ^ b for a, b in zip(chunk, block))
    return bytes(out)


def canonical_context(ctx):
    return json.dumps(ctx or {}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _tag(mac_key, header, ct, ctx):
    return _hmac(mac_key, header + struct.pack(">I", len(ct)) + ct + canonical_context(ctx))


def seal(material, key_id, version, plaintext, ctx):
    kid = key_id.encode("ascii")
    header = MAGIC + bytes([BLOB_VERSION, len(kid)]) + kid + struct.pack(">I", version)
    iv = secrets.token_bytes(IV_LEN)
    header += iv
    ct = _keystream_xor(_derive(material, b"enc"), iv, plaintext)
    return header + ct + _tag(_derive(material, b"mac"), header, ct, ctx)


def parse_blob(blob):
    """-> (key_id, version, header, ciphertext, tag); raises InvalidCiphertext."""
    bad = KMSError("InvalidCiphertextException")
    if len(blob) < 6 or blob[:4] != MAGIC or blob[4] != BLOB_VERSION:
        raise bad
    n = blob[5]
    hlen = 6 + n + 4 + IV_LEN
    if len(blob) < hlen + TAG_LEN:
        raise bad
    try:
        key_id = blob[6:6 + n].decode("ascii")
    except UnicodeDecodeError:
        raise bad
    (version,) = struct.unpack(">I", blob[6 + n:10 + n])
    return key_id, version, blob[:hlen], blob[hlen:-TAG_LEN], blob[-TAG_LEN:]


def open_blob(material, header, ct, tag, ctx):
    want = _tag(_derive(material, b"mac"), header, ct, ctx)
    if not hmac.compare_digest(want, tag):
        raise KMSError("InvalidCiphertextException")
    iv = header[-IV_LEN:]
    return _keystream_xor(_derive(material, b"enc"), iv, ct)


# --------------------------------------------------------------------------
# The KMS state

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MRK_RE = re.compile(r"^mrk-[0-9a-f]{32}$")
_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9:/_-]{1,250}$")
_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/(.+)$")
_ALIAS_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(alias/.+)$")
_PRINCIPAL_RE = re.compile(r"^(arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+|[a-z0-9.-]+\.amazonaws\.com)$")
_GRANT_NAME_RE = re.compile(r"^[a-zA-Z0-9:/_-]{1,256}$")
_GRANT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
GRANT_TOKEN_MAGIC = b"CVGT\x01"
GRANT_OPERATIONS = ["Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                    "ReEncryptFrom", "ReEncryptTo", "Sign", "Verify", "GetPublicKey",
                    "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
                    "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
                    "DeriveSharedSecret"]


def _now():
    return round(time.time(), 3)


class KMS:
    """All KMS state; every public method runs under self.lock."""

    def __init__(self, state_dir, config_path):
        self.state_dir = state_dir
        self.config_path = config_path
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self.state_path = os.path.join(state_dir, "state.json")
        self.lock = threading.RLock()
        self.config = None
        self.config_mtime = None
        self.load_config()
        self.identity = Identity(lambda: self.config)
        self.keys = {}       # region -> key id -> key record
        self.aliases = {}    # region -> alias name -> {target, created, updated}
        self.material = {}   # key id -> [hex material per version]
        self.grants = {}     # grant id -> grant record (KeyId is the key ARN)
        self.token_secret = secrets.token_bytes(32)  # MACs the grant tokens
        self.call_grant_ids = set()  # grants whose tokens the current call presents
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                st = json.load(f)
            self.keys = st.get("keys", {})
            self.aliases = st.get("aliases", {})
            self.material = st.get("material", {})
            self.grants = st.get("grants", {})
            if "grant_token_secret" in st:
                self.token_secret = bytes.fromhex(st["grant_token_secret"])

    # -- config ------------------------------------------------------------

    def load_config(self):
        """(Re)load the config when it changed, so tests can edit access rules
        of a running server."""
        with self.lock:
            st = os.stat(self.config_path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self.config_mtime:
                return
            with open(self.config_path) as f:
                cfg = json.load(f)
            cfg.setdefault("account_id", "111122223333")
            cfg.setdefault("regions", ["us-east-1"])
            for c in cfg.get("credentials", []):
                for need in ("access_key_id", "secret_access_key"):
                    if need not in c:
                        raise ValueError(f"config: a credential lacks {need}")
            self.config = cfg
            self.config_mtime = stamp

    @property
    def account(self):
        return self.config["account_id"]

    @property
    def regions(self):
        return list(self.config["regions"])

    def find_credential(self, akid):
        for c in self.config.get("credentials", []):
            if hmac.compare_digest(c["access_key_id"].encode(), akid.encode()):
                return c
        return self.identity.find(akid)

    # -- persistence -------------------------------------------------------

    def save(self):
        tmp = self.state_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": self.keys, "aliases": self.aliases,
                       "material": self.material, "grants": self.grants,
                       "grant_token_secret": self.token_secret.hex()},
                      f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    # -- helpers -----------------------------------------------------------

    def arn(self, region, key_id):
        return f"arn:aws:kms:{region}:{self.account}:key/{key_id}"

    def alias_arn(self, region, name):
        return f"arn:aws:kms:{region}:{self.account}:{name}"

    def _not_found(self, ref):
        return KMSError("NotFoundException", f"Key '{ref}' does not exist")

    def resolve(self, region, ref, allow_alias=True, field="keyId"):
        """Key reference (id, ARN, alias/NAME, alias ARN) -> key record."""
        if ref is None or ref == "":
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value null at '{field}' "
                           "failed to satisfy constraint: Member must not be null")
        if not isinstance(ref, str):
            raise KMSError("SerializationException", f"{field} must be a string")
        keys = self.keys.get(region, {})
        m = _KEY_ARN_RE.match(ref)
        if m:
            if m.group(1) != region or m.group(2) != self.account:
                raise KMSError("NotFoundException", f"Invalid arn {m.group(1)}"
                               if m.group(1) != region else f"Key '{ref}' does not exist")
            key_id = m.group(3)
        else:
            m = _ALIAS_ARN_RE.match(ref)
            if m:
                if m.group(1) != region or m.group(2) != self.account:
                    raise KMSError("NotFoundException", f"Alias {ref} is not found.")
                ref = m.group(3)
            if ref.startswith("alias/"):
                if not allow_alias:
                    raise KMSError("NotFoundException",
                                   "Alias is not supported for this operation")
                a = self.aliases.get(region, {}).get(ref)
                if a is None or a["target"] not in keys:
                    raise KMSError("NotFoundException",
                                   f"Alias {self.alias_arn(region, ref)} is not found.")
                return keys[a["target"]]
            key_id = ref
        if not (_UUID_RE.match(key_id) or _MRK_RE.match(key_id)):
            raise KMSError("NotFoundException", f"Invalid keyId '{ref}'")
        k = keys.get(key_id)
        if k is None:
            raise self._not_found(self.arn(region, key_id))
        return k

    def key_aliases(self, region, key_id):
        return [n for n, a in self.aliases.get(region, {}).items() if a["target"] == key_id]

    def principal(self, cred):
        """The caller's principal ARN: an IAM user for the configured
        credentials (config "user", default "test"), the assumed-role ARN for
        credentials this server issued."""
        return cred.get("principal") or \
            f"arn:aws:iam::{self.account}:user/{cred.get('user', 'test')}"

    def check_access(self, cred, action, region, key, ctx=None, grants=True, child=None):
        """Access rules from the config, then grants. A credential without
        "allow" may do everything; otherwise some allow entry must match
        action and key, or a grant on the key must allow the action to the
        caller (see grant_allows). ctx: the request's encryption context, for
        the grants' constraints (None: the operation takes none). grants=False:
        the allow list only. child: for kms:CreateGrant, the grant asked for
        (see grant_allows)."""
        rules = cred.get("allow")
        if rules is None:
            return
        names = ["*"]
        if key is not None:
            names = [key["KeyId"], key["Arn"]] + self.key_aliases(region, key["KeyId"]) + [
                self.alias_arn(region, a) for a in self.key_aliases(region, key["KeyId"])]
        for rule in rules:
            acts = rule.get("actions", ["kms:*"])
            pats = rule.get("keys", ["*"])
            if not any(fnmatch.fnmatchcase(action, a if a.startswith("kms:") else "kms:" + a)
                       for a in acts):
                continue
            if key is None:
                if "*" in pats:
                    return
            elif any(fnmatch.fnmatchcase(n, p) for p in pats for n in names):
                return
        if grants and key is not None and self.grant_allows(cred, action, key, ctx, child):
            return
        resource = key["Arn"] if key is not None else "*"
        raise KMSError("AccessDeniedException",
                       f"User: {self.principal(cred)} is not "
                       f"authorized to perform: {action} on resource: {resource} "
                       f"because no identity-based policy allows the {action} action")

    @staticmethod
    def check_usable(key):
        st = key["KeyState"]
        if st == "Disabled":
            raise KMSError("DisabledException", f"{key['Arn']} is disabled.")
        if st in ("PendingDeletion", "PendingReplicaDeletion"):
            raise KMSError("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")
        if st != "Enabled":
            raise KMSError("KMSInvalidStateException", f"{key['Arn']} is {st}.")

    @staticmethod
    def check_not_pending(key):
        if key["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
            raise KMSError("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")

    def metadata(self, key):
        md = {
            "AWSAccountId": self.account,
            "KeyId": key["KeyId"],
            "Arn": key["Arn"],
            "CreationDate": key["CreationDate"],
            "Enabled": key["KeyState"] == "Enabled",
            "Description": key.get("Description", ""),
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": key["KeyState"],
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "MultiRegion": bool(key.get("MultiRegion")),
        }
        if key.get("DeletionDate") is not None:
            md["DeletionDate"] = key["DeletionDate"]
        if key.get("PendingDeletionWindowInDays") is not None:
            md["PendingDeletionWindowInDays"] = key["PendingDeletionWindowInDays"]
        if key.get("MultiRegion"):
            kid = key["KeyId"]
            prim = key["PrimaryRegion"]
            replicas = [r for r in self.regions_of(kid) if r != prim]
            md["MultiRegionConfiguration"] = {
                "MultiRegionKeyType": "PRIMARY" if key["Region"] == prim else "REPLICA",
                "PrimaryKey": {"Arn": self.arn(prim, kid), "Region": prim},
                "ReplicaKeys": [{"Arn": self.arn(r, kid), "Region": r} for r in replicas],
            }
        return md

    def regions_of(self, key_id):
        return sorted(r for r, ks in self.keys.items() if key_id in ks)

    def _material(self, key, version=None):
        versions = self.material[key["KeyId"]]
        if version is None:
            version = len(versions) - 1
        if version >= len(versions):
            raise KMSError("InvalidCiphertextException")
        return version, bytes.fromhex(versions[version])

    def _encrypt(self, key, plaintext, ctx):
        version, mat = self._material(key)
        return seal(mat, key["KeyId"], version, plaintext, ctx)

    def _decrypt(self, region, cred, blob, ctx, key_ref, action, ref_field):
        """Shared by Decrypt and ReEncrypt (source side) -> (key, plaintext)."""
        key_id, version, header, ct, tag = parse_blob(blob)
        if key_ref is not None:
            key = self.resolve(region, key_ref, field=ref_field)
            if key["KeyId"] != key_id:
                raise KMSError("IncorrectKeyException",
                               "The key ID in the request does not identify a CMK "
                               "that can perform this operation.")
        else:
            key = self.keys.get(region, {}).get(key_id)
            if key is None:
                raise self._not_found(self.arn(region, key_id))
        self.check_access(cred, action, region, key, ctx)
        self.check_usable(key)
        _, mat = self._material(key, version)
        return key, open_blob(mat, header, ct, tag, ctx)

    # -- operations (each returns the response dict) -------------------------

    def op_CreateKey(self, region, cred, req):
        self.check_access(cred, "kms:CreateKey", region, None)
        usage = req.get("KeyUsage", "ENCRYPT_DECRYPT")
        spec = req.get("KeySpec", req.get("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"))
        origin = req.get("Origin", "AWS_KMS")
        if usage != "ENCRYPT_DECRYPT" or spec != "SYMMETRIC_DEFAULT" or origin != "AWS_KMS":
            raise KMSError("UnsupportedOperationException",
                           "This test KMS supports only symmetric ENCRYPT_DECRYPT "
                           "keys with Origin AWS_KMS.")
        desc = req.get("Description", "")
        if not isinstance(desc, str) or len(desc) > 8192:
            raise KMSError("ValidationException", "Invalid Description")
        mr = bool(req.get("MultiRegion", False))
        key_id = ("mrk-" + secrets.token_hex(16)) if mr else str(uuid.uuid4())
        key = {
            "KeyId": key_id, "Region": region, "Arn": self.arn(region, key_id),
            "CreationDate": _now(), "Description": desc, "KeyState": "Enabled",
            "MultiRegion": mr, "PrimaryRegion": region if mr else None,
            "Tags": req.get("Tags", []), "Policy": req.get("Policy"),
        }
        self.material[key_id] = [secrets.token_hex(32)]
        self.keys.setdefault(region, {})[key_id] = key
        self.save()
        return {"KeyMetadata": self.metadata(key)}

    def op_DescribeKey(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"))
        self.check_access(cred, "kms:DescribeKey", region, key)
        return {"KeyMetadata": self.metadata(key)}

    def op_ListKeys(self, region, cred, req):
        self.check_access(cred, "kms:ListKeys", region, None)
        ks = self.keys.get(region, {})
        return {"Keys": [{"KeyId": k, "KeyArn": v["Arn"]} for k, v in sorted(ks.items())],
                "Truncated": False}

    def op_CreateAlias(self, region, cred, req):
        name = req.get("AliasName")
        if not isinstance(name, str) or not _ALIAS_RE.match(name):
            raise KMSError("ValidationException", f"Alias must start with the prefix \"alias/\" "
                           "and contain only [a-zA-Z0-9:/_-].")
        if name.startswith("alias/aws/"):
            raise KMSError("NotAuthorizedException",
                           "Alias names starting with alias/aws/ are reserved.", )
        key = self.resolve(region, req.get("TargetKeyId"), allow_alias=False,
                           field="targetKeyId")
        self.check_access(cred, "kms:CreateAlias", region, key)
        self.check_not_pending(key)
        al = self.aliases.setdefault(region, {})
        if name in al:
            raise KMSError("AlreadyExistsException",
                           f"An alias with the name {self.alias_arn(region, name)} already exists")
        al[name] = {"target": key["KeyId"], "created": _now(), "updated": _now()}
        self.save()
        return {}

    def op_UpdateAlias(self, region, cred, req):
        name = req.get("AliasName")
        al = self.aliases.get(region, {})
        if name not in al:
            raise KMSError("NotFoundException",
                           f"Alias {self.alias_arn(region, str(name))} is not found.")
        key = self.resolve(region, req.get("TargetKeyId"), allow_alias=False,
                           field="targetKeyId")
        self.check_access(cred, "kms:UpdateAlias", region, key)
        self.check_not_pending(key)
        al[name]["target"] = key["KeyId"]
        al[name]["updated"] = _now()
        self.save()
        return {}

    def op_DeleteAlias(self, region, cred, req):
        name = req.get("AliasName")
        al = self.aliases.get(region, {})
        if name not in al:
            raise KMSError("NotFoundException",
                           f"Alias {self.alias_arn(region, str(name))} is not found.")
        key = self.keys.get(region, {}).get(al[name]["target"])
        self.check_access(cred, "kms:DeleteAlias", region, key)
        del al[name]
        self.save()
        return {}

    def op_ListAliases(self, region, cred, req):
        self.check_access(cred, "kms:ListAliases", region, None)
        only = None
        if req.get("KeyId") is not None:
            only = self.resolve(region, req["KeyId"], allow_alias=False)["KeyId"]
        out = []
        for name, a in sorted(self.aliases.get(region, {}).items()):
            if only is not None and a["target"] != only:
                continue
            out.append({"AliasName": name, "AliasArn": self.alias_arn(region, name),
                        "TargetKeyId": a["target"], "CreationDate": a["created"],
                        "LastUpdatedDate": a["updated"]})
        return {"Aliases": out, "Truncated": False}

    def op_EnableKey(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:EnableKey", region, key)
        self.check_not_pending(key)
        key["KeyState"] = "Enabled"
        self.save()
        return {}

    def op_DisableKey(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:DisableKey", region, key)
        self.check_not_pending(key)
        key["KeyState"] = "Disabled"
        self.save()
        return {}

    def op_ScheduleKeyDeletion(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:ScheduleKeyDeletion", region, key)
        days = req.get("PendingWindowInDays", 30)
        if not isinstance(days, int) or isinstance(days, bool) or not 7 <= days <= 30:
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value '{days}' at "
                           "'pendingWindowInDays' failed to satisfy constraint: "
                           "Member must have value between 7 and 30")
        self.check_not_pending(key)
        others = [r for r in self.regions_of(key["KeyId"]) if r != region]
        if key.get("MultiRegion") and key["PrimaryRegion"] == region and others:
            key["KeyState"] = "PendingReplicaDeletion"
            key["DeletionDate"] = None
        else:
            key["KeyState"] = "PendingDeletion"
            key["DeletionDate"] = round(time.time() + days * 86400, 3)
        key["PendingDeletionWindowInDays"] = days
        self.save()
        out = {"KeyId": key["Arn"], "KeyState": key["KeyState"], "PendingWindowInDays": days}
        if key["DeletionDate"] is not None:
            out["DeletionDate"] = key["DeletionDate"]
        return out

    def op_CancelKeyDeletion(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:CancelKeyDeletion", region, key)
        if key["KeyState"] not in ("PendingDeletion", "PendingReplicaDeletion"):
            raise KMSError("KMSInvalidStateException",
                           f"{key['Arn']} is not pending deletion.")
        key["KeyState"] = "Disabled"
        key.pop("DeletionDate", None)
        key.pop("PendingDeletionWindowInDays", None)
        self.save()
        return {"KeyId": key["Arn"]}

    def op_RotateKeyOnDemand(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:RotateKeyOnDemand", region, key)
        if key.get("MultiRegion") and key["PrimaryRegion"] != region:
            raise KMSError("UnsupportedOperationException",
                           f"{key['Arn']} is a multi-Region replica key; rotate its primary key.")
        self.check_usable(key)
        self.material[key["KeyId"]].append(secrets.token_hex(32))
        self.save()
        return {"KeyId": key["Arn"]}

    def op_ReplicateKey(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:ReplicateKey", region, key)
        dest = req.get("ReplicaRegion")
        if not key.get("MultiRegion"):
            raise KMSError("UnsupportedOperationException",
                           f"{key['Arn']} is not a multi-Region key.")
        if key["PrimaryRegion"] != region:
            raise KMSError("UnsupportedOperationException",
                           f"{key['Arn']} is not a multi-Region primary key.")
        self.check_not_pending(key)
        if not isinstance(dest, str) or dest not in self.regions:
            raise KMSError("ValidationException",
                           f"ReplicaRegion '{dest}' is not a region this test KMS serves.")
        if dest == region:
            raise KMSError("ValidationException",
                           "ReplicaRegion must differ from the primary key's region.")
        if key["KeyId"] in self.keys.get(dest, {}):
            raise KMSError("AlreadyExistsException",
                           f"{self.arn(dest, key['KeyId'])} already exists.")
        rep = {
            "KeyId": key["KeyId"], "Region": dest, "Arn": self.arn(dest, key["KeyId"]),
            "CreationDate": _now(), "Description": req.get("Description", key.get("Description", "")),
            "KeyState": "Enabled", "MultiRegion": True, "PrimaryRegion": region,
            "Tags": req.get("Tags", []), "Policy": req.get("Policy", key.get("Policy")),
        }
        self.keys.setdefault(dest, {})[key["KeyId"]] = rep
        self.save()
        return {"ReplicaKeyMetadata": self.metadata(rep),
                "ReplicaPolicy": rep["Policy"] or "{}",
                "ReplicaTags": rep["Tags"]}

    @staticmethod
    def _ctx(req, field):
        ctx = req.get(field)
        if ctx is None:
            return {}
        if not isinstance(ctx, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()):
            raise KMSError("SerializationException",
                           f"{field} must be a map of strings to strings")
        return ctx

    @staticmethod
    def _b64(req, field, required=True, maxlen=None):
        v = req.get(field)
        if v is None:
            if required:
                raise KMSError("ValidationException",
                               f"1 validation error detected: Value null at '{field[0].lower()}"
                               f"{field[1:]}' failed to satisfy constraint: Member must not be null")
            return None
        try:
            raw = base64.b64decode(v, validate=True)
        except (ValueError, TypeError):
            raise KMSError("SerializationException", f"{field} is not valid base64")
        if len(raw) < 1 or (maxlen and len(raw) > maxlen):
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value at '{field[0].lower()}"
                           f"{field[1:]}' failed to satisfy constraint: Member must have "
                           f"length between 1 and {maxlen or 6144}")
        return raw

    @staticmethod
    def _dry_run(req):
        if req.get("DryRun"):
            raise KMSError("DryRunOperationException",
                           "The request would have succeeded, but the DryRun parameter was set.",
                           412)

    def op_Encrypt(self, region, cred, req):
        pt = self._b64(req, "Plaintext", maxlen=4096)
        ctx = self._ctx(req, "EncryptionContext")
        key = self.resolve(region, req.get("KeyId"))
        self.check_access(cred, "kms:Encrypt", region, key, ctx)
        self.check_usable(key)
        self._dry_run(req)
        return {"CiphertextBlob": base64.b64encode(self._encrypt(key, pt, ctx)).decode(),
                "KeyId": key["Arn"], "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    def op_Decrypt(self, region, cred, req):
        blob = self._b64(req, "CiphertextBlob", maxlen=6144)
        ctx = self._ctx(req, "EncryptionContext")
        alg = req.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        if alg != "SYMMETRIC_DEFAULT":
            raise KMSError("IncorrectKeyException", "This key does not support " + str(alg))
        key, pt = self._decrypt(region, cred, blob, ctx, req.get("KeyId"),
                                "kms:Decrypt", "keyId")
        self._dry_run(req)
        return {"KeyId": key["Arn"], "Plaintext": base64.b64encode(pt).decode(),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    def _data_key_len(self, req):
        n, spec = req.get("NumberOfBytes"), req.get("KeySpec")
        if n is not None and spec is not None:
            raise KMSError("ValidationException",
                           "Please specify either number of bytes or key spec.")
        if n is None and spec is None:
            raise KMSError("ValidationException",
                           "Please specify either number of bytes or key spec.")
        if spec is not None:
            if spec not in ("AES_256", "AES_128"):
                raise KMSError("ValidationException",
                               f"1 validation error detected: Value '{spec}' at 'keySpec' "
                               "failed to satisfy constraint: Member must satisfy enum "
                               "value set: [AES_256, AES_128]")
            return 32 if spec == "AES_256" else 16
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1024:
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value '{n}' at 'numberOfBytes' "
                           "failed to satisfy constraint: Member must have value less "
                           "than or equal to 1024")
        return n

    def _gen(self, region, cred, req, action):
        ctx = self._ctx(req, "EncryptionContext")
        n = self._data_key_len(req)
        key = self.resolve(region, req.get("KeyId"))
        self.check_access(cred, action, region, key, ctx)
        self.check_usable(key)
        self._dry_run(req)
        dk = secrets.token_bytes(n)
        return key, dk, self._encrypt(key, dk, ctx)

    def op_GenerateDataKey(self, region, cred, req):
        key, dk, blob = self._gen(region, cred, req, "kms:GenerateDataKey")
        return {"CiphertextBlob": base64.b64encode(blob).decode(),
                "Plaintext": base64.b64encode(dk).decode(), "KeyId": key["Arn"]}

    def op_GenerateDataKeyWithoutPlaintext(self, region, cred, req):
        key, _, blob = self._gen(region, cred, req, "kms:GenerateDataKeyWithoutPlaintext")
        return {"CiphertextBlob": base64.b64encode(blob).decode(), "KeyId": key["Arn"]}

    def op_ReEncrypt(self, region, cred, req):
        blob = self._b64(req, "CiphertextBlob", maxlen=6144)
        sctx = self._ctx(req, "SourceEncryptionContext")
        dctx = self._ctx(req, "DestinationEncryptionContext")
        for f in ("SourceEncryptionAlgorithm", "DestinationEncryptionAlgorithm"):
            if req.get(f, "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
                raise KMSError("IncorrectKeyException", f"Unsupported {f}")
        if req.get("DestinationKeyId") is None:
            raise KMSError("ValidationException",
                           "1 validation error detected: Value null at 'destinationKeyId' "
                           "failed to satisfy constraint: Member must not be null")
        src, pt = self._decrypt(region, cred, blob, sctx, req.get("SourceKeyId"),
                                "kms:ReEncryptFrom", "sourceKeyId")
        dst = self.resolve(region, req["DestinationKeyId"], field="destinationKeyId")
        self.check_access(cred, "kms:ReEncryptTo", region, dst, dctx)
        self.check_usable(dst)
        self._dry_run(req)
        return {"CiphertextBlob": base64.b64encode(self._encrypt(dst, pt, dctx)).decode(),
                "SourceKeyId": src["Arn"], "KeyId": dst["Arn"],
                "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    def op_GenerateRandom(self, region, cred, req):
        self.check_access(cred, "kms:GenerateRandom", region, None)
        n = req.get("NumberOfBytes")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1024:
            raise KMSError("ValidationException", "NumberOfBytes must be between 1 and 1024")
        return {"Plaintext": base64.b64encode(secrets.token_bytes(n)).decode()}

    # -- grants ---------------------------------------------------------------

    def _grantee_matches(self, cred, principal):
        """Does the grant principal name the caller? An assumed-role session
        matches its role's ARN as well as its own."""
        return principal in (self.principal(cred), cred.get("role_arn"))

    def grant_allows(self, cred, action, key, ctx, child=None):
        """Some grant on key lets the caller do action: the grantee is the
        caller, the operation is granted, the constraints match ctx (not
        checked for operations without an encryption context, ctx None), and
        the grant has propagated or its token is in this request. child: the
        grant a kms:CreateGrant asks for; as in AWS, a grant lets its grantee
        create only grants with a subset of its operations and constraints at
        least as strict as its own."""
        op = action[len("kms:"):]
        # Read at each check, so a test may end the propagation delay of
        # the grants it made.
        ready = time.time() - float(self.config.get("grant_propagation_seconds", 0))
        for g in self.grants.values():
            if (g["KeyId"] != key["Arn"] or op not in g["Operations"]
                    or not self._grantee_matches(cred, g["GranteePrincipal"])):
                continue
            if g["CreationDate"] > ready and g["GrantId"] not in self.call_grant_ids:
                continue
            if child is not None and not (
                    set(child["Operations"]) <= set(g["Operations"])
                    and self._as_strict(child.get("Constraints"), g.get("Constraints"))):
                continue
            if ctx is None or self._constraints_match(g.get("Constraints"), ctx):
                return True
        return False

    @staticmethod
    def _as_strict(cons, parent):
        """Are constraints cons at least as strict as parent's? Equals E
        needs Equals E; Subset S needs Equals or Subset holding all of S."""
        if not parent:
            return True
        if not cons:
            return False
        have = {k.lower(): v for k, v in next(iter(cons.values())).items()}
        if "EncryptionContextEquals" in parent:
            want = {k.lower(): v for k, v in parent["EncryptionContextEquals"].items()}
            return "EncryptionContextEquals" in cons and have == want
        want = {k.lower(): v for k, v in parent["EncryptionContextSubset"].items()}
        return all(have.get(k) == v for k, v in want.items())

    @staticmethod
    def _constraints_match(cons, ctx):
        """Grant constraints against a request's encryption context: keys
        compare without case, values with case (as AWS does)."""
        if not cons:
            return True
        have = {k.lower(): v for k, v in ctx.items()}
        if "EncryptionContextEquals" in cons:
            want = {k.lower(): v for k, v in cons["EncryptionContextEquals"].items()}
            return have == want
        want = {k.lower(): v for k, v in cons["EncryptionContextSubset"].items()}
        return all(have.get(k) == v for k, v in want.items())

    def _grant_token(self, grant_id):
        mac = _hmac(self.token_secret, bytes.fromhex(grant_id))
        return base64.b64encode(GRANT_TOKEN_MAGIC + bytes.fromhex(grant_id) + mac).decode()

    def grant_id_of_token(self, token):
        """The grant id a grant token names (the grant may be gone); a token
        this server did not make is InvalidGrantTokenException."""
        bad = KMSError("InvalidGrantTokenException", "The grant token is invalid.")
        if not isinstance(token, str) or not 1 <= len(token) <= 8192:
            raise bad
        try:
            raw = base64.b64decode(token, validate=True)
        except (ValueError, TypeError):
            raise bad
        n = len(GRANT_TOKEN_MAGIC)
        if len(raw) != n + 64 or raw[:n] != GRANT_TOKEN_MAGIC:
            raise bad
        gid = raw[n:n + 32]
        if not hmac.compare_digest(_hmac(self.token_secret, gid), raw[n + 32:]):
            raise bad
        return gid.hex()

    def set_call_grant_tokens(self, req):
        """Note the grant ids of the request's GrantTokens for grant_allows;
        a malformed token fails the call."""
        toks = req.get("GrantTokens")
        if toks is None:
            toks = []
        if not isinstance(toks, list) or len(toks) > 10:
            raise KMSError("ValidationException",
                           "1 validation error detected: Value at 'grantTokens' failed to "
                           "satisfy constraint: Member must have length less than or equal to 10")
        self.call_grant_ids = {self.grant_id_of_token(t) for t in toks}

    @staticmethod
    def _validate_constraints(cons):
        if cons is None:
            return None
        if (not isinstance(cons, dict) or len(cons) != 1 or
                next(iter(cons)) not in ("EncryptionContextEquals", "EncryptionContextSubset")):
            raise KMSError("ValidationException",
                           "Constraints must have exactly one of EncryptionContextEquals "
                           "or EncryptionContextSubset")
        pairs = next(iter(cons.values()))
        if not isinstance(pairs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
            raise KMSError("SerializationException",
                           "Constraints must map strings to strings")
        if len(pairs) > 8:
            raise KMSError("ValidationException",
                           "A grant constraint can have at most 8 encryption context pairs")
        return {next(iter(cons)): dict(pairs)}

    def op_CreateGrant(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        grantee = req.get("GranteePrincipal")
        retiring = req.get("RetiringPrincipal")
        for field, p in (("granteePrincipal", grantee), ("retiringPrincipal", retiring)):
            if p is None and field == "retiringPrincipal":
                continue
            if not isinstance(p, str) or not _PRINCIPAL_RE.match(p):
                raise KMSError("ValidationException",
                               f"1 validation error detected: Value '{p}' at '{field}' "
                               "failed to satisfy constraint: Member must be a valid "
                               "principal ARN or AWS service principal")
        ops = req.get("Operations")
        if (not isinstance(ops, list) or not ops or
                not all(isinstance(o, str) and o in GRANT_OPERATIONS for o in ops)):
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value '{ops}' at 'operations' "
                           "failed to satisfy constraint: Member must satisfy constraint: "
                           "[Member must satisfy enum value set: "
                           f"[{', '.join(GRANT_OPERATIONS)}]]")
        cons = self._validate_constraints(req.get("Constraints"))
        name = req.get("Name")
        if name is not None and (not isinstance(name, str) or not _GRANT_NAME_RE.match(name)):
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value '{name}' at 'name' failed to "
                           "satisfy constraint: Member must satisfy regular expression "
                           "pattern: ^[a-zA-Z0-9:/_-]+$")
        shape = {"KeyId": key["Arn"], "GranteePrincipal": grantee,
                 "RetiringPrincipal": retiring, "Operations": sorted(set(ops)),
                 "Constraints": cons}
        self.check_access(cred, "kms:CreateGrant", region, key, child=shape)
        self.check_not_pending(key)
        self._dry_run(req)
        if name is not None:
            for g in self.grants.values():
                if g.get("Name") == name and all(g.get(k) == v for k, v in shape.items()):
                    return {"GrantId": g["GrantId"], "GrantToken": self._grant_token(g["GrantId"])}
        gid = secrets.token_hex(32)
        g = dict(shape, GrantId=gid, Name=name or "", CreationDate=_now(),
                 IssuingAccount=f"arn:aws:iam::{self.account}:root")
        self.grants[gid] = g
        self.save()
        return {"GrantId": gid, "GrantToken": self._grant_token(gid)}

    def _listed(self, g):
        out = {k: g[k] for k in ("KeyId", "GrantId", "Name", "CreationDate",
                                 "GranteePrincipal", "IssuingAccount", "Operations")}
        if g.get("RetiringPrincipal"):
            out["RetiringPrincipal"] = g["RetiringPrincipal"]
        if g.get("Constraints"):
            out["Constraints"] = g["Constraints"]
        return out

    @staticmethod
    def _page(req, items):
        """Limit/Marker paging as KMS does it -> (page, Truncated, NextMarker)."""
        limit = req.get("Limit", 50)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise KMSError("ValidationException",
                           f"1 validation error detected: Value '{limit}' at 'limit' failed "
                           "to satisfy constraint: Member must have value between 1 and 1000")
        limit = min(limit, 100)
        start = 0
        marker = req.get("Marker")
        if marker is not None:
            ids = [g["GrantId"] for g in items]
            if marker not in ids:
                raise KMSError("InvalidMarkerException", "Invalid marker")
            start = ids.index(marker)
        page = items[start:start + limit]
        more = start + limit < len(items)
        return page, more, items[start + limit]["GrantId"] if more else None

    def _list_response(self, req, grants):
        page, more, nxt = self._page(req, sorted(grants, key=lambda g: (g["CreationDate"],
                                                                         g["GrantId"])))
        out = {"Grants": [self._listed(g) for g in page], "Truncated": more}
        if more:
            out["NextMarker"] = nxt
        return out

    def op_ListGrants(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:ListGrants", region, key)
        gid, grantee = req.get("GrantId"), req.get("GranteePrincipal")
        sel = [g for g in self.grants.values() if g["KeyId"] == key["Arn"]
               and (gid is None or g["GrantId"] == gid)
               and (grantee is None or g["GranteePrincipal"] == grantee)]
        return self._list_response(req, sel)

    def op_ListRetirableGrants(self, region, cred, req):
        self.check_access(cred, "kms:ListRetirableGrants", region, None)
        who = req.get("RetiringPrincipal")
        if not isinstance(who, str) or not who:
            raise KMSError("ValidationException",
                           "1 validation error detected: Value null at 'retiringPrincipal' "
                           "failed to satisfy constraint: Member must not be null")
        sel = [g for g in self.grants.values() if g.get("RetiringPrincipal") == who
               and g["KeyId"].split(":")[3] == region]
        return self._list_response(req, sel)

    def _grant_on_key(self, key, gid):
        if not isinstance(gid, str) or not _GRANT_ID_RE.match(gid):
            raise KMSError("InvalidGrantIdException", "Invalid grant id")
        g = self.grants.get(gid)
        if g is None or g["KeyId"] != key["Arn"]:
            raise KMSError("NotFoundException", f"Grant ID {gid} not found")
        return g

    def op_RevokeGrant(self, region, cred, req):
        key = self.resolve(region, req.get("KeyId"), allow_alias=False)
        self.check_access(cred, "kms:RevokeGrant", region, key)
        g = self._grant_on_key(key, req.get("GrantId"))
        self._dry_run(req)
        del self.grants[g["GrantId"]]
        self.save()
        return {}

    def op_RetireGrant(self, region, cred, req):
        token = req.get("GrantToken")
        if token is not None:
            gid = self.grant_id_of_token(token)
            g = self.grants.get(gid)
            if g is None:
                raise KMSError("NotFoundException", f"Grant ID {gid} not found")
            if req.get("GrantId") is not None and req["GrantId"] != gid:
                raise KMSError("InvalidGrantIdException",
                               "The grant token does not match the grant id")
        elif req.get("KeyId") is not None and req.get("GrantId") is not None:
            key = self.resolve(region, req["KeyId"], allow_alias=False)
            g = self._grant_on_key(key, req["GrantId"])
        else:
            raise KMSError("ValidationException",
                           "Either grant token or both key ID and grant ID must be specified.")
        region_of_key = g["KeyId"].split(":")[3]
        key = self.keys.get(region_of_key, {}).get(g["KeyId"].rsplit("/", 1)[1])
        may = (g.get("RetiringPrincipal") is not None and
               self._grantee_matches(cred, g["RetiringPrincipal"])) or (
            "RetireGrant" in g["Operations"] and
            self._grantee_matches(cred, g["GranteePrincipal"]))
        if not may:
            try:
                self.check_access(cred, "kms:RetireGrant", region_of_key, key,
                                  grants=False)
            except KMSError:
                raise KMSError("AccessDeniedException",
                               f"User: {self.principal(cred)} is not authorized to perform: "
                               f"kms:RetireGrant on resource: {g['KeyId']} because it is "
                               "neither the grant's retiring principal nor its grantee "
                               "with RetireGrant")
        self._dry_run(req)
        del self.grants[g["GrantId"]]
        self.save()
        return {}

    # -- admin (not KMS) ---------------------------------------------------

    def complete_deletion(self, region, ref):
        """Finish a pending deletion now, as if the waiting period had passed."""
        key = self.resolve(region, ref, allow_alias=False)
        if key["KeyState"] != "PendingDeletion":
            raise KMSError("KMSInvalidStateException",
                           f"{key['Arn']} is {key['KeyState']}, not PendingDeletion.")
        kid = key["KeyId"]
        del self.keys[region][kid]
        for name in self.key_aliases(region, kid):
            del self.aliases[region][name]
        remaining = self.regions_of(kid)
        if not remaining:
            del self.material[kid]
        elif key.get("MultiRegion"):
            prim = self.keys.get(key["PrimaryRegion"], {}).get(kid)
            if (prim is not None and prim["KeyState"] == "PendingReplicaDeletion"
                    and remaining == [key["PrimaryRegion"]]):
                prim["KeyState"] = "PendingDeletion"
                prim["DeletionDate"] = round(
                    time.time() + prim.get("PendingDeletionWindowInDays", 30) * 86400, 3)
        self.save()
        return {"deleted": self.arn(region, kid)}

    def summary(self):
        return {r: {k: {"Arn": v["Arn"], "KeyState": v["KeyState"],
                        "Versions": len(self.material.get(k, [])),
                        "Aliases": self.key_aliases(r, k)}
                    for k, v in ks.items()}
                for r, ks in self.keys.items()}


OPERATIONS = sorted(n[3:] for n in dir(KMS) if n.startswith("op_"))

# --------------------------------------------------------------------------
# Fault injection and the call log


RANDOM_KINDS = ("throttle", "error500", "drop")


class Faults:
    """Pending faults, consumed in order by KMS calls (not admin calls).
    Each: {"kind": throttle|error500|error|drop|delay, "count": N,
    "ops": [op names] or None, "delay_ms": D, "type": ..., "status": ...}.
    Besides them, at most one standing random fault: each matching call
    fails with probability "rate", as one of "kinds" picked at random, until
    cleared (transient failures only: what a flaky network or a throttled
    account gives)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.random = None  # {"rate", "kinds", "ops", "seed"} or None
        self.rng = random.Random()

    def _set_random(self, spec, ops):
        """Validate {"rate": R, "kinds": [...], "seed": S} -> the standing
        random fault (not yet installed)."""
        if not isinstance(spec, dict) or "rate" not in spec:
            raise ValueError('"random" must be {"rate": R, "kinds": [...], "seed": S}')
        rate = float(spec["rate"])
        if not 0.0 <= rate <= 1.0:
            raise ValueError("random rate must be between 0 and 1")
        kinds = spec.get("kinds", list(RANDOM_KINDS))
        if (not isinstance(kinds, list) or not kinds or
                not all(k in RANDOM_KINDS for k in kinds)):
            raise ValueError(f"random kinds must be a non-empty list of {', '.join(RANDOM_KINDS)}")
        seed = spec.get("seed")
        return {"rate": rate, "kinds": list(kinds), "ops": ops,
                "seed": None if seed is None else int(seed)}

    def add(self, spec):
        ops = spec.get("ops")
        if ops is not None and (not isinstance(ops, list) or
                                not all(isinstance(o, str) for o in ops)):
            raise ValueError("ops must be a list of operation names")
        added = []
        for kind in ("throttle", "error500", "drop"):
            if kind in spec:
                added.append({"kind": kind, "count": int(spec[kind]), "ops": ops})
        if "delay_ms" in spec:
            added.append({"kind": "delay", "count": int(spec.get("count", 1)),
                          "delay_ms": int(spec["delay_ms"]), "ops": ops})
        if "error" in spec:
            e = spec["error"]
            if not isinstance(e, dict) or "type" not in e:
                raise ValueError('"error" must be {"type": T, "status": S, "count": N}')
            added.append({"kind": "error", "count": int(e.get("count", 1)),
                          "type": str(e["type"]), "status": int(e.get("status", 400)),
                          "message": e.get("message"), "ops": ops})
        rnd = self._set_random(spec["random"], ops) if "random" in spec else None
        if not added and rnd is None and not spec.get("clear"):
            raise ValueError("no fault given: use throttle, error500, drop, delay_ms, error, "
                             "random or clear")
        for a in added:
            if a["count"] < 0:
                raise ValueError("count must be >= 0")
        with self.lock:
            if spec.get("clear"):
                self.items.clear()
                self.random = None
            if rnd is not None:
                self.random = rnd
                self.rng.seed(rnd["seed"])
            self.items.extend(a for a in added if a["count"] > 0)
            return self._pending()

    def take(self, op, named_only=False):
        """-> (delay_ms, fault or None) for this call; consumes counts.
        named_only: only faults whose "ops" name op apply (the calls that are
        not KMS calls: STS, IMDS, container, SSO)."""
        delay, fault = 0, None
        with self.lock:
            for f in self.items:
                if f["count"] <= 0 or (f["ops"] is not None and op not in f["ops"]):
                    continue
                if named_only and f["ops"] is None:
                    continue
                if f["kind"] == "delay":
                    if delay == 0:
                        delay = f["delay_ms"]
                        f["count"] -= 1
                elif fault is None:
                    fault = dict(f)
                    f["count"] -= 1
            self.items = [f for f in self.items if f["count"] > 0]
            r = self.random
            if named_only and r is not None and r["ops"] is None:
                r = None
            if (fault is None and r is not None and (r["ops"] is None or op in r["ops"])
                    and self.rng.random() < r["rate"]):
                fault = {"kind": self.rng.choice(r["kinds"]), "random": True}
        return delay, fault

    def _pending(self):
        out = [dict(i) for i in self.items]
        if self.random is not None:
            out.append(dict(self.random, kind="random"))
        return out

    def pending(self):
        with self.lock:
            return self._pending()


class CallLog:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []
        self.seq = 0

    def add(self, **entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.calls.append(entry)
            del self.calls[:-MAX_CALL_LOG]

    def get(self):
        with self.lock:
            return list(self.calls)

    def clear(self):
        with self.lock:
            self.calls.clear()


# --------------------------------------------------------------------------
# HTTP


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cryptvol-test-kms"
    sys_version = ""
    timeout = 60

    # set on the class by make_server
    kms = None
    faults = None
    log = None
    opts = None

    def log_message(self, fmt, *args):
        pass  # one line per KMS call is printed by _finish_call instead

    # -- plumbing ----------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline(16)
                if len(data) > MAX_BODY:
                    raise KMSError("ValidationException", "Request body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise KMSError("ValidationException", "Request body too large")
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, rid, ctype=JSON_CT, etype=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("x-amzn-RequestId", rid)
        if etype:
            self.send_header("x-amzn-ErrorType", etype)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, err, rid):
        body = {"__type": err.etype}
        if err.message is not None:
            body["message"] = err.message
        self._send(err.status, body, rid, etype=err.etype)

    def _drop(self):
        self.close_connection = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- methods -----------------------------------------------------------

    def do_GET(self):
        rid = str(uuid.uuid4())
        if self.path.startswith("/_admin/"):
            return self._admin("GET", rid)
        if self.path.split("?")[0] == "/federation/credentials":
            return self._sso(rid)
        self._send_error(KMSError("UnknownOperationException", None), rid)

    def do_DELETE(self):
        rid = str(uuid.uuid4())
        if self.path.startswith("/_admin/"):
            return self._admin("DELETE", rid)
        self._send_error(KMSError("UnknownOperationException", None), rid)

    def do_POST(self):
        rid = str(uuid.uuid4())
        if self.path.startswith("/_admin/"):
            return self._admin("POST", rid)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if "X-Amz-Target" not in self.headers and ctype == "application/x-www-form-urlencoded":
            return self._sts(rid)
        t0 = time.monotonic()
        op, key_ref, region, akid, fault_kind = None, None, None, None, None
        self.principal = None
        try:
            try:
                body = self._read_body()
            except (ValueError, OSError):
                self.close_connection = True
                raise KMSError("SerializationException", "Could not read the request body")
            target = self.headers.get("X-Amz-Target", "")
            if target.startswith("TrentService."):
                op = target[len("TrentService."):]
            delay_ms, fault = self.faults.take(op or "")
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
            if fault is not None:
                fault_kind = fault["kind"]
                if fault_kind == "drop":
                    self.log.add(time=_now(), op=op, key_id=None, region=None,
                                 principal=None, result="dropped", status=None, request_id=rid,
                                 fault="drop", ms=round((time.monotonic() - t0) * 1000))
                    self._say(rid, op, "dropped")
                    return self._drop()
                if fault_kind == "throttle":
                    raise KMSError("ThrottlingException", "Rate exceeded")
                if fault_kind == "error500":
                    raise KMSError("KMSInternalException",
                                   "The request was rejected because an internal exception occurred.",
                                   500)
                raise KMSError(fault["type"], fault.get("message"), fault["status"])

            with self.kms.lock:
                self.kms.load_config()
                regions = self.kms.regions
                if self.server.region is not None:
                    regions = [self.server.region] if self.server.region in regions else []
                header_pairs = list(self.headers.items())
                cred, region = verify_sigv4(
                    self.command, self.path, header_pairs, body,
                    self.kms.find_credential, regions,
                    check_skew=not self.opts.no_clock_skew_check)
                akid = cred["access_key_id"]
                self.principal = self.kms.principal(cred)
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype not in ("application/x-amz-json-1.1", "application/x-amz-json-1.0"):
                    raise KMSError("UnknownOperationException", None)
                if op is None or op not in OPERATIONS:
                    raise KMSError("UnknownOperationException", None)
                try:
                    req = json.loads(body.decode("utf-8") or "{}")
                except (UnicodeDecodeError, ValueError):
                    raise KMSError("SerializationException",
                                   "Start of structure or map found where not expected.")
                if not isinstance(req, dict):
                    raise KMSError("SerializationException",
                                   "Start of structure or map found where not expected.")
                key_ref = req.get("KeyId") or req.get("TargetKeyId") or req.get("SourceKeyId")
                self.kms.set_call_grant_tokens(req)
                resp = getattr(self.kms, "op_" + op)(region, cred, req)
            self._send(200, resp, rid)
            self._finish_call(rid, op, key_ref, region, akid, "ok", 200, fault_kind, t0)
        except KMSError as e:
            self._send_error(e, rid)
            self._finish_call(rid, op, key_ref, region, akid, e.etype, e.status, fault_kind, t0,
                              e.message)
        except Exception as e:  # a bug here: report it as AWS would, a 500
            print(f"kms-server: internal error: {type(e).__name__}: {e}", file=sys.stderr)
            err = KMSError("KMSInternalException", "Internal error in the test KMS.", 500)
            self._send_error(err, rid)
            self._finish_call(rid, op, key_ref, region, akid, err.etype, 500, fault_kind, t0)

    def _say(self, rid, op, result):
        if not self.opts.quiet:
            print(f"kms-server: {rid} {op} {result}", file=sys.stderr, flush=True)

    def _finish_call(self, rid, op, key_ref, region, akid, result, status, fault, t0, msg=None,
                     issued=None):
        """Log a call; issued: the temporary credentials it gave out, if any
        (their principal, access key id and expiry are logged, no secret)."""
        entry = dict(time=_now(), op=op, key_id=key_ref if isinstance(key_ref, str) else None,
                     region=region, access_key=akid, principal=self.principal,
                     result=result, status=status,
                     message=msg, request_id=rid, fault=fault,
                     ms=round((time.monotonic() - t0) * 1000))
        if issued is not None:
            entry.update(assumed=issued["principal"], issued_access_key=issued["access_key_id"],
                         expires=issued["expires"])
        self.log.add(**entry)
        self._say(rid, op, result)

    def _fault_for(self, op, rid, t0):
        """A fault the admin API aimed at this non-KMS op by name ->
        (kind, status, code, message), or None; a drop is done here."""
        delay_ms, fault = self.faults.take(op, named_only=True)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        if fault is None:
            return None
        kind = fault["kind"]
        if kind == "drop":
            self._finish_call(rid, op, None, None, None, "dropped", None, kind, t0)
            self._drop()
            return kind, None, None, None
        if kind == "throttle":
            return kind, 400, "Throttling", "Rate exceeded"
        if kind == "error500":
            return kind, 500, "InternalFailure", "An internal error occurred."
        return kind, fault["status"], fault["type"], fault.get("message") or fault["type"]

    def _sts(self, rid):
        """An STS call (Query protocol): AssumeRole, GetCallerIdentity (both
        SigV4-signed for service sts), AssumeRoleWithWebIdentity (unsigned)."""
        t0 = time.monotonic()
        op, akid, region, fault_kind, issued = "sts:", None, None, None, None
        self.principal = None
        ident = self.kms.identity
        try:
            try:
                body = self._read_body()
                params = {k: v[0] for k, v in urllib.parse.parse_qs(
                    body.decode("utf-8"), keep_blank_values=True).items()}
            except (ValueError, OSError, KMSError):
                self.close_connection = True
                raise STSError("MalformedInput", "Could not read the request body")
            action = params.get("Action", "")
            op = "sts:" + action
            f = self._fault_for(op, rid, t0)
            if f is not None:
                fault_kind = f[0]
                if fault_kind == "drop":
                    return
                raise STSError(f[2], f[3], f[1])
            if params.get("Version", STS_VERSION) != STS_VERSION or action not in (
                    "AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity"):
                raise STSError("InvalidAction", f"Could not find operation {action} for "
                               f"version {params.get('Version', STS_VERSION)}")
            with self.kms.lock:
                self.kms.load_config()
                if action == "AssumeRoleWithWebIdentity":
                    result, issued, self.principal = ident.AssumeRoleWithWebIdentity(params)
                else:
                    regions = sorted(set(self.kms.regions) | {"us-east-1"})
                    try:
                        caller, region = verify_sigv4(
                            self.command, self.path, list(self.headers.items()), body,
                            self.kms.find_credential, regions,
                            check_skew=not self.opts.no_clock_skew_check, service="sts")
                    except KMSError as e:
                        code, status = SIGV4_TO_STS.get(e.etype, (e.etype, e.status))
                        raise STSError(code, e.message or code, status)
                    akid = caller["access_key_id"]
                    self.principal = self.kms.principal(caller)
                    if action == "AssumeRole":
                        result, issued = ident.AssumeRole(caller, params, self.principal)
                    else:
                        result = ident.GetCallerIdentity(caller, self.principal)
            self._send(200, sts_response(action, result, rid), rid, ctype="text/xml")
            self._finish_call(rid, op, None, region, akid, "ok", 200, fault_kind, t0,
                              issued=issued)
        except STSError as e:
            self._send(e.status, sts_error(e, rid), rid, ctype="text/xml")
            self._finish_call(rid, op, None, region, akid, e.code, e.status, fault_kind, t0,
                              e.message)
        except Exception as e:  # a bug here: a 500, as AWS would
            print(f"kms-server: internal error: {type(e).__name__}: {e}", file=sys.stderr)
            err = STSError("InternalFailure", "Internal error in the test STS.", 500)
            self._send(500, sts_error(err, rid), rid, ctype="text/xml")
            self._finish_call(rid, op, None, region, akid, err.code, 500, fault_kind, t0)

    def _sso(self, rid):
        """The SSO portal's GetRoleCredentials: GET /federation/credentials
        ?account_id=&role_name= with the x-amz-sso_bearer_token header."""
        t0 = time.monotonic()
        op, fault_kind, issued = "sso:GetRoleCredentials", None, None
        self.principal = None
        try:
            f = self._fault_for(op, rid, t0)
            if f is not None:
                fault_kind = f[0]
                if fault_kind == "drop":
                    return
                code = "TooManyRequestsException" if fault_kind == "throttle" else f[2]
                raise KMSError(code, f[3], 429 if fault_kind == "throttle" else f[1])
            q = urllib.parse.parse_qs(self.path.partition("?")[2])
            account = q.get("account_id", [None])[0]
            role_name = q.get("role_name", [None])[0]
            token = self.headers.get("x-amz-sso_bearer_token")
            with self.kms.lock:
                self.kms.load_config()
                sso = self.kms.config.get("sso") or {}
                if (token is None or "access_token" not in sso or
                        not hmac.compare_digest(token.encode(), sso["access_token"].encode())):
                    raise KMSError("UnauthorizedException",
                                   "Session token not found or invalid", 401)
                if account is None or role_name is None:
                    raise KMSError("InvalidRequestException",
                                   "account_id and role_name are required", 400)
                if (account != sso.get("account_id") or role_name != sso.get("role_name")
                        or self.kms.identity.role(role_name) is None):
                    raise KMSError("ForbiddenException", "No access", 403)
                issued = self.kms.identity.issue(role_name, "cryptvol-sso-user", 3600, "sso")
            self.principal = issued["principal"]
            self._send(200, {"roleCredentials": {
                "accessKeyId": issued["access_key_id"],
                "secretAccessKey": issued["secret_access_key"],
                "sessionToken": issued["session_token"],
                "expiration": int(issued["expires"] * 1000)}}, rid, ctype="application/json")
            self._finish_call(rid, op, None, None, None, "ok", 200, fault_kind, t0,
                              issued=issued)
        except KMSError as e:
            self._send(e.status, {"message": e.message}, rid, ctype="application/json",
                       etype=e.etype)
            self._finish_call(rid, op, None, None, None, e.etype, e.status, fault_kind, t0,
                              e.message)

    def _admin(self, method, rid):
        path = self.path.split("?", 1)[0]
        try:
            body = self._read_body() if method == "POST" else b""
            req = json.loads(body.decode() or "{}")
            if not isinstance(req, dict):
                raise ValueError("body must be a JSON object")
            if method == "GET" and path == "/_admin/calls":
                out = {"calls": self.log.get()}
            elif method == "DELETE" and path == "/_admin/calls":
                self.log.clear()
                out = {"cleared": True}
            elif method == "POST" and path == "/_admin/fault":
                out = {"pending": self.faults.add(req)}
            elif method == "GET" and path == "/_admin/fault":
                out = {"pending": self.faults.pending()}
            elif method == "POST" and path == "/_admin/delete-key":
                region = req.get("Region") or self.server.region or self.kms.regions[0]
                with self.kms.lock:
                    out = self.kms.complete_deletion(region, req.get("KeyId"))
            elif method == "GET" and path == "/_admin/keys":
                with self.kms.lock:
                    out = {"keys": self.kms.summary()}
            elif method == "GET" and path == "/_admin/health":
                out = {"ok": True, "region": self.server.region}
            else:
                return self._send(404, {"error": f"no admin endpoint {method} {path}"}, rid,
                                  ctype="application/json")
            self._send(200, out, rid, ctype="application/json")
        except KMSError as e:
            self._send(400, {"error": e.etype, "message": e.message}, rid,
                       ctype="application/json")
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            self._send(400, {"error": str(e)}, rid, ctype="application/json")


class TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, ctx, region):
        super().__init__(addr, handler)
        self.ctx = ctx
        self.region = region  # None: any configured region (from the scope)

    def finish_request(self, request, client_address):
        # TLS handshake in the worker thread, so a stalled client cannot
        # block accept().
        try:
            request.settimeout(30)
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout)):
            return
        super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local AWS KMS test double for cryptvol.")
    ap.add_argument("--state-dir", required=True,
                    help="holds config.json (unless --config) and state.json")
    ap.add_argument("--config", help="config file (default STATE_DIR/config.json)")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 = pick one")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--region-listener", action="append", default=[],
                    metavar="REGION=PORT_FILE",
                    help="also listen on a port of its own that serves only REGION "
                         "(a per-region endpoint); its port is written to PORT_FILE")
    ap.add_argument("--imds-port-file",
                    help="serve EC2 instance metadata (IMDSv2) on a plain-HTTP loopback "
                         "port, written to this file")
    ap.add_argument("--container-port-file",
                    help="serve the container credentials endpoint on a plain-HTTP "
                         "loopback port, written to this file")
    ap.add_argument("--no-clock-skew-check", action="store_true",
                    help="accept any X-Amz-Date (for fixed-date test vectors)")
    ap.add_argument("--quiet", action="store_true", help="no per-call log lines on stderr")
    opts = ap.parse_args(argv)

    config = opts.config or os.path.join(opts.state_dir, "config.json")
    kms = KMS(opts.state_dir, config)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.cert, opts.key)

    Handler.kms, Handler.faults, Handler.log, Handler.opts = kms, Faults(), CallLog(), opts
    plain = []  # (server, port file) of the plain-HTTP listeners
    for handler, pf, name in ((metadata.IMDSHandler, opts.imds_port_file, "instance metadata"),
                              (metadata.ContainerHandler, opts.container_port_file,
                               "container credentials")):
        if pf:
            plain.append((metadata.serve(handler, kms, Handler.faults, Handler.log, opts, pf,
                                         write_port_file, name), pf))

    listeners = [(None, opts.port, opts.port_file)]
    for spec in opts.region_listener:
        region, eq, pf = spec.partition("=")
        if not eq or not pf:
            ap.error("--region-listener wants REGION=PORT_FILE")
        if region not in kms.regions:
            ap.error(f"--region-listener: {region} is not in the config's regions")
        listeners.append((region, 0, pf))

    servers = []
    for region, port, pf in listeners:
        srv = TLSServer(("127.0.0.1", port), Handler, ctx, region)
        servers.append((srv, pf))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())

    threads = []
    for srv, pf in servers:
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                             daemon=True)
        t.start()
        threads.append(t)
    for srv, pf in servers:
        port = srv.server_address[1]
        what = f"region {srv.region}" if srv.region else "regions " + ",".join(kms.regions)
        print(f"kms-server: listening on https://127.0.0.1:{port} ({what})",
              file=sys.stderr, flush=True)
        if pf:
            write_port_file(pf, port)

    while not stop.wait(1.0):
        pass
    for srv, _ in servers + plain:
        srv.shutdown()
        srv.server_close()
    with kms.lock:
        kms.save()
    for _, pf in servers + plain:
        if pf:
            try:
                os.unlink(pf)
            except OSError:
                pass
    print("kms-server: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

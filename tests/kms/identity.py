"""Identities of the local AWS (tests/kms/kms-server.py): principals, roles,
the temporary credentials it issues, and STS.

Temporary credentials are issued by STS (AssumeRole,
AssumeRoleWithWebIdentity), the instance metadata, the container endpoint
and the SSO portal. Each has the principal
arn:aws:sts::ACCT:assumed-role/ROLE/SESSION, its role's allow list (looked up
at each use, so a test may change it), and an expiry: the asked duration
capped by the role's "test_lifetime_seconds". They live in memory only; a
restart forgets them.

STS speaks the Query protocol (form-encoded POST, XML answers in AWS's
namespace; errors as <ErrorResponse>). Web identity tokens are HS256 JWTs
checked against the config's "oidc_providers" (tests/kms/make-jwt.py makes
them). The HTTP plumbing is in kms-server.py; this module only decides.
"""

import base64
import datetime
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
from xml.sax.saxutils import escape

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
MIN_DURATION = 900
MAX_DURATION = 43200
CHAINED_MAX = 3600

_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$")
_SESSION_RE = re.compile(r"^[\w+=,.@-]*$")
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]*$")


class STSError(Exception):
    """An STS error: <Code>, <Message>, HTTP status; Type Sender unless 5xx."""

    def __init__(self, code, message, status=400):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status


# How the SigV4 verifier's KMS-style errors read in STS.
SIGV4_TO_STS = {
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "IncompleteSignatureException": ("IncompleteSignature", 400),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "ExpiredTokenException": ("ExpiredToken", 400),
}


def iso8601(t):
    """Epoch seconds -> "2026-12-02T05:11:15Z", as AWS writes expirations."""
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _stable_id(prefix, text):
    """A unique id as IAM makes them (AIDA.../AROA...), stable for a name."""
    digest = hashlib.sha256(text.encode()).digest()
    alphabet = string.ascii_uppercase + "234567"
    return prefix + "".join(alphabet[b % 32] for b in digest[:17])


def _b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def xml_elements(items):
    """[(name, value)] -> XML; a value may be a nested list of pairs."""
    out = []
    for name, value in items:
        if value is None:
            continue
        inner = xml_elements(value) if isinstance(value, list) else escape(str(value))
        out.append(f"<{name}>{inner}</{name}>")
    return "".join(out)


def sts_response(action, result, request_id):
    return (f'<{action}Response xmlns="{STS_NS}">'
            f"<{action}Result>{xml_elements(result)}</{action}Result>"
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>").encode()


def sts_error(err, request_id):
    kind = "Receiver" if err.status >= 500 else "Sender"
    return (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()


class Identity:
    """Roles, trust and the credentials issued for them. cfg() gives the
    current config (kms-server.py reloads it when it changes)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.issued = {}  # access key id -> issued credential

    @property
    def account(self):
        return self.cfg()["account_id"]

    # -- roles and principals ------------------------------------------------

    def role_arn(self, name):
        return f"arn:aws:iam::{self.account}:role/{name}"

    def role(self, name):
        for r in self.cfg().get("roles", []):
            if r.get("name") == name:
                return r
        return None

    def role_by_arn(self, arn):
        m = _ROLE_ARN_RE.match(arn)
        if not m or m.group(1) != self.account:
            return None
        r = self.role(m.group(2))
        return r if r is not None and self.role_arn(r["name"]) == arn else None

    def user_id(self, cred):
        """GetCallerIdentity's UserId: AIDA... for a user, ROLEID:SESSION for
        an assumed-role session."""
        if cred.get("role") is not None:
            return f"{_stable_id('AROA', self.role_arn(cred['role']))}:{cred['session']}"
        return _stable_id("AIDA", cred.get("user", "test"))

    # -- issuing -------------------------------------------------------------

    def issue(self, role_name, session, duration, source):
        """New temporary credentials for a session of role role_name, valid
        for duration seconds capped by the role's test_lifetime_seconds.
        source: what issued them (sts, imds, container, sso)."""
        role = self.role(role_name)
        lifetime = duration
        if role.get("test_lifetime_seconds") is not None:
            lifetime = min(lifetime, float(role["test_lifetime_seconds"]))
        now = time.time()
        akid = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                                for _ in range(16))
        cred = {
            "access_key_id": akid,
            "secret_access_key": secrets.token_urlsafe(30)[:40],
            "session_token": "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(180),
            "role": role_name, "session": session, "source": source,
            "role_arn": self.role_arn(role_name),
            "principal": f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{session}",
            "issued": now, "expires": now + lifetime,
        }
        with self.lock:
            # Forget credentials expired for a day: nothing refers to them.
            for k in [k for k, c in self.issued.items() if c["expires"] < now - 86400]:
                del self.issued[k]
            self.issued[akid] = cred
        return dict(cred)

    def find(self, akid):
        """The issued credential with this access key id, with its role's
        current allow list (absent: everything), or None."""
        with self.lock:
            cred = self.issued.get(akid)
        if cred is None:
            return None
        cred = dict(cred)
        role = self.role(cred["role"]) or {"allow": []}
        if "allow" in role:
            cred["allow"] = role["allow"]
        return cred

    # -- STS parameters --------------------------------------------------------

    @staticmethod
    def _required(p, name, field):
        v = p.get(name)
        if v is None:
            raise STSError("ValidationError",
                           f"1 validation error detected: Value null at '{field}' failed to "
                           "satisfy constraint: Member must not be null")
        return v

    def _common(self, p):
        """RoleArn, RoleSessionName, DurationSeconds as AWS validates them."""
        arn = self._required(p, "RoleArn", "roleArn")
        if not 20 <= len(arn) <= 2048:
            raise STSError("ValidationError",
                           f"1 validation error detected: Value '{arn}' at 'roleArn' failed "
                           "to satisfy constraint: Member must have length greater than or "
                           "equal to 20")
        session = self._required(p, "RoleSessionName", "roleSessionName")
        if not 2 <= len(session) <= 64:
            bound = ("greater than or equal to 2" if len(session) < 2
                     else "less than or equal to 64")
            raise STSError("ValidationError",
                           f"1 validation error detected: Value '{session}' at "
                           "'roleSessionName' failed to satisfy constraint: Member must have "
                           f"length {bound}")
        if not _SESSION_RE.match(session):
            raise STSError("ValidationError",
                           f"1 validation error detected: Value '{session}' at "
                           "'roleSessionName' failed to satisfy constraint: Member must "
                           r"satisfy regular expression pattern: [\w+=,.@-]*")
        raw = p.get("DurationSeconds", "3600")
        try:
            duration = int(raw)
        except ValueError:
            raise STSError("ValidationError",
                           f"Value '{raw}' for parameter DurationSeconds is invalid.")
        if duration < MIN_DURATION:
            raise STSError("ValidationError",
                           f"1 validation error detected: Value '{duration}' at "
                           "'durationSeconds' failed to satisfy constraint: Member must have "
                           f"value greater than or equal to {MIN_DURATION}")
        if duration > MAX_DURATION:
            raise STSError("ValidationError",
                           f"1 validation error detected: Value '{duration}' at "
                           "'durationSeconds' failed to satisfy constraint: Member must have "
                           f"value less than or equal to {MAX_DURATION}")
        return arn, session, duration

    @staticmethod
    def _max_duration(role, duration):
        if duration > int(role.get("max_session_duration", 3600)):
            raise STSError("ValidationError",
                           "The requested DurationSeconds exceeds the MaxSessionDuration set "
                           "for this role.")

    def _result(self, cred, extra=()):
        role_id = _stable_id("AROA", cred["role_arn"])
        return list(extra) + [
            ("AssumedRoleUser", [("AssumedRoleId", f"{role_id}:{cred['session']}"),
                                 ("Arn", cred["principal"])]),
            ("Credentials", [("AccessKeyId", cred["access_key_id"]),
                             ("SecretAccessKey", cred["secret_access_key"]),
                             ("SessionToken", cred["session_token"]),
                             ("Expiration", iso8601(cred["expires"]))]),
        ]

    # -- STS operations: (caller credential or None, params) -> (result, log) ----

    def AssumeRole(self, caller, p, principal):
        arn, session, duration = self._common(p)
        ext = p.get("ExternalId")
        if ext is not None and (not 2 <= len(ext) <= 1224 or not _EXTERNAL_ID_RE.match(ext)):
            raise STSError("ValidationError",
                           f"1 validation error detected: Value '{ext}' at 'externalId' "
                           "failed to satisfy constraint: Member must satisfy regular "
                           r"expression pattern: [\w+=,.@:\/-]*")
        denied = STSError("AccessDenied",
                          f"User: {principal} is not authorized to perform: sts:AssumeRole "
                          f"on resource: {arn}", 403)
        role = self.role_by_arn(arn)
        if role is None:
            raise denied
        names = {principal, caller.get("role_arn"), "*", f"arn:aws:iam::{self.account}:root"}
        if not any(t.get("principal") in names and
                   (t.get("external_id") is None or t["external_id"] == ext)
                   for t in role.get("trust", []) if "principal" in t):
            raise denied
        if caller.get("role") is not None and duration > CHAINED_MAX:
            raise STSError("ValidationError",
                           "The requested DurationSeconds exceeds the 1 hour session limit "
                           "for roles assumed by role chaining.")
        self._max_duration(role, duration)
        cred = self.issue(role["name"], session, duration, "sts")
        return self._result(cred, [("SourceIdentity", None)]), cred

    def verify_jwt(self, token):
        """An HS256 web identity token checked as STS checks an OIDC token ->
        (claims, provider)."""
        bad = STSError("InvalidIdentityToken", "Couldn't parse the web identity token.")
        parts = token.split(".")
        if len(parts) != 3:
            raise bad
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
        except (ValueError, TypeError):
            raise bad
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise bad
        if header.get("alg") != "HS256":
            raise STSError("InvalidIdentityToken",
                           f"Unsupported token signing algorithm {header.get('alg')!r}.")
        iss = str(claims.get("iss", ""))
        provider = next((pr for pr in self.cfg().get("oidc_providers", [])
                         if pr.get("issuer", "").rstrip("/") == iss.rstrip("/")), None)
        if provider is None:
            raise STSError("InvalidIdentityToken",
                           f"No OpenIDConnect provider found in your account for {iss}")
        key = base64.b64decode(provider["hs256_key_b64"])
        want = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, sig):
            raise STSError("InvalidIdentityToken",
                           "The web identity token's signature could not be verified.")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            raise STSError("InvalidIdentityToken", "The web identity token has no exp claim.")
        now = time.time()
        if exp <= now:
            raise STSError("ExpiredTokenException",
                           f"Token expired: current date/time {int(now)} must be before the "
                           f"expiration date/time {int(exp)}")
        auds = claims.get("aud")
        auds = auds if isinstance(auds, list) else [auds]
        allowed = provider.get("audiences", ["sts.amazonaws.com"])
        if not any(a in allowed for a in auds):
            raise STSError("InvalidIdentityToken", "Incorrect token audience")
        return claims, provider

    def AssumeRoleWithWebIdentity(self, p):
        arn, session, duration = self._common(p)
        token = self._required(p, "WebIdentityToken", "webIdentityToken")
        if not 4 <= len(token) <= 20000:
            raise STSError("ValidationError",
                           "1 validation error detected: Value at 'webIdentityToken' failed "
                           "to satisfy constraint: Member must have length between 4 and 20000")
        claims, provider = self.verify_jwt(token)
        iss, sub = str(claims["iss"]), str(claims.get("sub", ""))
        auds = claims.get("aud")
        auds = auds if isinstance(auds, list) else [auds]
        role = self.role_by_arn(arn)

        def trusts(w):
            return (w.get("issuer", "").rstrip("/") == iss.rstrip("/")
                    and (w.get("audience") is None or w["audience"] in auds)
                    and (w.get("subject") is None or fnmatch.fnmatchcase(sub, w["subject"])))

        if role is None or not any(trusts(t["web_identity"]) for t in role.get("trust", [])
                                   if "web_identity" in t):
            raise STSError("AccessDenied",
                           "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        self._max_duration(role, duration)
        cred = self.issue(role["name"], session, duration, "sts")
        provider_name = re.sub(r"^https?://", "", iss)
        extra = [("SubjectFromWebIdentityToken", sub), ("Audience", auds[0]),
                 ("Provider", provider_name)]
        return self._result(cred, extra), cred, f"{iss}:{sub}"

    def GetCallerIdentity(self, caller, principal):
        return [("Arn", principal), ("UserId", self.user_id(caller)),
                ("Account", self.account)]

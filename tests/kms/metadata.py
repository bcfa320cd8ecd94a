"""The local AWS's plain-HTTP credential endpoints (tests/kms/kms-server.py):
EC2 instance metadata with IMDSv2 only, and the ECS/EKS container
credentials endpoint. Each serves on its own loopback listener.

IMDSv2: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
(1..21600) gives a token; every GET must carry it in X-aws-ec2-metadata-token
(none, unknown or expired: 401, as an instance with HttpTokens=required).
A PUT carrying X-Forwarded-For is refused with 403, as AWS does.

Container: GET of the config's container.path gives the role's credentials;
when container.token is set, the Authorization header must equal it (absent:
401, wrong: 403).
"""

import http.server
import json
import secrets
import sys
import threading
import time
import uuid

from identity import iso8601

IMDS_TTL_MAX = 21600
INSTANCE_ID = "i-0c0ffee0c0ffee000"
TEXT = "text/plain"


class PlainHandler(http.server.BaseHTTPRequestHandler):
    """Shared plumbing: class attributes kms (lock, load_config, config,
    identity), log (the call log), faults, opts; set by serve()."""

    protocol_version = "HTTP/1.1"
    server_version = "cryptvol-test-aws"
    sys_version = ""
    timeout = 30
    kms = faults = log = opts = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype=TEXT, headers=()):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _record(self, op, t0, status, result, principal=None, cred=None, fault=None):
        entry = dict(time=round(time.time(), 3), op=op, key_id=None, region=None,
                     access_key=None, principal=principal, result=result, status=status,
                     message=None, request_id=str(uuid.uuid4()), fault=fault,
                     ms=round((time.monotonic() - t0) * 1000), path=self.path.split("?")[0])
        if cred is not None:
            entry.update(issued_access_key=cred["access_key_id"], expires=cred["expires"])
        self.log.add(**entry)
        if not self.opts.quiet:
            print(f"kms-server: {entry['request_id']} {op} {result}", file=sys.stderr, flush=True)

    def _fault(self, op, t0):
        """Apply a fault the admin API aimed at op (by name). True: answered."""
        delay_ms, fault = self.faults.take(op, named_only=True)
        if delay_ms:
            time.sleep(delay_ms / 1000.0)
        if fault is None:
            return False
        kind = fault["kind"]
        if kind == "drop":
            self._record(op, t0, None, "dropped", fault=kind)
            self.close_connection = True
            return True
        status = {"throttle": 429, "error500": 500}.get(kind, fault.get("status", 500))
        self._send(status, fault.get("message") or "fault injected")
        self._record(op, t0, status, fault.get("type", kind), fault=kind)
        return True

    def _issue(self, role_name, session, source):
        """Credentials of role role_name for one of these endpoints (an hour
        unless the role's test_lifetime_seconds is shorter)."""
        return self.kms.identity.issue(role_name, session, 3600, source)


class IMDSHandler(PlainHandler):
    tokens = {}  # token -> expiry (epoch seconds)
    tokens_lock = threading.Lock()

    def do_PUT(self):
        t0 = time.monotonic()
        op = "imds:token"
        if self._fault(op, t0):
            return
        if self.path.split("?")[0] != "/latest/api/token":
            self._send(404, "Not Found")
            return self._record(op, t0, 404, "NotFound")
        if self.headers.get("X-Forwarded-For") is not None:
            self._send(403, "Forbidden")
            return self._record(op, t0, 403, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(ttl)
        except (TypeError, ValueError):
            ttl = None
        if ttl is None or not 1 <= ttl <= IMDS_TTL_MAX:
            self._send(400, "Bad Request")
            return self._record(op, t0, 400, "BadRequest")
        token = "AQAEA" + secrets.token_urlsafe(40)
        now = time.time()
        with self.tokens_lock:
            for k in [k for k, e in self.tokens.items() if e <= now]:
                del self.tokens[k]
            self.tokens[token] = now + ttl
        self._send(200, token, headers=[("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])
        self._record(op, t0, 200, "ok")

    def _token_ok(self):
        token = self.headers.get("X-aws-ec2-metadata-token")
        with self.tokens_lock:
            exp = self.tokens.get(token) if token else None
        return exp is not None and exp > time.time()

    def do_GET(self):
        t0 = time.monotonic()
        path = self.path.split("?")[0]
        creds_prefix = "/latest/meta-data/iam/security-credentials/"
        role_path = path.startswith(creds_prefix) and path != creds_prefix
        op = "imds:credentials" if role_path else "imds:metadata"
        if self._fault(op, t0):
            return
        if not self._token_ok():
            self._send(401, "Unauthorized")
            return self._record(op, t0, 401, "Unauthorized")
        with self.kms.lock:
            self.kms.load_config()
            inst = self.kms.config.get("instance")
            role = inst and inst.get("role")
            region = (inst or {}).get("region", self.kms.config["regions"][0])
            cred = None
            if path in (creds_prefix, creds_prefix.rstrip("/")) and role:
                body, ctype = role, TEXT
            elif (role_path and role and path[len(creds_prefix):] == role
                  and self.kms.identity.role(role) is not None):
                cred = self._issue(role, INSTANCE_ID, "imds")
                body = json.dumps({
                    "Code": "Success", "LastUpdated": iso8601(cred["issued"]),
                    "Type": "AWS-HMAC", "AccessKeyId": cred["access_key_id"],
                    "SecretAccessKey": cred["secret_access_key"],
                    "Token": cred["session_token"], "Expiration": iso8601(cred["expires"])},
                    indent=2)
                ctype = TEXT
            elif path == "/latest/meta-data/iam/info" and role:
                body = json.dumps({
                    "Code": "Success", "LastUpdated": iso8601(time.time()),
                    "InstanceProfileArn":
                        f"arn:aws:iam::{self.kms.account}:instance-profile/{role}",
                    "InstanceProfileId": "AIPA" + role.upper()[:17]}, indent=2)
                ctype = TEXT
            elif path == "/latest/meta-data/placement/region" and inst:
                body, ctype = region, TEXT
            elif path == "/latest/meta-data/placement/availability-zone" and inst:
                body, ctype = region + "a", TEXT
            elif path == "/latest/meta-data/instance-id" and inst:
                body, ctype = INSTANCE_ID, TEXT
            else:
                body = None
        if body is None:
            self._send(404, "Not Found")
            return self._record(op, t0, 404, "NotFound")
        self._send(200, body, ctype)
        self._record(op, t0, 200, "ok", principal=cred and cred["principal"], cred=cred)


class ContainerHandler(PlainHandler):
    def do_GET(self):
        t0 = time.monotonic()
        op = "container:credentials"
        if self._fault(op, t0):
            return
        with self.kms.lock:
            self.kms.load_config()
            c = self.kms.config.get("container")
        if not c or self.path.split("?")[0] != c.get("path"):
            self._send(404, json.dumps({"Code": "NotFound", "Message": "No such path"}),
                       "application/json")
            return self._record(op, t0, 404, "NotFound")
        want = c.get("token")
        got = self.headers.get("Authorization")
        if want is not None and got is None:
            self._send(401, json.dumps({"Code": "AccessDenied",
                                        "Message": "Authorization header missing"}),
                       "application/json")
            return self._record(op, t0, 401, "AccessDenied")
        if want is not None and not secrets.compare_digest(want.encode(), got.encode()):
            self._send(403, json.dumps({"Code": "AccessDenied",
                                        "Message": "Invalid authorization token"}),
                       "application/json")
            return self._record(op, t0, 403, "AccessDenied")
        with self.kms.lock:
            if self.kms.identity.role(c["role"]) is None:
                cred = None
            else:
                cred = self._issue(c["role"], "cryptvol-container", "container")
        if cred is None:
            self._send(500, json.dumps({"Code": "InternalError",
                                        "Message": f"No role {c['role']} in the config"}),
                       "application/json")
            return self._record(op, t0, 500, "InternalError")
        body = json.dumps({"AccessKeyId": cred["access_key_id"],
                           "SecretAccessKey": cred["secret_access_key"],
                           "Token": cred["session_token"],
                           "Expiration": iso8601(cred["expires"]),
                           "RoleArn": cred["role_arn"]})
        self._send(200, body, "application/json")
        self._record(op, t0, 200, "ok", principal=cred["principal"], cred=cred)


def serve(handler, kms, faults, log, opts, port_file, write_port_file, name):
    """Start a loopback plain-HTTP listener for handler in a thread ->
    the server (stop with shutdown())."""
    cls = type(handler.__name__, (handler,), dict(kms=kms, faults=faults, log=log, opts=opts))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), cls)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    port = srv.server_address[1]
    print(f"kms-server: {name} on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    write_port_file(port_file, port)
    return srv

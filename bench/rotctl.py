#!/usr/bin/python3
"""The online-rotation benchmark's view of a server: its control socket
(doc/control.md) and its CPU time. One connection, polled every --interval
seconds, so that watching costs the server one status request per poll and
no process start.

  rotctl.py SOCK status
      the "rotation" member of one status reply, as JSON
  rotctl.py SOCK run --pid PID [--timeout S] -- CMD...
      run CMD (cryptvol-keymgr rotate-dek ... --detach), then poll until the
      rotation's state is "done"; print wall seconds from CMD's start to
      "done" and PID's CPU seconds over them
  rotctl.py SOCK during --pid PID -- CMD...
      run CMD (a cryptvol-bench run, which prints one JSON object) while a
      rotation runs; print CMD's object with the rotation's bytes and rate
      over CMD's run, whether the rotation ran all along ("covered"), and
      PID's CPU seconds
  rotctl.py SOCK wait [--timeout S]
      poll until the rotation's state is "done"

Exit status 1, with a message on stderr, when the rotation fails, the
control socket refuses, CMD fails, or --timeout passes."""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid):
    """User + system CPU seconds of process pid (all its threads)."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


class Control:
    """A connection to a server's control socket."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("r")

    def request(self, req):
        self.s.sendall((json.dumps(req) + "\n").encode())
        line = self.f.readline()
        if not line:
            sys.exit(f"rotctl: the server closed the control socket after {req}")
        r = json.loads(line)
        if not r.get("ok"):
            sys.exit(f"rotctl: {req['cmd']}: {r.get('error')}")
        return r

    def rotation(self):
        return self.request({"cmd": "status"}).get("rotation") or {"state": "none"}

    def wait_done(self, interval, timeout, t0):
        """Poll until "done"; return the last status and when it was seen."""
        while True:
            st = self.rotation()
            now = time.monotonic()
            if st.get("state") == "done":
                return st, now
            if st.get("state") in ("failed", "none"):
                sys.exit(f"rotctl: rotation state {st.get('state')}: {st.get('error', '')}")
            if now - t0 > timeout:
                sys.exit(f"rotctl: rotation not done after {timeout} s: {json.dumps(st)}")
            time.sleep(interval)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"rotctl: {' '.join(cmd)} exited with {r.returncode}")
    return r.stdout


ap = argparse.ArgumentParser()
ap.add_argument("sock")
ap.add_argument("action", choices=("status", "run", "during", "wait"))
ap.add_argument("--pid", type=int, default=0)
ap.add_argument("--interval", type=float, default=0.05)
ap.add_argument("--timeout", type=float, default=600)
argv = sys.argv[1:]
cmd = argv[argv.index("--") + 1:] if "--" in argv else []
a = ap.parse_args(argv[:len(argv) - len(cmd) - (1 if cmd else 0)])
a.cmd = cmd
ctl = Control(a.sock)

if a.action == "status":
    print(json.dumps(ctl.rotation()))
elif a.action == "wait":
    t0 = time.monotonic()
    st, t1 = ctl.wait_done(a.interval, a.timeout, t0)
    print(json.dumps({"wait_s": t1 - t0, "rotation": st}))
elif a.action == "run":
    c0, t0 = cpu_secs(a.pid), time.monotonic()
    run(a.cmd)
    t_cmd = time.monotonic()
    st, t1 = ctl.wait_done(a.interval, a.timeout, t0)
    print(json.dumps({"wall_s": t1 - t0, "cmd_s": t_cmd - t0,
                      "server_cpu_s": cpu_secs(a.pid) - c0, "bytes": st.get("total"),
                      "server_rate_mib_s": st.get("rate_mib_s"), "steps": st.get("steps")}))
else:  # during
    st0, c0, t0 = ctl.rotation(), cpu_secs(a.pid), time.monotonic()
    out = run(a.cmd)
    st1, c1, t1 = ctl.rotation(), cpu_secs(a.pid), time.monotonic()
    r = json.loads(out)
    moved = st1.get("done", 0) - st0.get("done", 0)
    r.update(window_s=t1 - t0, server_cpu_s=c1 - c0, rot_bytes=moved,
             rot_mib_s=moved / 2**20 / (t1 - t0), rot_state=st1.get("state"),
             covered=st0.get("state") == "running" and st1.get("state") == "running",
             rot_limit_mib_s=st1.get("limit_mib_s"))
    print(json.dumps(r))

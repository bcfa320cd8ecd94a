#!/usr/bin/python3
"""The real AWS CLI (Debian's awscli, /usr/bin/aws) without its 1.2 s of
imports per call: this server imports awscli once, then runs each call of
tests/kms/aws-cli in a process forked from it, with the caller's argv,
environment, working directory and standard streams (passed as file
descriptors), and answers with the exit status. The CLI's code runs as
/usr/bin/aws runs it (awscli.clidriver.main), with nothing kept from one
call to the next but imported modules: each call makes its own driver,
session, credential chain and connections. For the tests that use the CLI
as an oracle (test-kms-server-*.sh): ~70 calls each, 1.4 s apiece before.

Usage: aws-cli-server.py SOCKET. Runs until killed.
"""
import array
import json
import os
import signal
import socket
import struct
import sys

# What /usr/bin/aws does before it imports awscli.
if os.environ.get("LC_CTYPE", "") == "UTF-8":
    os.environ["LC_CTYPE"] = "en_US.UTF-8"
import awscli  # noqa: E402
import awscli.clidriver  # noqa: E402

AWSCLI_DATA = os.path.join(os.path.dirname(os.path.abspath(awscli.__file__)), "data")


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("client went away")
        buf += chunk
    return buf


def serve(conn):
    """In the forked child: take the call, become it, run the CLI."""
    fds = array.array("i")
    head, anc, _, _ = conn.recvmsg(4, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if len(head) < 4:
        head += recv_exact(conn, 4 - len(head))
    call = json.loads(recv_exact(conn, struct.unpack(">I", head)[0]))
    if len(fds) != 3:
        raise RuntimeError("expected 3 file descriptors, got %d" % len(fds))
    for i, fd in enumerate(fds):
        os.dup2(fd, i)
        os.close(fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # credential_process waits
    os.chdir(call["cwd"])
    os.environ.clear()
    os.environ.update(call["env"])
    if os.environ.get("LC_CTYPE", "") == "UTF-8":
        os.environ["LC_CTYPE"] = "en_US.UTF-8"
    # What awscli/__init__.py does at import time, with this call's
    # environment: AWS_DATA_PATH, then the CLI's own data directory.
    path = []
    if "AWS_DATA_PATH" in os.environ:
        for p in os.environ["AWS_DATA_PATH"].split(os.pathsep):
            path.append(os.path.expanduser(os.path.expandvars(p)))
    path.append(AWSCLI_DATA)
    awscli._awscli_data_path[:] = path
    os.environ["AWS_DATA_PATH"] = os.pathsep.join(path)
    sys.argv = ["/usr/bin/aws"] + call["argv"]
    try:
        rc = awscli.clidriver.main()
    except SystemExit as e:
        if e.code is None:
            rc = 0
        elif isinstance(e.code, int):
            rc = e.code
        else:
            print(e.code, file=sys.stderr)
            rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return rc if isinstance(rc, int) else 1


def main():
    path = sys.argv[1]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # no zombies
    while True:
        conn, _ = srv.accept()
        if os.fork():
            conn.close()
            continue
        srv.close()
        rc = 255
        try:
            rc = serve(conn)
        except BaseException as e:  # the call's failure, not the server's
            print("aws-cli-server: %r" % e, file=sys.stderr)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(b"%d\n" % rc)
        finally:
            os._exit(0)


if __name__ == "__main__":
    main()

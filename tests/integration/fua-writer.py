#!/usr/bin/python3
"""A client that writes numbered 4 KiB blocks with FUA, for the key-watch and
crash tests.

  fua-writer.py write URI BASE NBLOCKS STOPFILE LOG [--first N] [--stride S]
                [--window START COUNT] [--until-gone]
      Write block n (n = N, N+1, ...; N defaults to 0) at
      BASE + (n * S % NBLOCKS) * 4096 with FUA until STOPFILE exists; append
      "ack n" or "err n ERRNO" to LOG for each (line-buffered, so a reader
      sees each as it happens). After a failure, pause 10 ms (pacing only: a
      refused client should not spin). S (default 1) odd and NBLOCKS a power
      of two spread consecutive writes over the whole region.
      --window: write only blocks START to START + COUNT - 1 of the region
      (block START + n * S % COUNT) and log the block: "ack n b" or
      "err n ERRNO b".
      --until-gone: the server is expected to die (kill -9): connect as soon
      as it listens (retrying until STOPFILE exists) and stop, without an
      error, when the connection is lost (the write in flight is logged as
      "err").
  fua-writer.py verify URI BASE NBLOCKS LOG [PHASES] [--stride S]
                [--gone-ok] [--base FILE]
      Every acknowledged write reads back: each block holds its last
      acknowledged write, or a whole later write that failed (a failed
      write is all or nothing, never torn). Prints the counts. Writes may
      only have failed with EPERM, or (--gone-ok) because the connection
      was lost. PHASES: the runs of acknowledged ("a") and failed ("e")
      writes must be exactly these. --base FILE: the volume held FILE
      before the writes; every block never written must still hold it, a
      block whose writes all failed holds it or one of them, and nothing
      outside the writer's region changed.
"""
import argparse
import errno
import os
import time

import nbd

BS = 4096
GONE = {errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ESHUTDOWN}


def block(n):
    return (b"%015d\n" % n) * (BS // 16)


def connect(a):
    """A connected handle, or None when --until-gone and STOPFILE appeared
    before the server listened."""
    while True:
        h = nbd.NBD()
        try:
            h.connect_uri(a.uri)
            return h
        except nbd.Error:
            if not a.until_gone:
                raise
            if os.path.exists(a.stopfile):
                return None
            time.sleep(0.005)


def write(a):
    with open(a.log, "w", buffering=1) as out:
        h = connect(a)
        if h is None:
            return
        assert h.can_fua(), "the server does not offer FUA"
        n = a.first
        while not os.path.exists(a.stopfile):
            if a.window:
                b = a.window[0] + n * a.stride % a.window[1]
                where = f" {b}"
            else:
                b = n * a.stride % a.nblocks
                where = ""
            try:
                h.pwrite(block(n), a.base + b * BS, nbd.CMD_FLAG_FUA)
                out.write(f"ack {n}{where}\n")
            except nbd.Error as e:
                out.write(f"err {n} {e.errnum}{where}\n")
                if a.until_gone and (h.aio_is_dead() or h.aio_is_closed()):
                    return
                time.sleep(0.01)
            n += 1
    h.shutdown()


def verify(a):
    acked, failed = {}, {}  # block -> last n acknowledged / failed after it
    nack = nerr = 0
    errnos = set()
    phase = []  # "a"/"e" runs, to see the transitions
    for line in open(a.log):
        f = line.split()
        n = int(f[1])
        given = len(f) > (2 if f[0] == "ack" else 3)  # written with --window
        b = int(f[-1]) if given else n * a.stride % a.nblocks
        if f[0] == "ack":
            nack += 1
            acked[b] = n
            failed.pop(b, None)
            if not phase or phase[-1] != "a":
                phase.append("a")
        else:
            nerr += 1
            errnos.add(int(f[2]))
            failed.setdefault(b, []).append(n)
            if not phase or phase[-1] != "e":
                phase.append("e")
    h = nbd.NBD()
    h.connect_uri(a.uri)
    bad = []
    for b, n in acked.items():
        got = h.pread(BS, a.base + b * BS)
        if got != block(n) and got not in [block(m) for m in failed.get(b, [])]:
            bad.append((b, n, got[:16]))
    changed = []
    if a.base_file:
        changed = check_rest(h, a, acked, failed)
    h.shutdown()
    print(f"writes acknowledged {nack}, refused {nerr} (errno {sorted(errnos)}), "
          f"phases {''.join(phase)}, blocks checked {len(acked)}, lost {len(bad)}"
          + (f", other blocks changed {len(changed)}" if a.base_file else ""))
    assert not bad, f"acknowledged writes lost: {bad[:5]}"
    assert not changed, f"blocks not written (or only by failed writes) changed: {changed[:5]}"
    allowed = {errno.EPERM} | (GONE if a.gone_ok else set())
    assert errnos <= allowed, f"writes failed with {errnos}, not only {sorted(allowed)}"
    phases = "".join(phase)
    assert a.phases is None or phases == a.phases, f"phases {phases}, expected {a.phases}"


def check_rest(h, a, acked, failed):
    """Offsets of the 4 KiB blocks outside the acknowledged ones that hold
    neither the base file's bytes nor one of their failed writes."""
    changed = []
    size = h.get_size()
    chunk = 4 << 20
    with open(a.base_file, "rb") as f:
        for off in range(0, size, chunk):
            got = h.pread(min(chunk, size - off), off)
            want = f.read(len(got))
            if got == want:
                continue
            for i in range(0, len(got), BS):
                if got[i:i + BS] == want[i:i + BS]:
                    continue
                at = off + i
                b = (at - a.base) // BS
                inside = a.base <= at < a.base + a.nblocks * BS
                if inside and b in acked:
                    continue  # checked against the log
                if inside and got[i:i + BS] in [block(m) for m in failed.get(b, [])]:
                    continue
                changed.append(at)
    return changed


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("write")
    v = sub.add_parser("verify")
    for s in (w, v):
        s.add_argument("uri")
        s.add_argument("base", type=int)
        s.add_argument("nblocks", type=int)
    w.add_argument("stopfile")
    w.add_argument("log")
    w.add_argument("--first", type=int, default=0)
    w.add_argument("--until-gone", action="store_true")
    w.add_argument("--window", type=int, nargs=2, metavar=("START", "COUNT"))
    v.add_argument("log")
    v.add_argument("phases", nargs="?")
    v.add_argument("--gone-ok", action="store_true")
    v.add_argument("--base", dest="base_file")
    for s in (w, v):
        s.add_argument("--stride", type=int, default=1)
    a = p.parse_args()
    if a.mode == "write":
        write(a)
    else:
        verify(a)


if __name__ == "__main__":
    main()

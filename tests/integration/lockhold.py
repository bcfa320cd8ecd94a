# lockhold.py FILE header|in-use shared|exclusive READY: hold one of a
# volume's OFD lock bytes (as cryptvol's lib/format/lock.c places them) on
# FILE, touch READY once it is held, and keep it until this process is
# killed. For tests of keymgr --wait.
import fcntl
import os
import signal
import struct
import sys

path, which, mode, ready = sys.argv[1:5]
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
byte = (1 << 62) + (0 if which == "header" else 1)
kind = fcntl.F_WRLCK if mode == "exclusive" else fcntl.F_RDLCK
fd = os.open(path, os.O_RDWR)
# struct flock on Linux x86-64: l_type, l_whence, l_start, l_len, l_pid.
fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi4x", kind, os.SEEK_SET, byte, 1, 0))
open(ready, "w").close()
while True:
    signal.pause()

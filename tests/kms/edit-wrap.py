#!/usr/bin/python3
"""Edit one member of one wrap in a cryptvol header, in both copies, the way
an attacker with write access to the header would: the JSON is rewritten in
the canonical encoding and each copy's json_len and SHA-256 checksum are
fixed (doc/format.md, "One copy"), so what stops the result is the wrap's
own authentication, not the checksum. The MAC is left as it was.

Usage: edit-wrap.py HEADER WRAP-ID PATH VALUE   set PATH to the JSON VALUE
       edit-wrap.py HEADER WRAP-ID PATH --delete
       edit-wrap.py HEADER WRAP-ID --fix-digest  set ctx["cryptvol:wrap"] to
                                  the digest of the wrap's metadata as it is
       edit-wrap.py --digest WRAP-JSON           print that digest
PATH is a member name, or NAME/SUB for a member of an object member
(ctx/cryptvol:wrap). HEADER is a volume with an attached header or a
detached header file.

The digest is computed here from doc/kms.md's definition, independently of
lib/keys/kms.c: "v1:" + hex of the first 16 bytes of SHA-256 over the
compact, key-sorted JSON of the wrap's id, type, ref, created and region.
"""
import hashlib
import json
import struct
import sys

COPY = 65536
BIN = 4096


def digest(w):
    meta = {k: w.get(k) for k in ("id", "type", "ref", "created", "region")}
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "v1:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def edit(w, args):
    if args[0] == "--fix-digest":
        w["ctx"]["cryptvol:wrap"] = digest(w)
        return
    path, value = args[0].split("/"), args[1]
    obj = w
    for name in path[:-1]:
        obj = obj[name]
    if value == "--delete":
        del obj[path[-1]]
    else:
        obj[path[-1]] = json.loads(value)


def main(argv):
    if len(argv) == 3 and argv[1] == "--digest":
        print(digest(json.loads(argv[2])))
        return 0
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    path, wid, args = argv[1], int(argv[2]), argv[3:]
    with open(path, "r+b") as f:
        for off in (0, COPY):
            f.seek(off)
            copy = bytearray(f.read(COPY))
            (jlen,) = struct.unpack(">I", copy[12:16])
            hdr = json.loads(copy[BIN:BIN + jlen])
            wraps = [w for w in hdr["wraps"] if w.get("id") == wid]
            if len(wraps) != 1:
                sys.exit(f"edit-wrap: {path} has no wrap {wid}")
            edit(wraps[0], args)
            text = json.dumps(hdr, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()
            copy[12:16] = struct.pack(">I", len(text))
            copy[BIN:] = text + bytes(COPY - BIN - len(text))
            copy[48:80] = bytes(32)
            copy[48:80] = hashlib.sha256(bytes(copy[:BIN + len(text)])).digest()
            f.seek(off)
            f.write(copy)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

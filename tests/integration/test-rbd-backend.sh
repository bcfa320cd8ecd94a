#!/bin/bash
# The RBD store (lib/io/rbd.c) against a throw-away Ceph cluster. First what
# another client sees: an image cv_rbd_create made has the features rbd.h
# promises (rbd info), and bytes written through the queues are the image's
# bytes (rbd export). Then the unit program test-io-rbd: names, creating
# images, the data path against a model at many depths, flush and FUA, the
# image's ends, the exclusive lock between processes with takeover fencing
# the old holder, and last a cluster killed under open stores (errors within
# the timeout, not hangs).
. "$(dirname "$0")/functions.sh"
requires /usr/bin/python3
prog=$CV_BUILD/tests/test-io-rbd
[ -x "$prog" ] || fail "$prog is not built (make)"
ceph_start
export CV_TEST_CEPH=1 CEPH_DIR

"$prog" create rbd:rbd/made 3M || fail "cv_rbd_create failed"
rbd info --format json rbd/made >info.json
/usr/bin/python3 - <<'PY' || fail "rbd info: $(cat info.json)"
import json
i = json.load(open("info.json"))
assert i["size"] == 3 << 20, i["size"]
assert sorted(i["features"]) == sorted(["layering", "exclusive-lock",
    "object-map", "fast-diff", "deep-flatten"]), i["features"]
PY
pass "cv_rbd_create: 3 MiB, layering, exclusive-lock, object-map, fast-diff, deep-flatten"

"$prog" pattern rbd:rbd/made || fail "writing the pattern failed"
rbd export --no-progress rbd/made exported
/usr/bin/python3 - <<'PY' || fail "rbd export differs from what was written"
data = open("exported", "rb").read()
want = bytes(((o >> 9) * 31 + o * 7 + 5) & 0xff for o in range(len(data)))
assert len(data) == 3 << 20 and data == want
PY
pass "rbd export reads what the queues wrote"

# The ASan/UBSan build (make sanitize) first, when there is one: all but
# the last case, which stops the cluster.
san=$CV_SRCDIR/build-san/tests/test-io-rbd
if [ -x "$san" ]; then
  CV_TEST_RBD_KEEP_CLUSTER=1 "$san" >san.out 2>&1 && rc=0 || rc=$?
  cat san.out
  [ $rc = 0 ] || fail "test-io-rbd under ASan/UBSan failed ($rc)"
  pass "under ASan/UBSan: $(tail -n 1 san.out)"
fi
"$prog" >unit.out 2>&1 && rc=0 || rc=$?
cat unit.out
[ "$rc" = 0 ] || fail "test-io-rbd failed ($rc)"
pass "$(tail -n 1 unit.out)"

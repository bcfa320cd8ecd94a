# Helpers for the client and TLS tests; source after functions.sh.
#   start_server NAME tcp|unix [nbdkit options] PLUGIN-ARGS...
#       nbdkit in the background, stopped by the trap
#   stop_server NAME
#   vm_build, vm_boot NAME DIR [qemu options...], vm_result NAME KEY
#       the test VM of tests/vm/build-vm.sh
#   refused_unserved LOG VOLUME WHAT PATTERN COMMAND...
#       a client is refused and nothing is served to it

# start_server NAME tcp|unix NBDKIT-ARGS...: start nbdkit in the background.
# The listening socket is made first and handed to nbdkit by socket
# activation (LISTEN_FDS), so the port is known and free of races; this
# returns when nbdkit has written its PID file (-P), which it does once the
# plugin has unlocked the volume and filters have opened their files. tcp: a
# free port of 127.0.0.1, in $PORT; unix: the socket $tmp/NAME.sock. nbdkit's
# stderr goes to NAME.err; the server is stopped by stop_server or the trap.
start_server () {
  local name=$1 kind=$2; shift 2
  rm -f "$tmp/$name.port" "$tmp/$name.sock" "$tmp/$name.ready"
  python3 - "$kind" "$tmp/$name" "$@" 2>"$tmp/$name.err" <<'EOS' &
import os, socket, sys
kind, base, args = sys.argv[1], sys.argv[2], sys.argv[3:]
if kind == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(base + ".sock")
s.listen(64)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
if kind == "tcp":
    with open(base + ".port.tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(base + ".port.tmp", base + ".port")
else:
    open(base + ".port", "w").close()
os.execvp("nbdkit", ["nbdkit", "--exit-with-parent", "-P", base + ".ready"] + args)
EOS
  local pid=$! i
  echo "$pid" > "$tmp/$name.pid"
  cleanup_hooks+=("stop_server $name")
  # Bounded wait for nbdkit's PID file.
  for i in $(seq 600); do
    [ -s "$tmp/$name.ready" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/$name.err" >&2; fail "$name: nbdkit exited at start-up"; }
    sleep 0.05
  done
  [ -s "$tmp/$name.ready" ] || fail "$name: nbdkit not ready after 30s"
  [ "$kind" = tcp ] && PORT=$(cat "$tmp/$name.port")
  return 0
}

# stop_server NAME: stop the server started as NAME and wait until it exited.
stop_server () {
  local f=$tmp/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f"); rm -f "$f"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# vm_build: build (or find in the cache) the test VM; sets VM_DIR. Skips the
# test when qemu is missing or the kernel cannot be fetched.
vm_build () {
  requires qemu-system-x86_64 cpio
  local rc=0
  VM_DIR=$("$CV_SRCDIR/tests/vm/build-vm.sh" "$CV_BUILD") || rc=$?
  [ "$rc" -eq 77 ] && { echo "SKIP: the test VM cannot be built (kernel package not fetched)"; exit 77; }
  [ "$rc" -eq 0 ] || fail "tests/vm/build-vm.sh failed (exit $rc)"
}

# vm_boot NAME DIR [qemu options...]: boot the VM with DIR's files at /t in
# the guest, running /t/test.sh (sh -e). The serial console is saved in
# NAME.console. Fails unless the guest prints "CV-EXIT 0" before powering
# off within VM_TIMEOUT seconds (default 300).
vm_boot () {
  local name=$1 dir=$2; shift 2
  local start rc=0
  start=$(date +%s)
  mkdir -p "$tmp/$name.root/t"
  cp -r "$dir"/. "$tmp/$name.root/t/"
  (cd "$tmp/$name.root" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$tmp/$name.overlay"
  cat "$VM_DIR/initrd.gz" "$tmp/$name.overlay" >"$tmp/$name.initrd"
  timeout -k 5 "${VM_TIMEOUT:-300}" qemu-system-x86_64 \
    -machine accel=tcg -m 512 -no-reboot -nodefaults -display none \
    -serial stdio -kernel "$VM_DIR/vmlinuz" -initrd "$tmp/$name.initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
    -nic user,model=virtio-net-pci "$@" </dev/null 2>"$tmp/$name.qemu-err" |
    tr -d '\r' >"$tmp/$name.console" || rc=$?
  if ! grep -q '^CV-EXIT 0$' "$tmp/$name.console"; then
    sed 's/^/    console| /' "$tmp/$name.console" | tail -n 60 >&2
    sed 's/^/    qemu| /' "$tmp/$name.qemu-err" >&2
    for f in "$tmp"/*.err; do [ -s "$f" ] && sed "s/^/    $(basename "$f")| /" "$f" >&2; done
    [ "$rc" -eq 124 ] && fail "$name: VM timed out after ${VM_TIMEOUT:-300}s"
    fail "$name: the guest test failed"
  fi
  grep '^CV-RESULT ' "$tmp/$name.console" | sed "s/^/    $name| /"
  echo "    ($name: VM ran in $(( $(date +%s) - start ))s)"
}

# vm_result NAME KEY: the value the guest printed as "CV-RESULT KEY VALUE".
vm_result () {
  sed -n "s/^CV-RESULT $2 //p" "$tmp/$1.console" | tail -n 1
}

# refused_unserved LOG VOLUME WHAT PATTERN COMMAND...: COMMAND (a client) must
# fail with stderr matching PATTERN, and the server must have served it
# nothing: no new "Connect" (an export opened) in LOG, the log filter's file
# of the server, and VOLUME unchanged byte for byte.
refused_unserved () {
  local log=$1 vol=$2 what=$3 pattern=$4; shift 4
  local conns sum
  conns=$(grep -c ' Connect ' "$log" || true)
  sum=$(sha256sum <"$vol")
  expect_fail "$what" "$pattern" "$@"
  if [ "$(grep -c ' Connect ' "$log" || true)" != "$conns" ]; then
    grep ' Connect ' "$log" | tail -n +$((conns + 1)) >&2
    fail "$what: the server opened the export for it"
  fi
  [ "$(sha256sum <"$vol")" = "$sum" ] || fail "$what: the volume changed"
}

#!/bin/bash
# make demo: create a small encrypted volume under ./demo/ with a fresh key
# file, serve it with nbdkit on localhost, show it working, and print how to
# attach. The server keeps running; the last line says how to stop it.
# Environment: DEMO_DIR (default ./demo), DEMO_PORT (default 10809).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
dir=${DEMO_DIR:-$top/demo}
port=${DEMO_PORT:-10809}
keymgr=$top/build/cryptvol-keymgr
plugin=$top/build/nbdkit-cryptvol-plugin.so
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

mkdir -p "$dir"
vol=$dir/volume.img kek=$dir/volume.kek pidfile=$dir/nbdkit.pid

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "demo: stopping the demo server left from last time (pid $(cat "$pidfile"))"
  kill "$(cat "$pidfile")"
  while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
fi
if [ -f "$vol" ]; then
  echo "demo: reusing $vol (delete $dir for a fresh one)"
else
  "$keymgr" genkey "$kek"
  "$keymgr" create "$vol" --size 256M --wrap "file:$kek"
fi
echo
"$keymgr" info "$vol"
echo

# Serve in the background; nbdkit writes its pid once it is listening.
rm -f "$pidfile"
nbdkit --ipaddr 127.0.0.1 --port "$port" -P "$pidfile" "$plugin" \
  "$vol" keyfile="$kek" 2>"$dir/nbdkit.log" ||
  { cat "$dir/nbdkit.log" >&2; echo "demo: nbdkit failed to start (port $port busy? set DEMO_PORT)" >&2; exit 1; }
uri=nbd://127.0.0.1:$port

echo "demo: the volume is served at $uri (nbdkit pid $(cat "$pidfile"))"
echo "demo: writing and reading back 1 MiB through it:"
head -c 1M /dev/urandom > "$dir/sample.bin"
nbdcopy "$dir/sample.bin" "$uri"
nbdsh -u "$uri" -c "
want = open('$dir/sample.bin', 'rb').read()
assert h.pread(len(want), 0) == want
print('  1 MiB written and read back intact; on disk it is ciphertext')"
cat <<EOT

Attach it with:
  nbdinfo $uri
  nbdcopy $uri copy.raw
  qemu-img info $uri
  qemu-system-x86_64 -drive file=$uri,format=raw,if=none,id=d0 \\
    -device virtio-blk-pci,drive=d0,logical_block_size=4096,physical_block_size=4096 ...
  sudo modprobe nbd && sudo nbd-client 127.0.0.1 $port /dev/nbd0 -b 4096

Stop the server with:
  kill \$(cat $pidfile)
EOT

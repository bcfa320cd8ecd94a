#!/bin/bash
# Four connections write disjoint ranges at once. The ranges meet inside
# encryption sectors, so neighbours read-modify-write the same sectors at the
# same time: every byte must still read back as its writer wrote it, through
# a fresh server.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdsh
IOTEST=$CV_SRCDIR/tests/integration/iotest.py
seed=${CV_TEST_SEED:-$RANDOM}

new_volume vol 16M
cat > writers.sh <<EOS
set -e
pids=()
for i in 0 1 2 3; do
  python3 "$IOTEST" "\$uri" part \$i 4 $seed & pids+=(\$!)
done
for p in "\${pids[@]}"; do wait \$p; done
EOS
serve vol keyfile=vol.kek -- 'uri=$uri' bash writers.sh
pass "4 concurrent connections wrote (seed $seed)"
serve vol keyfile=vol.kek -- python3 "$IOTEST" '$uri' parts 4 $seed
pass "every range reads back after a restart"

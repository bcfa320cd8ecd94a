#!/bin/bash
# A short libFuzzer run of the control protocol's parser and dispatcher
# (tests/fuzz/fuzz-control.c, under ASan and UBSan) from its seed corpus:
# no crash, no leak, every line answered by one JSON reply. Skipped when
# clang's libFuzzer is not installed. Longer runs: see doc/control.md.
source "$(dirname "$0")/functions.sh"
requires clang

if ! make -s -C "$CV_SRCDIR" fuzz >build.log 2>&1; then
  cat build.log
  echo "SKIP: cannot build with clang -fsanitize=fuzzer (libFuzzer missing?)"
  exit 77
fi
mkdir corpus
# New inputs go to corpus/ (this test's), the seeds are only read.
"$CV_SRCDIR/build-fuzz/fuzz-control" -runs=20000 -max_total_time=25 \
  -max_len=4200 -timeout=10 corpus "$CV_SRCDIR/tests/fuzz/corpus-control" \
  >fuzz.log 2>&1 || { tail -n 40 fuzz.log; fail "fuzz-control found a crash"; }
grep -q '^Done [0-9]* runs' fuzz.log || { tail -n 20 fuzz.log; fail "fuzz-control did not finish"; }
pass "fuzz-control: $(grep -o '^Done .*' fuzz.log), corpus $(ls corpus | wc -l) new inputs"

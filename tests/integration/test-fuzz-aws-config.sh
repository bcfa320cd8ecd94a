#!/bin/bash
# A short libFuzzer run of the AWS shared config and credentials file parser
# (tests/fuzz/fuzz-aws-config.c, under ASan and UBSan) from its seed corpus:
# no crash, no leak, every value found trimmed and on one line. Skipped when
# clang's libFuzzer is not installed. Longer runs: see doc/kms.md.
source "$(dirname "$0")/functions.sh"
requires clang

if ! make -s -C "$CV_SRCDIR" fuzz >build.log 2>&1; then
  cat build.log
  echo "SKIP: cannot build with clang -fsanitize=fuzzer (libFuzzer missing?)"
  exit 77
fi
mkdir corpus
# New inputs go to corpus/ (this test's), the seeds are only read.
"$CV_SRCDIR/build-fuzz/fuzz-aws-config" -runs=500000 -max_total_time=20 \
  -max_len=2048 -timeout=10 corpus "$CV_SRCDIR/tests/fuzz/corpus-aws-config" \
  >fuzz.log 2>&1 || { tail -n 40 fuzz.log; fail "fuzz-aws-config found a crash"; }
grep -q '^Done [0-9]* runs' fuzz.log || { tail -n 20 fuzz.log; fail "fuzz-aws-config did not finish"; }
pass "fuzz-aws-config: $(grep -o '^Done .*' fuzz.log), corpus $(ls corpus | wc -l) new inputs"

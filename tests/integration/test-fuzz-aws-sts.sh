#!/bin/bash
# A short libFuzzer run of the STS answer reader (tests/fuzz/fuzz-aws-sts.c,
# under ASan and UBSan) from its seed corpus: no crash, no leak, and
# credentials taken only whole and printable. Skipped when clang's
# libFuzzer is not installed.
source "$(dirname "$0")/functions.sh"
requires clang

if ! make -s -C "$CV_SRCDIR" fuzz >build.log 2>&1; then
  cat build.log
  echo "SKIP: cannot build with clang -fsanitize=fuzzer (libFuzzer missing?)"
  exit 77
fi
mkdir corpus
# New inputs go to corpus/ (this test's), the seeds are only read.
"$CV_SRCDIR/build-fuzz/fuzz-aws-sts" -runs=20000 -max_total_time=25 \
  -max_len=8192 -timeout=10 corpus "$CV_SRCDIR/tests/fuzz/corpus-aws-sts" \
  >fuzz.log 2>&1 || { tail -n 40 fuzz.log; fail "fuzz-aws-sts found a crash"; }
grep -q '^Done [0-9]* runs' fuzz.log || { tail -n 20 fuzz.log; fail "fuzz-aws-sts did not finish"; }
pass "fuzz-aws-sts: $(grep -o '^Done .*' fuzz.log), corpus $(ls corpus | wc -l) new inputs"

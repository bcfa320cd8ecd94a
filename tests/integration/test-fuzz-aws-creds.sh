#!/bin/bash
# A short libFuzzer run of the credential JSON documents (cv_aws_creds_from_json)
# (tests/fuzz/fuzz-aws-creds.c, under ASan and UBSan) from its seed corpus:
# no crash, no leak, credentials that parse are whole. Skipped when
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
"$CV_SRCDIR/build-fuzz/fuzz-aws-creds" -runs=500000 -max_total_time=20 \
  -max_len=2048 -timeout=10 corpus "$CV_SRCDIR/tests/fuzz/corpus-aws-creds" \
  >fuzz.log 2>&1 || { tail -n 40 fuzz.log; fail "fuzz-aws-creds found a crash"; }
grep -q '^Done [0-9]* runs' fuzz.log || { tail -n 20 fuzz.log; fail "fuzz-aws-creds did not finish"; }
pass "fuzz-aws-creds: $(grep -o '^Done .*' fuzz.log), corpus $(ls corpus | wc -l) new inputs"

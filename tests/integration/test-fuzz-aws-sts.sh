#!/bin/bash
# A 30 s libFuzzer run of the STS answer reader (tests/fuzz/fuzz-aws-sts.c,
# under ASan and UBSan) from its seed corpus: no crash, no leak, and
# credentials taken only whole and printable. Skipped when clang's
# libFuzzer is not installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly aws-sts

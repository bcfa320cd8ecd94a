#!/bin/bash
# A 30 s libFuzzer run of the AWS shared config and credentials file parser
# (tests/fuzz/fuzz-aws-config.c, under ASan and UBSan) from its seed corpus:
# no crash, no leak, every value found trimmed and on one line. Skipped when
# clang's libFuzzer is not installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly aws-config

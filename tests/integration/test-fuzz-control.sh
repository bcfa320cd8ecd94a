#!/bin/bash
# A 30 s libFuzzer run of the control protocol's parser and dispatcher
# (tests/fuzz/fuzz-control.c, under ASan and UBSan) from its seed corpus:
# no crash, no leak, every line answered by one JSON reply. Skipped when
# clang's libFuzzer is not installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly control

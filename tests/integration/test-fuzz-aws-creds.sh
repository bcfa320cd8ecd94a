#!/bin/bash
# A 30 s libFuzzer run of the credential JSON documents (cv_aws_creds_from_json)
# (tests/fuzz/fuzz-aws-creds.c, under ASan and UBSan) from its seed corpus:
# no crash, no leak, credentials that parse are whole. Skipped when
# clang's libFuzzer is not installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly aws-creds

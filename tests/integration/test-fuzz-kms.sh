#!/bin/bash
# A 30 s libFuzzer run of the reading of AWS KMS answers (tests/fuzz/
# fuzz-kms.c: response headers, JSON answers and error bodies of Decrypt,
# Encrypt, GenerateDataKey, ReEncrypt and DescribeKey), under ASan and
# UBSan, from tests/fuzz/corpus-kms: no crash, no leak, everything taken
# from an answer printable and bounded. Skipped when clang's libFuzzer is
# not installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly kms

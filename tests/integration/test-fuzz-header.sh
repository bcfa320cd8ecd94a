#!/bin/bash
# A 30 s libFuzzer run of the header reader (tests/fuzz/fuzz-header.c:
# cv_hdr_decode on each copy, cv_hdr_read on both, checksums repaired so the
# JSON and schema checks are reached; the accessors and a re-encode on what
# decodes), under ASan and UBSan, seeded with the headers of volumes
# cryptvol-keymgr makes (tests/fuzz/make-seeds.sh). Skipped when clang's
# libFuzzer is not installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly header

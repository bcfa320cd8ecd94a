#!/bin/bash
# A 30 s libFuzzer run of the wraps and the unlock path (tests/fuzz/
# fuzz-unlock.c: cv_unlock with a key file and a passphrase on fuzzed
# headers, no network), under ASan and UBSan, seeded with the headers of
# volumes cryptvol-keymgr makes: no crash, no leak, and a DEK returned only
# when it authenticates the header. Skipped when clang's libFuzzer is not
# installed. Longer runs: make fuzz (doc/security.md).
source "$(dirname "$0")/functions.sh"
fuzz_briefly unlock

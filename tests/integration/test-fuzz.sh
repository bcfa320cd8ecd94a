#!/bin/bash
# Every libFuzzer target under tests/fuzz/ runs for 30 s (FUZZ_CHECK_SECONDS),
# under ASan and UBSan, five at a time on this 2-core machine: the header
# reader, the unlock path (file and passphrase providers), KMS answers, the
# control protocol, the AWS config and credentials files, STS answers and
# rbd: volume names (doc/security.md, "Fuzzing"). The header and unlock
# targets are seeded with headers cryptvol-keymgr makes
# (tests/fuzz/make-seeds.sh). A crash,
# leak or timeout fails the test with its reproducer's path. Skipped when
# clang's libFuzzer is not installed; a target of ours that does not build
# fails it. Longer runs: make fuzz.
source "$(dirname "$0")/functions.sh"
fuzz_briefly header unlock kms control aws-config aws-creds aws-sts stanza \
  rbd-spec

#!/bin/bash
# tests/fuzz/coverage.sh NAME...: the line and branch coverage of each fuzz
# target's own sources (the ones the Makefile instruments for it) by its
# corpora: build-fuzz/corpus/NAME (what make fuzz found), the checked-in
# tests/fuzz/corpus-NAME and, for header and unlock, build-fuzz/seeds. It
# builds build-fuzz/cov/fuzz-NAME (clang source-based coverage, no
# sanitizer), replays the corpora once (-runs=0) and prints llvm-cov's
# report; the merged profile stays in build-fuzz/cov/NAME.profdata for
# `llvm-cov show`. doc/security.md, "Fuzzing", records the numbers.
set -eu
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || set -- control aws-config aws-creds aws-sts header unlock kms
for name in "$@"; do
  make -s "build-fuzz/cov/fuzz-$name" >/dev/null
  dirs=()
  for d in "build-fuzz/corpus/$name" "tests/fuzz/corpus-$name"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  case $name in header | unlock) dirs+=(build-fuzz/seeds) ;; esac
  raw=build-fuzz/cov/$name.profraw
  rm -f "$raw"
  LLVM_PROFILE_FILE=$raw "build-fuzz/cov/fuzz-$name" -runs=0 -max_len=65536 \
    "${dirs[@]}" >"build-fuzz/cov/$name.log" 2>&1
  llvm-profdata merge -sparse "$raw" -o "build-fuzz/cov/$name.profdata"
  echo "== fuzz-$name: $(find "${dirs[@]}" -type f | wc -l) inputs"
  # shellcheck disable=SC2046
  llvm-cov report "build-fuzz/cov/fuzz-$name" \
    -instr-profile="build-fuzz/cov/$name.profdata" \
    $(make -s "fuzz-print-srcs-$name")
done

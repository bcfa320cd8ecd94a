#!/bin/bash
# tests/fuzz/run.sh [-c CORPUS_ROOT] [-l LOG_DIR] SECONDS NAME...: run each
# libFuzzer target build-fuzz/fuzz-NAME (make fuzz-build) for SECONDS, one
# after the other, on one core. Inputs come from the target's corpora:
# CORPUS_ROOT/NAME (default build-fuzz/corpus/NAME: what earlier runs found;
# new inputs go there), tests/fuzz/corpus-NAME (checked in) and, for header
# and unlock, build-fuzz/seeds (tests/fuzz/make-seeds.sh). A crash, leak,
# timeout or out-of-memory fails the run: its reproducer is kept in
# build-fuzz/crashes/ and its path printed with the command that replays
# it. Prints one line per target (runs, coverage, corpus) and exits
# non-zero if any target failed. `make fuzz` runs every target this way.
set -u
cd "$(dirname "$0")/../.."
src=$PWD
corpus_root=$src/build-fuzz/corpus
logs=$src/build-fuzz/logs
crashes=$src/build-fuzz/crashes
while getopts c:l: o; do
  case $o in
    c) corpus_root=$OPTARG ;;
    l) logs=$OPTARG ;;
    *) echo "usage: $0 [-c CORPUS_ROOT] [-l LOG_DIR] SECONDS NAME..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
secs=${1:?usage: $0 [-c CORPUS_ROOT] [-l LOG_DIR] SECONDS NAME...}
shift
mkdir -p "$logs" "$crashes"

# The largest input each target is given: its inputs' natural bound.
max_len () {
  case $1 in
    control) echo 4200 ;;              # a few control lines (CV_CTL_LINE_MAX)
    aws-config | aws-creds) echo 2048 ;;
    aws-sts) echo 8192 ;;
    header | unlock) echo 16384 ;;     # hdr-input.h: both copies, compact
    kms) echo 4096 ;;
    *) echo 4096 ;;
  esac
}

failed=()
for name in "$@"; do
  bin=$src/build-fuzz/fuzz-$name
  log=$logs/fuzz-$name.log
  dirs=("$corpus_root/$name")
  [ -d "$src/tests/fuzz/corpus-$name" ] && dirs+=("$src/tests/fuzz/corpus-$name")
  if [ "$name" = header ] || [ "$name" = unlock ]; then
    if [ ! -d "$src/build-fuzz/seeds" ]; then
      echo "fuzz-$name: no seeds in build-fuzz/seeds: run make fuzz (or tests/fuzz/make-seeds.sh)" >&2
      failed+=("$name")
      continue
    fi
    dirs+=("$src/build-fuzz/seeds")
  fi
  [ -x "$bin" ] || { echo "fuzz-$name: $bin is missing: run make fuzz-build" >&2; failed+=("$name"); continue; }
  mkdir -p "$corpus_root/$name"
  # One core, ASan's leak check at exit, a slow input (10 s) or 2 GB fail.
  if ! "$bin" -max_total_time="$secs" -max_len="$(max_len "$name")" \
       -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$crashes/$name-" "${dirs[@]}" >"$log" 2>&1; then
    tail -n 40 "$log"
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "FAIL fuzz-$name: see $log"
    [ -n "$repro" ] && echo "reproducer: $repro (replay: $bin $repro)"
    failed+=("$name")
    continue
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
  echo "fuzz-$name: $runs runs in ${secs}s, $cov, corpus $(ls "$corpus_root/$name" | wc -l) files (log $log)"
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }

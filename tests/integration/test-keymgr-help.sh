#!/bin/bash
# cryptvol-keymgr as users of cryptsetup and the AWS CLI expect it: --version,
# a --help per command listing every option the parser accepts (and only
# those), exit codes as cryptvol-keymgr(8) documents them, errors as JSON
# with --json, progress of rotate-dek, key file paths stored absolute.
source "$(dirname "$0")/functions.sh"
requires nbdkit jq setsid

pod=$CV_SRCDIR/doc/cryptvol-keymgr.pod
version=$(sed -n 's/^#define CV_VERSION "\(.*\)"$/\1/p' "$CV_SRCDIR/lib/common/version.h")
[ -n "$version" ] || fail "no CV_VERSION in lib/common/version.h"

# --- version ---------------------------------------------------------------------
[ "$("$KEYMGR" --version)" = "cryptvol-keymgr $version" ] || fail "--version: $("$KEYMGR" --version)"
[ "$("$KEYMGR" version)" = "cryptvol-keymgr $version" ] || fail "version: $("$KEYMGR" version)"
[ "$("$KEYMGR" --version --json | jq -r .version)" = "$version" ] || fail "--version --json"
nbdkit "$PLUGIN" --version | grep -qx "cryptvol $version" ||
  fail "nbdkit cryptvol --version: $(nbdkit "$PLUGIN" --version)"
grep -q "cryptvol-keymgr $version" "$pod" || fail "the man page's VERSION section does not name $version"
pass "cryptvol-keymgr --version, version and nbdkit cryptvol --version say $version"

# --- help: every command, every option ---------------------------------------------
"$KEYMGR" --help >usage.txt
mapfile -t cmds < <(sed -n '/^commands:/,/^$/s/^  \([a-z0-9-]*\) .*/\1/p' usage.txt)
[ "${#cmds[@]}" -ge 20 ] || fail "--help lists ${#cmds[@]} commands: $(cat usage.txt)"
for c in "${cmds[@]}"; do
  "$KEYMGR" "$c" --help >"help-$c" || fail "$c --help exits non-zero"
  "$KEYMGR" help "$c" | cmp -s - "help-$c" || fail "help $c differs from $c --help"
  ! grep -q "(undocumented)" "help-$c" || fail "$c --help: an option without help"
  grep -q "^usage: cryptvol-keymgr $c" "help-$c" || fail "$c --help: no usage line"
  grep -o '^  --[a-z0-9-]*' "help-$c" | sed 's/^  //' | sort -u >"opts-$c"
done
# The parser of each command accepts exactly the shared options its help
# lists (the help prints the parser's own table; what could drift is which
# commands take which shared options): one option of each group that some
# commands take and others not, accepted where listed, else refused. Extra
# operands keep any command from running. Four at a time: each is a process
# start (about 50 ms here).
for c in "${cmds[@]}"; do
  for o in --header --keyfile --passphrase-file --pin-file --kms-region --pbkdf --wait --quiet; do
    if grep -qx -- "$o" "opts-$c"; then echo "$c $o listed"; else echo "$c $o refused"; fi
  done
done >pairs
check_pair () {
  local err
  err=$("$KEYMGR" "$1" "$2=1" x y z 2>&1 >/dev/null)
  case $3,$err in
    listed,*"unknown option"*) echo "$1: $2 is in its --help but the parser refuses it" ;;
    refused,*"unknown option $2"*) ;;
    refused,*) echo "$1: the parser takes $2 but --help does not list it" ;;
  esac
}
export -f check_pair
export KEYMGR
xargs -P 4 -L 1 bash -c 'check_pair "$@"' _ <pairs >mismatch
[ ! -s mismatch ] || fail "$(cat mismatch)"
for c in "${cmds[@]}"; do
  for o in $(cat "opts-$c"); do
    grep -q "B<$o>" "$pod" || fail "$c --help lists $o, which cryptvol-keymgr(8) does not document"
  done
done
for o in --json --audit-log --debug --help; do
  for c in "${cmds[@]}"; do grep -qx -- "$o" "opts-$c" || fail "$c --help lacks $o"; done
done
grep -qx -- --wait opts-add-wrap && grep -qx -- --wait opts-rotate-dek || fail "--wait not listed"
! grep -qx -- --wait opts-status || fail "status --help lists --wait"
pass "help of ${#cmds[@]} commands: each lists every option its parser takes ($(cat opts-* | wc -l) in all, --json, --audit-log, --debug everywhere) and no shared option it does not list; all in the man page"

# --- exit codes and --json errors ----------------------------------------------------
# code EXPECTED WHAT COMMAND...: the command exits EXPECTED; with --json
# (appended) its stdout is {"ok":false,"error":...,"exit":EXPECTED}.
code () {
  local want=$1 what=$2 rc e; shift 2
  set +e
  setsid "$@" --json </dev/null >out.json 2>err; rc=$?
  set -e
  [ "$rc" = "$want" ] || { cat err; fail "$what: exit $rc, expected $want"; }
  e=$(jq -r --argjson n "$want" \
        'if .ok == false and .exit == $n and (.error | length > 0) then .error else "" end' out.json)
  [ -n "$e" ] || fail "$what: --json printed $(cat out.json)"
  grep -qF -- "$e" err || fail "$what: the JSON error is not the message on stderr"
  pass "$what: exit $want, JSON error: ${e:0:120}"
}
"$KEYMGR" genkey k >/dev/null
printf 'correct horse\n' >pass
chmod 600 pass
code 1 "an unknown option" "$KEYMGR" verify v --frobnicate
code 1 "an option the command does not take" "$KEYMGR" status --keyfile k
code 1 "an unknown command" "$KEYMGR" frobnicate
code 1 "create --wrap passphrase with no passphrase and no terminal" \
  "$KEYMGR" create nopass.img --size 1M --wrap passphrase
[ ! -e nopass.img ] || fail "the failed create left nopass.img"
code 1 "a PKCS#11 module that does not exist" \
  "$KEYMGR" create p11.img --size 1M --wrap "pkcs11:token=t;object=k" --pkcs11-module "$tmp/no/such.so" --pin-file pass
code 1 "a file that is not a PKCS#11 module" \
  "$KEYMGR" create p11.img --size 1M --wrap "pkcs11:token=t;object=k" --pkcs11-module "$tmp/pass" --pin-file pass
code 1 "a new passphrase wrap over the KDF limit" \
  "$KEYMGR" create kdf.img --size 1M --wrap passphrase --passphrase-file pass \
  --pbkdf-memory 8M --pbkdf-time 11 --pbkdf-parallel 1
"$KEYMGR" create kdf.img --size 1M --wrap passphrase --passphrase-file pass \
  --pbkdf-memory 8M --pbkdf-time 11 --pbkdf-parallel 1 --allow-costly-kdf >/dev/null
code 2 "unlocking a wrap over the KDF limit without --allow-costly-kdf" \
  "$KEYMGR" verify kdf.img --passphrase-file pass
"$KEYMGR" verify kdf.img --passphrase-file pass --allow-costly-kdf >/dev/null
"$KEYMGR" create fv.img --size 1M --wrap file:k >/dev/null
code 2 "a key file that does not exist" "$KEYMGR" verify fv.img --keyfile no-such.kek
code 3 "not a volume" "$KEYMGR" info pass
# A command that prints its own JSON prints nothing more.
"$KEYMGR" verify kdf.img --passphrase-file pass --allow-costly-kdf --json >ok.json
jq -e '.mac_ok' ok.json >/dev/null || fail "verify --json: $(cat ok.json)"

# --- key file paths stored absolute --------------------------------------------------
mkdir -p keys elsewhere
( cd keys && "$KEYMGR" genkey a.kek >/dev/null && "$KEYMGR" genkey b.kek >/dev/null &&
  "$KEYMGR" create ../abs.img --size 8M --wrap file:a.kek >/dev/null &&
  "$KEYMGR" add-wrap ../abs.img --keyfile a.kek --wrap file:./b.kek >/dev/null )
[ "$("$KEYMGR" info abs.img --json | jq -r '[.wraps[].ref] | join(" ")')" = "$(pwd -P)/keys/a.kek $(pwd -P)/keys/b.kek" ] ||
  fail "relative key paths not stored absolute: $("$KEYMGR" info abs.img --json | jq -c '[.wraps[].ref]')"
# rotate-dek re-makes each file wrap with the key file the wrap names: from
# another directory, only an absolute path finds it.
( cd elsewhere && "$KEYMGR" rotate-dek "$tmp/abs.img" --keyfile "$tmp/keys/a.kek" --quiet >rot.out 2>rot.err ) ||
  { cat elsewhere/rot.err; fail "rotate-dek from another directory"; }
[ ! -s elsewhere/rot.err ] || fail "rotate-dek --quiet printed: $(cat elsewhere/rot.err)"
"$KEYMGR" verify abs.img --keyfile keys/b.kek >/dev/null || fail "wrap 1 after rotate-dek"
pass "file: wraps made with relative paths store absolute ones; rotate-dek from elsewhere re-makes them"

# --- progress of rotate-dek -----------------------------------------------------------
"$KEYMGR" rotate-dek abs.img --keyfile keys/a.kek --hotzone 1M >/dev/null 2>prog.err
grep -Eq '^[0-9]+/8 MiB +[0-9.]+% +[0-9.]+ MiB/s +ETA [0-9?]' prog.err ||
  fail "rotate-dek's progress (not a terminal): $(cat prog.err)"
[ "$(grep -c MiB/s prog.err)" -ge 4 ] || fail "rotate-dek: $(grep -c MiB/s prog.err) progress lines for 8 steps"
"$KEYMGR" rotate-dek abs.img --keyfile keys/a.kek --hotzone 1M --json >prog.json
jq -se '.[0] | has("done") and has("total") and has("mib_per_s") and has("eta_s")' prog.json >/dev/null ||
  fail "rotate-dek --json progress: $(head -2 prog.json)"
pass "rotate-dek shows bytes, percent, rate and ETA: $(tail -1 prog.err)"

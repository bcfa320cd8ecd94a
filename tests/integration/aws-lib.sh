# The local AWS (tests/kms/kms-server.py) for integration tests: start it,
# stop it (also by the trap), and an environment where only the test's own
# settings reach the AWS code. Source it after functions.sh; it skips the
# test when Debian's python3 is missing.
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY is not installed"; exit 77; }

# local_aws_start STATE_DIR [kms-server.py flags...]: make the test CA (once;
# CA is its certificate) and start the local AWS with its state and
# config.json in STATE_DIR, its main port written to $tmp/port and its log
# appended to $tmp/aws.log. Returns once the main port and every port file a
# flag names (--region-listener REGION=FILE, --imds-port-file FILE,
# --container-port-file FILE) are written; fails the test with the log if
# the server does not come up. Sets EP, its https:// URL; a flag --port N
# keeps a restarted server's endpoint.
aws_pid=
local_aws_start () {
  local state=$1; shift
  local files=("$tmp/port") prev= a _ f up=
  for a in "$@"; do
    case $prev in
      --region-listener) files+=("${a#*=}") ;;
      --imds-port-file | --container-port-file) files+=("$a") ;;
    esac
    prev=$a
  done
  if [ ! -e "$tmp/ca/ca.pem" ]; then
    "$CV_SRCDIR/tests/kms/make-test-ca.sh" "$tmp/ca" >/dev/null || fail "make-test-ca.sh"
  fi
  CA=$tmp/ca/ca.pem
  rm -f "${files[@]}"
  "$PY" "$CV_SRCDIR/tests/kms/kms-server.py" --state-dir "$state" \
    --cert "$tmp/ca/server.pem" --key "$tmp/ca/server.key" --port-file "$tmp/port" \
    "$@" >>"$tmp/aws.log" 2>&1 &
  aws_pid=$!
  for _ in $(seq 1 200); do
    up=yes
    for f in "${files[@]}"; do [ -s "$f" ] || up=; done
    [ -n "$up" ] && break
    kill -0 "$aws_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$up" ] || { cat "$tmp/aws.log"; fail "the local AWS did not start"; }
  EP=https://127.0.0.1:$(cat "$tmp/port")
}

# local_aws_stop: SIGTERM (the server saves its state) and wait for the
# exit; nothing when it is not running.
local_aws_stop () {
  if [ -n "$aws_pid" ]; then
    kill "$aws_pid" 2>/dev/null || true
    wait "$aws_pid" 2>/dev/null || true
    aws_pid=
  fi
}
cleanup_hooks+=(local_aws_stop)

# local_aws_env [--metadata]: nothing from the machine reaches the AWS code
# or curl: every AWS_* variable and proxy setting is removed, instance
# metadata is off (unless --metadata: the test serves it) and KMS retries
# back off from 0.1 s (CV_KMS_RETRY_BASE_MS, doc/kms.md). The test exports
# its own AWS_* settings after it.
local_aws_env () {
  local v
  for v in $(env | sed -n 's/^\(AWS_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
  unset https_proxy HTTPS_PROXY all_proxy ALL_PROXY http_proxy HTTP_PROXY
  [ "${1-}" = --metadata ] || export AWS_EC2_METADATA_DISABLED=true
  export CV_KMS_RETRY_BASE_MS=100
}

# local_aws_signer AKID SECRET: the credentials of the test's own KMS calls
# (kms below), kept in $tmp/curl-auth so that the secret is on no command line.
local_aws_signer () {
  printf 'user = "%s:%s"\n' "$1" "$2" >"$tmp/curl-auth"
  chmod 600 "$tmp/curl-auth"
}
# kms OP JSON: a KMS call to $EP in us-east-1, signed by curl (SigV4) with
# the local_aws_signer credentials; prints the answer, fails on an error.
kms () {
  curl -sS --fail-with-body -K "$tmp/curl-auth" --cacert "$CA" \
    --aws-sigv4 "aws:amz:us-east-1:kms" -H "Content-Type: application/x-amz-json-1.1" \
    -H "X-Amz-Target: TrentService.$1" --data-binary "$2" "$EP/"
}
# admin CURL-ARGS...: curl to the local AWS's admin interface (/_admin/...);
# clear_calls empties its call log, fault JSON sets a fault injection.
admin () { curl -sS --fail --cacert "$CA" "$@"; }
clear_calls () { admin -X DELETE "$EP/_admin/calls" >/dev/null; }
fault () { admin -X POST -d "$1" "$EP/_admin/fault" >/dev/null; }

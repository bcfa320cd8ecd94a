# The real AWS CLI, fast: aws_cli_start DIR starts tests/kms/aws-cli-server.py
# on DIR/aws-cli.sock (it imports awscli once and forks a process per call)
# and points AWS at tests/kms/aws-cli, which behaves as /usr/bin/aws;
# aws_cli_stop (call it from the test's cleanup) stops the server. With
# CV_AWS_CLI_DIRECT=1, AWS stays /usr/bin/aws (one interpreter per call).
aws_cli_pid=
aws_cli_start () {
  local dir=$1 _
  [ "${CV_AWS_CLI_DIRECT:-0}" = 1 ] && return 0
  /usr/bin/python3 "$srcdir/tests/kms/aws-cli-server.py" "$dir/aws-cli.sock" \
    >>"$dir/aws-cli-server.log" 2>&1 &
  aws_cli_pid=$!
  for _ in $(seq 1 200); do
    [ -S "$dir/aws-cli.sock" ] && break
    kill -0 "$aws_cli_pid" 2>/dev/null || break
    sleep 0.05
  done
  if ! [ -S "$dir/aws-cli.sock" ]; then
    cat "$dir/aws-cli-server.log"
    echo "FAIL: tests/kms/aws-cli-server.py did not start"
    exit 1
  fi
  export CV_AWS_CLI_SOCKET=$dir/aws-cli.sock
  AWS=$srcdir/tests/kms/aws-cli
}
aws_cli_stop () {
  if [ -n "$aws_cli_pid" ]; then
    kill "$aws_cli_pid" 2>/dev/null
    wait "$aws_cli_pid" 2>/dev/null
    aws_cli_pid=
  fi
}

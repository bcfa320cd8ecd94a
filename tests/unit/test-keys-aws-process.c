/* credential_process: scripts in a temporary directory that print
 * credentials, print something else, fail, hang or print too much; the
 * command split into words as the AWS CLI splits it; every refusal's
 * message, and never a secret or the output in the log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/aws.h"

static char dir[] = "/tmp/cv-aws-process-XXXXXX";

/* Write an executable script dir/name with body; its path (static). */
static const char *
script (const char *name, const char *body)
{
  static char path[8][300];
  static int n;
  char *p = path[n++ % 8];
  FILE *f;

  snprintf (p, 300, "%s/%s", dir, name);
  f = fopen (p, "w");
  if (f) {
    fprintf (f, "#!/bin/sh\n%s\n", body);
    fclose (f);
  }
  chmod (p, 0755);
  return p;
}

#define GOOD_JSON                                                              \
  "{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESS\", \"SecretAccessKey\": "   \
  "\"SECRETKEY\", \"SessionToken\": \"SECRETTOKEN\", \"Expiration\": "         \
  "\"2030-01-02T03:04:05Z\"}"

/* Run cmd; expect want, and want_msg in the log when it fails. */
static void
run (const char *cmd, int want, const char *want_msg, int line)
{
  struct cv_aws_creds c;

  harness_log_clear ();
  int r = cv_aws_process_creds (cmd, "proc", &c);
  CHECK (r == want, "line %d: %d, want %d; log: %s", line, r, want,
         harness_logged ());
  if (want_msg)
    CHECK (strstr (harness_logged (), want_msg), "line %d: logged \"%s\": %s",
           line, want_msg, harness_logged ());
  CHECK (!strstr (harness_logged (), "SECRET"), "line %d: a secret logged: %s",
         line, harness_logged ());
  if (r == 0)
    cv_aws_creds_free (&c);
}
#define RUN(cmd, want, msg) run (cmd, want, msg, __LINE__)

static void
check_success (void)
{
  struct cv_aws_creds c;
  char cmd[1024], args[400], got[200] = "";

  const char *ok = script ("ok", "echo '" GOOD_JSON "'");
  CHECK (cv_aws_process_creds (ok, "proc", &c) == 0, "credentials: %s",
         harness_logged ());
  CHECK (c.access_key_id && strcmp (c.access_key_id, "ASIAPROCESS") == 0
             && c.secret && c.secret->len == 9
             && memcmp (c.secret->b, "SECRETKEY", 9) == 0 && c.token
             && strcmp ((const char *) c.token->b, "SECRETTOKEN") == 0
             && c.expires == 1893553445
             && strcmp (c.source, "credential_process of profile proc") == 0,
         "the credentials as printed");
  cv_aws_creds_free (&c);

  /* Words as shlex.split makes them: quotes, escapes, no shell. */
  snprintf (args, sizeof args, "%s/args", dir);
  const char *argv_sh
      = script ("with space", "printf '%s|' \"$#\" \"$@\" > \"$ARGS\"\n"
                              "echo '" GOOD_JSON "'");
  setenv ("ARGS", args, 1);
  snprintf (cmd, sizeof cmd,
            "'%s' \"a b\" c\\ d 'e \"f' \"g\\\"h\\\\\" $HOME x#y", argv_sh);
  RUN (cmd, 0, NULL);
  FILE *f = fopen (args, "r");
  if (f) {
    if (!fgets (got, sizeof got, f))
      got[0] = '\0';
    fclose (f);
  }
  CHECK (strcmp (got, "6|a b|c d|e \"f|g\"h\\|$HOME|x#y|") == 0, "words: %s",
         got);
  unsetenv ("ARGS");

  /* Long-lived credentials: no token, no expiry. */
  RUN (script ("nosession",
               "echo '{\"Version\": 1, \"AccessKeyId\": \"AKIA1\", "
               "\"SecretAccessKey\": \"SECRETX\"}'"),
       0, NULL);
}

static void
check_failures (void)
{
  char cmd[400];
  double t0;
  struct timespec ts;

  RUN (script ("notjson", "echo 'SECRET not json'"), -EPROTO,
       "error: credential_process of profile proc (");
  RUN (script ("notjson2", "echo 'SECRET not json'"), -EPROTO,
       "/notjson2): its output is not a JSON object");
  RUN (script ("v2", "echo '{\"Version\": 2, \"AccessKeyId\": \"A\", "
                     "\"SecretAccessKey\": \"SECRETV\"}'"),
       -EPROTO, "its output has another Version; only Version 1 is known");
  RUN (script ("nov", "echo '{\"AccessKeyId\": \"A\", \"SecretAccessKey\": "
                      "\"SECRETV\"}'"),
       -EPROTO, "its output has no Version");
  RUN (script ("nosecret", "echo '{\"Version\": 1, \"AccessKeyId\": \"A\"}'"),
       -EPROTO, "the answer has no SecretAccessKey");
  RUN (script ("badexp",
               "echo '{\"Version\": 1, \"AccessKeyId\": \"A\", "
               "\"SecretAccessKey\": \"SECRETV\", \"Expiration\": \"soon\"}'"),
       -EPROTO, "the answer's Expiration is not an RFC 3339 time");
  RUN (script ("exit1", "echo 'SECRET on stdout'; echo 'no session' >&2; "
                        "exit 1"),
       -EIO,
       "/exit1) exited with status 1; its error output, if any, is above");
  RUN (script ("signal", "kill -TERM $$"), -EIO,
       "/signal) was killed by signal 15 (Terminated)");
  RUN (script ("big", "head -c 70000 /dev/zero"), -EPROTO,
       "/big) printed more than 65536 bytes");
  snprintf (cmd, sizeof cmd, "%s/missing --flag SECRET", dir);
  RUN (cmd, -EIO, "/missing): cannot start it: No such file or directory");

  setenv ("CV_AWS_PROCESS_TIMEOUT_MS", "300", 1);
  clock_gettime (CLOCK_MONOTONIC, &ts);
  t0 = ts.tv_sec + ts.tv_nsec / 1e9;
  RUN (script ("hang", "exec sleep 30"), -ETIMEDOUT,
       "/hang) gave no credentials within 300 ms and was killed");
  clock_gettime (CLOCK_MONOTONIC, &ts);
  CHECK (ts.tv_sec + ts.tv_nsec / 1e9 - t0 < 5, "the limit holds");
  /* Output closed, but the process goes on: killed at the limit too. */
  RUN (script ("lingers", "exec >&-; exec sleep 30"), -ETIMEDOUT,
       "gave no credentials within 300 ms");
  setenv ("CV_AWS_PROCESS_TIMEOUT_MS", "soon", 1);
  RUN (script ("knob", "echo '" GOOD_JSON "'"), -EINVAL,
       "CV_AWS_PROCESS_TIMEOUT_MS=soon is not a number of milliseconds");
  unsetenv ("CV_AWS_PROCESS_TIMEOUT_MS");

  RUN ("'open SECRET", -EINVAL,
       "error: credential_process of profile proc cannot be split into "
       "words as the AWS CLI splits it: a quotation is not closed");
  RUN ("\"open SECRET", -EINVAL, "a quotation is not closed");
  RUN (" \t ", -EINVAL, "it is empty");
  RUN ("cmd SECRET\\", -EINVAL, "it ends with a lone \\");
}

int
main (void)
{
  harness_init ();
  harness_mkdtemp (dir);
  check_success ();
  check_failures ();
  harness_rm_rf (dir);
  return harness_done ("test-keys-aws-process");
}

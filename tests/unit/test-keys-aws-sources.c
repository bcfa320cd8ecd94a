/* The container credentials and instance metadata sources, where no server
 * is needed: which URLs and hosts they accept (as the AWS SDKs), their
 * tokens, and what they say when nothing answers (a refused loopback port).
 * Answers from a server are checked by the integration tests against the
 * local AWS (tests/kms). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "harness.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define FULL "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#define RELATIVE "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
#define TOKEN_FILE "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
#define TOKEN_ENV "AWS_CONTAINER_AUTHORIZATION_TOKEN"

static char dir[] = "/tmp/cv-test-aws-sources-XXXXXX";

/* The container source with FULL_URI set to uri; its return code. */
static int
container (const char *uri, char *why, size_t len)
{
  struct cv_aws_creds c = { 0 };
  int r;

  setenv (FULL, uri, 1);
  harness_log_clear ();
  r = cv_aws_container_creds (&c, why, len);
  CHECK (r < 0 || c.access_key_id, "%s: credentials on success", uri);
  cv_aws_creds_free (&c);
  return r;
}

static void
check_container_hosts (void)
{
  /* Nothing listens on port 1: an allowed host is tried (and refused). */
  static const char *const allowed[] = {
    "http://127.0.0.1:1/creds",  "http://127.200.3.4:1/creds",
    "http://[::1]:1/creds",      "http://localhost:1/creds",
    "https://127.0.0.1:1/creds",
  };
  static const char *const refused[] = {
    "http://10.0.0.1/creds",         "http://128.0.0.1/creds",
    "http://169.254.170.3/creds",    "http://169.254.169.254/creds",
    "http://[fd00:ec2::24]/creds",   "http://[::2]/creds",
    "http://example.com/creds",      "http://localhost.example.com/creds",
    "http://127.0.0.1.nip.io/creds",
  };
  char why[CV_AWS_WHY_MAX];

  for (size_t i = 0; i < ARRAY_SIZE (allowed); i++) {
    int r = container (allowed[i], why, sizeof why);
    CHECK (r == -ECONNREFUSED, "%s: %d", allowed[i], r);
    CHECK (strstr (harness_logged (), "no answer after 3 attempts")
               && strstr (harness_logged (), "(" FULL ")")
               && !strstr (harness_logged (), "/creds"),
           "message, without the URI's path: %s", harness_logged ());
  }
  for (size_t i = 0; i < ARRAY_SIZE (refused); i++) {
    int r = container (refused[i], why, sizeof why);
    CHECK (r == -EINVAL, "%s: %d", refused[i], r);
    CHECK (strstr (harness_logged (), "is http:// to a host that is not "
                                      "allowed"),
           "message: %s", harness_logged ());
  }
  CHECK (container ("ftp://127.0.0.1/creds", why, sizeof why) == -EINVAL
             && strstr (harness_logged (), "is not an http:// or https:// URL"),
         "ftp: %s", harness_logged ());
  CHECK (container ("not a url", why, sizeof why) == -EINVAL, "not a URL");
}

static void
check_container_tokens (void)
{
  char why[CV_AWS_WHY_MAX], path[256];
  int fd;

  setenv (TOKEN_ENV, "Bearer a\r\nX-Injected: 1", 1);
  CHECK (container ("http://127.0.0.1:1/creds", why, sizeof why) == -EINVAL,
         "a token with a line break");
  CHECK (strstr (harness_logged (), "the authorization token from " TOKEN_ENV
                                    " holds a control character")
             && !strstr (harness_logged (), "Injected"),
         "message: %s", harness_logged ());

  snprintf (path, sizeof path, "%s/missing", dir);
  setenv (TOKEN_FILE, path, 1);
  CHECK (container ("http://127.0.0.1:1/creds", why, sizeof why) == -ENOENT,
         "the token file wins over the variable, and is missing");
  CHECK (strstr (harness_logged (), "container credentials: cannot read the "
                                    "token file ")
             && strstr (harness_logged (), "check " TOKEN_FILE),
         "message: %s", harness_logged ());

  snprintf (path, sizeof path, "%s/token", dir);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0 && write (fd, "Bearer good\n", 12) == 12, "write token");
  close (fd);
  setenv (TOKEN_FILE, path, 1);
  CHECK (container ("http://127.0.0.1:1/creds", why, sizeof why)
             == -ECONNREFUSED,
         "a good token file is read, then the endpoint tried");
  unlink (path);
  unsetenv (TOKEN_FILE);
  unsetenv (TOKEN_ENV);
}

static void
check_container_unset (void)
{
  struct cv_aws_creds c = { 0 };
  char why[CV_AWS_WHY_MAX] = "";

  unsetenv (FULL);
  unsetenv (RELATIVE);
  harness_log_clear ();
  CHECK (cv_aws_container_creds (&c, why, sizeof why) == -ENOKEY,
         "neither variable");
  CHECK (strcmp (why, "neither " RELATIVE " nor " FULL " is set") == 0,
         "why: %s", why);
  CHECK (!strstr (harness_logged (), "error"), "not logged: %s",
         harness_logged ());
  setenv (FULL, "", 1);
  CHECK (cv_aws_container_creds (&c, why, sizeof why) == -ENOKEY,
         "an empty variable is unset");
  unsetenv (FULL);

  /* A pause knob that is not a number is refused before any request. */
  setenv ("CV_KMS_RETRY_BASE_MS", "soon", 1);
  CHECK (container ("http://127.0.0.1:9/creds", why, sizeof why) == -EINVAL,
         "CV_KMS_RETRY_BASE_MS=soon: -EINVAL");
  CHECK (strstr (harness_logged (), "is not a number of milliseconds"),
         "message: %s", harness_logged ());
  unsetenv ("CV_KMS_RETRY_BASE_MS");
}

static void
check_imds (void)
{
  struct cv_aws_creds c = { 0 };
  char why[CV_AWS_WHY_MAX] = "", region[32] = "x";
  static const char *const bad[] = {
    "http://127.0.0.1:1/latest", "ftp://127.0.0.1",    "127.0.0.1", "http://",
    "http://user@127.0.0.1",     "http://127.0.0.1?x",
  };

  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    harness_log_clear ();
    CHECK (cv_aws_imds_creds (bad[i], &c, why, sizeof why) == -EINVAL,
           "endpoint %s", bad[i]);
    CHECK (strstr (harness_logged (), "is not http[s]://HOST[:PORT] "
                                      "(AWS_EC2_METADATA_SERVICE_ENDPOINT"),
           "message: %s", harness_logged ());
  }
  harness_log_clear ();
  CHECK (cv_aws_imds_creds ("http://127.0.0.1:1/", &c, why, sizeof why)
             == -ENOKEY,
         "nothing answers (a trailing slash is fine)");
  CHECK (strncmp (why, "no instance metadata at http://127.0.0.1:1 (", 44) == 0,
         "why: %s", why);
  CHECK (!strstr (harness_logged (), "error"), "not logged: %s",
         harness_logged ());
  CHECK (cv_aws_imds_region ("http://127.0.0.1:1", region, sizeof region)
                 == -ENOKEY
             && strcmp (region, "x") == 0,
         "no region when nothing answers");
  CHECK (!c.access_key_id, "no credentials");
}

int
main (void)
{
  harness_init ();
  setenv ("CV_KMS_RETRY_BASE_MS", "1", 1); /* the pause between attempts */
  harness_mkdtemp (dir);
  unsetenv (RELATIVE);
  unsetenv (TOKEN_FILE);
  unsetenv (TOKEN_ENV);
  check_container_unset ();
  check_container_hosts ();
  check_container_tokens ();
  check_imds ();
  rmdir (dir);
  return harness_done ("test-keys-aws-sources");
}

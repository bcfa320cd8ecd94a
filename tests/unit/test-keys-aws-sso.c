/* SSO profiles: the settings they need (sso-session sections and legacy
 * profiles), the AWS CLI's token cache file named by the SHA-1 of the
 * session name or start URL (sha1sum is the oracle), and the refusals when
 * no token is cached, it expired or the file is broken, each saying what
 * to run. With a good token the portal is asked (here a closed port). The
 * token is never logged. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "keys/aws.h"

static char dir[] = "/tmp/cv-aws-sso-XXXXXX";

static const char config[]
    = "[profile new]\n"
      "sso_session = corp\n"
      "sso_account_id = 111122223333\n"
      "sso_role_name = cryptvol-serve\n"
      "[sso-session corp]\n"
      "sso_start_url = https://corp.awsapps.com/start\n"
      "sso_region = eu-west-1\n"
      "[profile legacy]\n"
      "sso_start_url = https://legacy.awsapps.com/start\n"
      "sso_region = us-east-2\n"
      "sso_account_id = 111122223333\n"
      "sso_role_name = r\n"
      "[profile nosession]\n"
      "sso_session = gone\n"
      "sso_account_id = 1\n"
      "sso_role_name = r\n"
      "[profile noregion]\n"
      "sso_start_url = https://x.awsapps.com/start\n"
      "[profile norole]\n"
      "sso_session = corp\n"
      "sso_account_id = 1\n"
      "[profile plain]\n"
      "region = us-east-1\n";

/* The cache file of key, as sha1sum names it. */
static const char *
cache_file (const char *key)
{
  static char path[400];
  char cmd[300], hex[64] = "";
  FILE *p;

  snprintf (cmd, sizeof cmd, "printf %%s '%s' | sha1sum", key);
  p = popen (cmd, "r");
  if (p) {
    if (fscanf (p, "%40s", hex) != 1)
      hex[0] = '\0';
    pclose (p);
  }
  snprintf (path, sizeof path, "%s/.aws/sso/cache/%s.json", dir, hex);
  return path;
}

static void
write_cache (const char *key, const char *text)
{
  FILE *f = fopen (cache_file (key), "w");

  if (f) {
    fputs (text, f);
    fclose (f);
  }
}

/* cv_aws_sso_creds of profile: want, and want_msg logged. */
static void
sso (const struct cv_aws_config *cfg, const char *profile, int want,
     const char *want_msg, int line)
{
  struct cv_aws_ctx ctx
      = { .cfg = (struct cv_aws_config *) cfg, .profile = profile };
  struct cv_aws_creds c;

  harness_log_clear ();
  int r = cv_aws_sso_creds (&ctx, profile, &c);
  CHECK (r == want, "line %d: %d, want %d: %s", line, r, want,
         harness_logged ());
  if (want_msg)
    CHECK (strstr (harness_logged (), want_msg), "line %d: logged \"%s\": %s",
           line, want_msg, harness_logged ());
  else
    CHECK (!harness_logged ()[0], "line %d: nothing logged: %s", line,
           harness_logged ());
  CHECK (!strstr (harness_logged (), "SECRET"), "line %d: the token logged",
         line);
  if (r == 0)
    cv_aws_creds_free (&c);
}
#define SSO(cfg, p, want, msg) sso (cfg, p, want, msg, __LINE__)

int
main (void)
{
  struct cv_aws_config *cfg = NULL;
  char path[400], msg[600];

  harness_init ();
  harness_mkdtemp (dir);
  setenv ("HOME", dir, 1);
  snprintf (path, sizeof path, "%s/.aws", dir);
  mkdir (path, 0700);
  snprintf (path, sizeof path, "%s/.aws/sso", dir);
  mkdir (path, 0700);
  snprintf (path, sizeof path, "%s/.aws/sso/cache", dir);
  mkdir (path, 0700);
  CHECK (
      cv_aws_config_parse (config, strlen (config), "/cfg", NULL, 0, "", &cfg)
          == 0,
      "config");

  /* Settings. */
  SSO (cfg, "plain", -ENOKEY, NULL);
  SSO (cfg, "nosession", -EINVAL,
       "error: AWS profile nosession names sso_session gone, but /cfg has no "
       "[sso-session gone] with sso_start_url and sso_region");
  SSO (cfg, "noregion", -EINVAL,
       "error: AWS profile noregion has sso_start_url but no sso_region");
  SSO (cfg, "norole", -EINVAL,
       "error: AWS profile norole is an SSO profile without sso_role_name");

  /* No token cached: the file of the session's SHA-1. */
  snprintf (msg, sizeof msg,
            "error: AWS profile new: no SSO token is cached (%s); run `aws "
            "sso login --profile new`",
            cache_file ("corp"));
  SSO (cfg, "new", -EKEYEXPIRED, msg);
  /* Legacy profiles: the SHA-1 of the start URL. */
  snprintf (msg, sizeof msg,
            "no SSO token is cached (%s); run `aws sso login "
            "--profile legacy`",
            cache_file ("https://legacy.awsapps.com/start"));
  SSO (cfg, "legacy", -EKEYEXPIRED, msg);

  write_cache ("corp", "{\"accessToken\": \"SECRETTOKEN\", \"expiresAt\": "
                       "\"2020-01-01T00:00:00Z\"}");
  SSO (cfg, "new", -EKEYEXPIRED,
       "expired at 2020-01-01T00:00:00Z; run `aws sso login --profile new`");
  write_cache ("corp", "{\"accessToken\": \"SECRETTOKEN\", \"expiresAt\": "
                       "\"2020-01-01T00:00:00UTC\"}");
  SSO (cfg, "new", -EKEYEXPIRED, "expired at 2020-01-01T00:00:00Z");
  write_cache ("corp", "{\"expiresAt\": \"2099-01-01T00:00:00Z\"}");
  SSO (cfg, "new", -EPROTO, "has no accessToken; run `aws sso login");
  write_cache ("corp", "SECRET not json");
  SSO (cfg, "new", -EPROTO, "has no accessToken");
  write_cache ("corp", "{\"accessToken\": \"SECRETTOKEN\"}");
  SSO (cfg, "new", -EPROTO, "has no expiresAt");
  write_cache ("corp", "{\"accessToken\": \"SECRETTOKEN\", \"expiresAt\": "
                       "\"tomorrow\"}");
  SSO (cfg, "new", -EPROTO, "the expiresAt of the SSO token cache file");
  chmod (cache_file ("corp"), 0);
  if (access (cache_file ("corp"), R_OK) != 0) /* not root */
    SSO (cfg, "new", -EINVAL, "cannot read AWS SSO token cache file");
  unlink (cache_file ("corp"));

  /* A good token: the portal is asked (a closed port here). */
  struct sockaddr_in sa
      = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  char url[80];
  CHECK (fd >= 0 && bind (fd, (struct sockaddr *) &sa, sizeof sa) == 0
             && getsockname (fd, (struct sockaddr *) &sa, &sl) == 0,
         "a port");
  close (fd);
  snprintf (url, sizeof url, "https://127.0.0.1:%d", ntohs (sa.sin_port));
  setenv ("AWS_ENDPOINT_URL_SSO", url, 1);
  write_cache ("corp", "{\"accessToken\": \"SECRETTOKEN\", \"expiresAt\": "
                       "\"2099-01-01T00:00:00Z\"}");
  snprintf (msg, sizeof msg,
            "error: AWS profile new: cannot reach the SSO portal at %s/", url);
  SSO (cfg, "new", -ECONNREFUSED, msg);
  setenv ("AWS_ENDPOINT_URL_SSO", "http://127.0.0.1:1", 1);
  SSO (cfg, "new", -EINVAL,
       "SSO endpoint \"http://127.0.0.1:1\" (from "
       "AWS_ENDPOINT_URL_SSO) is not an https:// URL");
  unsetenv ("AWS_ENDPOINT_URL_SSO");

  cv_aws_config_free (cfg);
  harness_rm_rf (dir);
  return harness_done ("test-keys-aws-sso");
}

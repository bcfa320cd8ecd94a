/* The AWS credential chain (lib/keys/aws-chain.c) on the sources that need
 * no network: the environment, profiles with static keys and
 * credential_process, the report when nothing gives credentials, and the
 * process's cache: reused while fresh, resolved again ahead of expiry, the
 * current credentials kept when a refresh fails before they expire. The
 * network sources run against the local AWS in test-kms-identity.sh. No
 * secret may reach the log. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define SECRET1 "s3cr3t/one+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define SECRET2 "s3cr3t/two+BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define TOKEN "FwoGZXIvYXdzEXAMPLEtoken=="

static char dir[] = "/tmp/cv-test-aws-chain-XXXXXX";
static char path_creds[600], path_config[600], path_count[600], path_proc[600],
    path_exp[600];

static time_t fake_now;

static time_t
clock_fake (void)
{
  return fake_now;
}

static void
write_file (const char *path, const char *text, mode_t mode)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  CHECK (fd >= 0 && cv_write_all (fd, text, strlen (text)) == 0, "write %s",
         path);
  close (fd);
}

static bool
key_is (const struct cv_key *k, const char *s, bool nul)
{
  size_t n = strlen (s) + (nul ? 1 : 0);

  return k && k->len == n && memcmp (k->b, s, n) == 0;
}

/* How often the credential_process ran. */
static int
runs (void)
{
  char buf[32] = "";
  int fd = open (path_count, O_RDONLY);
  size_t got = 0;

  if (fd < 0)
    return 0;
  cv_read_all (fd, buf, sizeof buf - 1, &got);
  close (fd);
  return (int) got; /* one byte per run */
}

/* A load through the cache into c; its return code. */
static int
load (struct cv_aws_creds *c)
{
  return cv_aws_creds_load (c);
}

static void
check_no_secret_logged (void)
{
  CHECK (!strstr (harness_logged (), SECRET1)
             && !strstr (harness_logged (), SECRET2)
             && !strstr (harness_logged (), TOKEN),
         "a secret was logged: %s", harness_logged ());
  harness_log_clear ();
}

static void
fresh_env (void)
{
  unsetenv ("AWS_ACCESS_KEY_ID");
  unsetenv ("AWS_SECRET_ACCESS_KEY");
  unsetenv ("AWS_SESSION_TOKEN");
  unsetenv ("AWS_PROFILE");
  unsetenv ("AWS_DEFAULT_PROFILE");
  unsetenv ("AWS_WEB_IDENTITY_TOKEN_FILE");
  unsetenv ("AWS_ROLE_ARN");
  unsetenv ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  unsetenv ("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", path_creds, 1);
  setenv ("AWS_CONFIG_FILE", path_config, 1);
  cv_aws_creds_reset ();
  harness_log_clear ();
}

static void
check_sources (void)
{
  struct cv_aws_creds c;

  write_file (path_creds,
              "[default]\naws_access_key_id = AKIADEFAULT\n"
              "aws_secret_access_key = " SECRET1 "\n"
              "[other]\naws_access_key_id = AKIAOTHER\n"
              "aws_secret_access_key = " SECRET2 "\n"
              "aws_session_token = " TOKEN "\n"
              "[half]\naws_access_key_id = AKIAHALF\n",
              0600);
  write_file (
      path_config,
      "[profile roleless]\nregion = us-east-1\n"
      "[profile nosource]\nrole_arn = arn:aws:iam::111122223333:role/x\n"
      "[profile twosources]\nrole_arn = arn:aws:iam::111122223333:role/x\n"
      "source_profile = default\ncredential_source = Environment\n"
      "[profile badsource]\nrole_arn = arn:aws:iam::111122223333:role/x\n"
      "credential_source = Ec2\n"
      "[profile loop1]\nrole_arn = arn:aws:iam::111122223333:role/x\n"
      "source_profile = loop2\n"
      "[profile loop2]\nrole_arn = arn:aws:iam::111122223333:role/x\n"
      "source_profile = loop1\n"
      "[profile badduration]\nrole_arn = arn:aws:iam::111122223333:role/x\n"
      "source_profile = default\nduration_seconds = 60\n",
      0600);

  /* The environment first. */
  fresh_env ();
  setenv ("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", SECRET2, 1);
  setenv ("AWS_SESSION_TOKEN", TOKEN, 1);
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "AKIAENV") == 0
             && key_is (c.secret, SECRET2, false)
             && key_is (c.token, TOKEN, true)
             && strcmp (c.source, "the environment") == 0 && c.expires == 0,
         "the environment wins over the profile");
  cv_aws_creds_free (&c);

  /* Half a pair in the environment: the profile answers. */
  fresh_env ();
  setenv ("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "AKIADEFAULT") == 0
             && key_is (c.secret, SECRET1, false) && !c.token,
         "an incomplete environment falls through to [default]");
  cv_aws_creds_free (&c);

  fresh_env ();
  setenv ("AWS_PROFILE", "other", 1);
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "AKIAOTHER") == 0
             && key_is (c.token, TOKEN, true)
             && strstr (c.source, "profile other"),
         "AWS_PROFILE picks the profile: %s", c.source ? c.source : "");
  cv_aws_creds_free (&c);

  struct {
    const char *profile, *message;
  } bad[] = {
    { "half", "profile half has aws_access_key_id" },
    { "nosource", "profile nosource has role_arn and none of" },
    { "twosources", "profile twosources has role_arn and more than one" },
    { "badsource", "credential_source = Ec2 is not Environment" },
    { "loop1", "more than 8 profiles deep" },
    { "badduration", "duration_seconds = 60 is not a number of seconds" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    fresh_env ();
    setenv ("AWS_PROFILE", bad[i].profile, 1);
    CHECK (load (&c) == -EKEYEXPIRED,
           "profile %s: -EKEYEXPIRED (a failing source, not a revocation)",
           bad[i].profile);
    CHECK (strstr (harness_logged (), bad[i].message), "profile %s: %s",
           bad[i].profile, harness_logged ());
  }

  /* Nothing anywhere: one error that lists every source. */
  fresh_env ();
  setenv ("AWS_PROFILE", "roleless", 1);
  CHECK (load (&c) == -ENOKEY, "no credentials: -ENOKEY");
  CHECK (strstr (harness_logged (), "no AWS credentials found")
             && strstr (harness_logged (),
                        "1. the environment: AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY are not set")
             && strstr (harness_logged (), "2. web identity: "
                                           "AWS_WEB_IDENTITY_TOKEN_FILE and "
                                           "AWS_ROLE_ARN are not set")
             && strstr (harness_logged (),
                        "3. profile roleless: profile roleless has no "
                        "aws_access_key_id")
             && strstr (harness_logged (), "4. container credentials: ")
             && strstr (harness_logged (), "5. instance metadata: "
                                           "AWS_EC2_METADATA_DISABLED is true"),
         "the report lists every source: %s", harness_logged ());
  check_no_secret_logged ();
}

/* The credential_process prints credentials that expire at the time in
 * path_exp, and counts its runs. */
static void
process_expires (time_t when)
{
  char text[64];
  struct tm tm;

  gmtime_r (&when, &tm);
  strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  write_file (path_exp, text, 0600);
}

static void
check_cache (void)
{
  char script[4096], config[1024];
  struct cv_aws_creds c;

  snprintf (script, sizeof script,
            "#!/bin/sh\n"
            "printf x >>%s\n"
            "[ -e %s.fail ] && { echo 'vault sealed' >&2; exit 2; }\n"
            "printf '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC%%s\", "
            "\"SecretAccessKey\": \"%s\", \"SessionToken\": \"%s\", "
            "\"Expiration\": \"%%s\"}' \"$(wc -c <%s)\" \"$(cat %s)\"\n",
            path_count, path_proc, SECRET1, TOKEN, path_count, path_exp);
  write_file (path_proc, script, 0700);
  snprintf (config, sizeof config, "[default]\ncredential_process = %s\n",
            path_proc);
  write_file (path_config, config, 0600);
  write_file (path_creds, "", 0600);
  unlink (path_count);

  fresh_env ();
  cv_aws_creds_clock_for_tests (clock_fake);
  fake_now = time (NULL);
  process_expires (fake_now + 3600);
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "ASIAPROC1") == 0
             && c.expires == fake_now + 3600,
         "credential_process answers");
  cv_aws_creds_free (&c);
  fake_now += 2699; /* 15 min + 1 s before expiry: still fresh */
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "ASIAPROC1") == 0
             && runs () == 1,
         "cached while more than 15 min from expiry (%d runs)", runs ());
  cv_aws_creds_free (&c);
  fake_now += 2; /* inside the 15 min: resolved again */
  process_expires (fake_now + 3600);
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "ASIAPROC2") == 0
             && runs () == 2,
         "refreshed ahead of expiry (%d runs)", runs ());
  CHECK (strstr (harness_logged (), "refreshed ahead of their expiry"),
         "the refresh is a debug line: %s", harness_logged ());
  cv_aws_creds_free (&c);

  /* Short-lived credentials: refreshed after half their life. */
  fake_now += 3600;
  process_expires (fake_now + 8);
  CHECK (load (&c) == 0 && runs () == 3, "expired: resolved again");
  cv_aws_creds_free (&c);
  fake_now += 3;
  CHECK (load (&c) == 0 && runs () == 3, "8 s credentials kept for 4 s");
  cv_aws_creds_free (&c);
  fake_now += 1;
  process_expires (fake_now + 8);
  CHECK (load (&c) == 0 && runs () == 4
             && strcmp (c.access_key_id, "ASIAPROC4") == 0,
         "8 s credentials refreshed after 4 s");
  cv_aws_creds_free (&c);

  /* A refresh that fails before expiry keeps the current ones. */
  char fail[700];
  snprintf (fail, sizeof fail, "%s.fail", path_proc);
  write_file (fail, "", 0600);
  fake_now += 5; /* 3 s left */
  harness_log_clear ();
  CHECK (load (&c) == 0 && strcmp (c.access_key_id, "ASIAPROC4") == 0
             && runs () == 5,
         "a failed refresh keeps credentials that are still valid");
  CHECK (strstr (harness_logged (), "stay in use until they expire in 3 s"),
         "and says so: %s", harness_logged ());
  cv_aws_creds_free (&c);
  fake_now += 3; /* expired now */
  harness_log_clear ();
  CHECK (load (&c) < 0 && runs () == 6,
         "expired and the refresh fails: the error");
  CHECK (strstr (harness_logged (), "credential_process"), "message: %s",
         harness_logged ());
  unlink (fail);
  cv_aws_creds_clock_for_tests (NULL);
  check_no_secret_logged ();
}

int
main (void)
{
  harness_init ();
  cv_log_set_debug (true);
  harness_mkdtemp (dir);
  snprintf (path_creds, sizeof path_creds, "%s/credentials", dir);
  snprintf (path_config, sizeof path_config, "%s/config", dir);
  snprintf (path_count, sizeof path_count, "%s/count", dir);
  snprintf (path_proc, sizeof path_proc, "%s/proc.sh", dir);
  snprintf (path_exp, sizeof path_exp, "%s/expiry", dir);
  check_sources ();
  check_cache ();
  cv_aws_creds_reset ();
  harness_rm_rf (dir);
  return harness_done ("test-keys-aws-chain");
}

/* The KMS provider's inputs: the AWS credential chain (environment, shared
 * credentials file and profiles), key references and their regions
 * (multi-Region keys), and endpoints (https only). No secret may reach the
 * log. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/keys.h"
#include "keys/kms.h"

#define SECRET1 "s3cr3t/one+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define SECRET2 "s3cr3t/two+BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define TOKEN "FwoGZXIvYXdzEXAMPLEtoken=="

static char dir[] = "/tmp/cv-test-kms-creds-XXXXXX";

static const char creds_file[] = "# comment\n"
                                 "[default]\n"
                                 "aws_access_key_id = AKIADEFAULT\n"
                                 "aws_secret_access_key=" SECRET1 "\n"
                                 "\n"
                                 "  [ other ]  \r\n"
                                 "; another comment\r\n"
                                 "aws_access_key_id=AKIAOTHER\r\n"
                                 "aws_secret_access_key = " SECRET2 "  \r\n"
                                 "aws_session_token = " TOKEN "\r\n"
                                 "[broken]\n"
                                 "aws_access_key_id = AKIABROKEN\n"
                                 "[role]\n"
                                 "role_arn = arn:aws:iam::111122223333:role/x\n"
                                 "source_profile = default\n";

static bool
key_is (const struct cv_key *k, const char *s, bool nul)
{
  size_t n = strlen (s) + (nul ? 1 : 0);

  return k && k->len == n && memcmp (k->b, s, n) == 0;
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
check_parse (void)
{
  struct cv_aws_creds c;
  size_t len = strlen (creds_file);

  CHECK (cv_aws_creds_parse (creds_file, len, "default", "F", &c) == 0,
         "default profile");
  CHECK (c.access_key_id && strcmp (c.access_key_id, "AKIADEFAULT") == 0,
         "key id %s", c.access_key_id);
  CHECK (key_is (c.secret, SECRET1, false), "default secret");
  CHECK (c.token == NULL, "no token in default");
  CHECK (c.source && strstr (c.source, "profile default of F"), "source %s",
         c.source);
  cv_aws_creds_free (&c);

  CHECK (cv_aws_creds_parse (creds_file, len, "other", "F", &c) == 0,
         "spaced section name, CRLF, blanks around values");
  CHECK (c.access_key_id && strcmp (c.access_key_id, "AKIAOTHER") == 0,
         "other key id");
  CHECK (key_is (c.secret, SECRET2, false), "trailing blanks trimmed");
  CHECK (key_is (c.token, TOKEN, true), "session token with its NUL");
  cv_aws_creds_free (&c);

  CHECK (cv_aws_creds_parse (creds_file, len, "nosuch", "F", &c) == -ENOKEY,
         "a missing profile is -ENOKEY");
  CHECK (cv_aws_creds_parse (creds_file, len, "broken", "F", &c) == -EINVAL,
         "a profile without a secret is -EINVAL");
  CHECK (strstr (harness_logged (), "lacks aws_secret_access_key"),
         "message names what is missing: %s", harness_logged ());
  harness_log_clear ();
  CHECK (cv_aws_creds_parse (creds_file, len, "role", "F", &c) == -EINVAL,
         "a role profile is refused");
  CHECK (strstr (harness_logged (), "not supported"),
         "message says roles are not supported: %s", harness_logged ());
  check_no_secret_logged ();
}

static void
write_file (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0 && cv_write_all (fd, text, strlen (text)) == 0, "write %s",
         path);
  close (fd);
}

static void
check_chain (void)
{
  char path[512], home[512];
  struct cv_aws_creds c;

  snprintf (path, sizeof path, "%s/credentials", dir);
  snprintf (home, sizeof home, "%s/home", dir);
  write_file (path, creds_file);
  unsetenv ("AWS_PROFILE");
  unsetenv ("AWS_SESSION_TOKEN");

  /* The environment first. */
  setenv ("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", SECRET2, 1);
  setenv ("AWS_SESSION_TOKEN", TOKEN, 1);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", path, 1);
  CHECK (cv_aws_creds_load (&c) == 0 && strcmp (c.access_key_id, "AKIAENV") == 0
             && key_is (c.secret, SECRET2, false)
             && key_is (c.token, TOKEN, true)
             && strcmp (c.source, "the environment") == 0,
         "environment credentials win");
  cv_aws_creds_free (&c);

  /* Half a pair in the environment: warned about, the file is used. */
  unsetenv ("AWS_SECRET_ACCESS_KEY");
  unsetenv ("AWS_SESSION_TOKEN");
  CHECK (cv_aws_creds_load (&c) == 0
             && strcmp (c.access_key_id, "AKIADEFAULT") == 0,
         "an incomplete environment falls through to the file");
  CHECK (strstr (harness_logged (), "AWS_SECRET_ACCESS_KEY is not"),
         "warned: %s", harness_logged ());
  cv_aws_creds_free (&c);
  unsetenv ("AWS_ACCESS_KEY_ID");

  setenv ("AWS_PROFILE", "other", 1);
  CHECK (cv_aws_creds_load (&c) == 0
             && strcmp (c.access_key_id, "AKIAOTHER") == 0
             && key_is (c.token, TOKEN, true),
         "AWS_PROFILE picks the profile");
  cv_aws_creds_free (&c);
  setenv ("AWS_PROFILE", "nosuch", 1);
  harness_log_clear ();
  CHECK (cv_aws_creds_load (&c) == -EINVAL, "a named profile must exist");
  CHECK (strstr (harness_logged (), "no profile [nosuch]"), "message: %s",
         harness_logged ());
  unsetenv ("AWS_PROFILE");

  /* ~/.aws/credentials when AWS_SHARED_CREDENTIALS_FILE is not set. */
  unsetenv ("AWS_SHARED_CREDENTIALS_FILE");
  setenv ("HOME", home, 1);
  CHECK (cv_aws_creds_load (&c) == -ENOKEY, "nothing anywhere: -ENOKEY");
  char awsdir[600], file[700];
  snprintf (awsdir, sizeof awsdir, "%s/.aws", home);
  mkdir (home, 0700);
  mkdir (awsdir, 0700);
  snprintf (file, sizeof file, "%s/credentials", awsdir);
  write_file (file, "[default]\naws_access_key_id=AKIAHOME\n"
                    "aws_secret_access_key=" SECRET1 "\n");
  CHECK (cv_aws_creds_load (&c) == 0
             && strcmp (c.access_key_id, "AKIAHOME") == 0,
         "~/.aws/credentials");
  cv_aws_creds_free (&c);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", 1);
  CHECK (cv_aws_creds_load (&c) == 0
             && strcmp (c.access_key_id, "AKIAHOME") == 0,
         "~ in AWS_SHARED_CREDENTIALS_FILE");
  cv_aws_creds_free (&c);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
  CHECK (cv_aws_creds_load (&c) == -ENOKEY,
         "AWS_SHARED_CREDENTIALS_FILE=/dev/null: no file, -ENOKEY");
  setenv ("AWS_SHARED_CREDENTIALS_FILE", dir, 1);
  CHECK (cv_aws_creds_load (&c) == -EINVAL,
         "a directory as credentials file is an error");
  setenv ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", 1);
  write_file (file, "[other]\naws_access_key_id=AKIAHOME\n");
  CHECK (cv_aws_creds_load (&c) == -ENOKEY, "no [default] profile: -ENOKEY");
  unlink (file);
  rmdir (awsdir);
  rmdir (home);
  unsetenv ("AWS_SHARED_CREDENTIALS_FILE");
  check_no_secret_logged ();
}

/* Parse ref and resolve its region and KeyId with creds c. */
static int
resolve (const char *ref, const char *kms_region, char *region, char **key_id)
{
  struct cv_creds c = { .kms_region = kms_region };
  struct cv_kms_ref r;
  int rc = cv_kms_ref_parse (ref, &r);

  if (rc == 0)
    rc = cv_kms_ref_region (&r, &c, ref, region, 32);
  if (rc == 0)
    rc = cv_kms_ref_key_id (ref, &r, region, key_id);
  return rc;
}

static void
check_refs (void)
{
  static const char arn[] = "arn:aws:kms:eu-west-1:111122223333:key/"
                            "1234abcd-12ab-34cd-56ef-1234567890ab";
  static const char mrk[] = "arn:aws:kms:us-east-1:111122223333:key/"
                            "mrk-1234abcd12ab34cd56ef1234567890ab";
  char region[32];
  CLEANUP_FREE char *id1 = NULL, *id2 = NULL, *id3 = NULL, *id4 = NULL,
                    *id5 = NULL, *id6 = NULL, *id7 = NULL;
  struct cv_kms_ref r;

  unsetenv ("AWS_REGION");
  unsetenv ("AWS_DEFAULT_REGION");
  CHECK (resolve (arn, NULL, region, &id1) == 0
             && strcmp (region, "eu-west-1") == 0 && strcmp (id1, arn) == 0,
         "key ARN: its region, as given");
  CHECK (resolve (arn, "us-west-2", region, &id2) == 0
             && strcmp (region, "eu-west-1") == 0,
         "a single-Region key ARN keeps its region whatever kms-region says");
  CHECK (resolve (mrk, "us-west-2", region, &id3) == 0
             && strcmp (region, "us-west-2") == 0
             && strcmp (id3, "arn:aws:kms:us-west-2:111122223333:key/"
                             "mrk-1234abcd12ab34cd56ef1234567890ab")
                    == 0,
         "multi-Region key: kms-region picks the replica: %s", id3 ? id3 : "");
  CHECK (cv_kms_ref_parse (mrk, &r) == 0 && r.mrk && r.arn && !r.alias,
         "mrk flags");
  harness_log_clear ();
  CHECK (resolve ("alias/vol-keys", NULL, region, &id4) == -EINVAL,
         "alias without a region");
  CHECK (strstr (harness_logged (), "kms-region"), "message says how: %s",
         harness_logged ());
  setenv ("AWS_DEFAULT_REGION", "ap-south-1", 1);
  CHECK (resolve ("alias/vol-keys", NULL, region, &id4) == 0
             && strcmp (region, "ap-south-1") == 0
             && strcmp (id4, "alias/vol-keys") == 0,
         "alias with AWS_DEFAULT_REGION");
  setenv ("AWS_REGION", "ca-central-1", 1);
  CHECK (resolve ("1234abcd-12ab-34cd-56ef-1234567890ab", NULL, region, &id5)
                 == 0
             && strcmp (region, "ca-central-1") == 0,
         "AWS_REGION before AWS_DEFAULT_REGION");
  CHECK (resolve ("alias/x", "sa-east-1", region, &id6) == 0
             && strcmp (region, "sa-east-1") == 0,
         "kms-region before the environment");
  CHECK (resolve ("arn:aws:kms:us-east-2:111122223333:alias/vol", NULL, region,
                  &id7)
                 == 0
             && strcmp (region, "us-east-2") == 0,
         "alias ARN: its region");
  CHECK (cv_kms_ref_parse ("arn:aws:kms:us-east-2:111122223333:alias/vol", &r)
                 == 0
             && r.alias,
         "alias ARN is an alias");
  unsetenv ("AWS_REGION");
  unsetenv ("AWS_DEFAULT_REGION");

  static const char *const bad[] = {
    "",
    "arn:aws:kms:us-east-1:1111:key/abc",          /* short account */
    "arn:aws:s3:us-east-1:111122223333:key/abc",   /* not kms */
    "arn:aws:kms:us-east-1:111122223333:user/abc", /* not key or alias */
    "arn:aws:kms:us-east-1:111122223333:key/alias/x",
    "alias/",
    "key with spaces",
    "arn:aws:kms:US-EAST-1:111122223333:key/abc", /* region case */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    harness_log_clear ();
    CHECK (cv_kms_ref_parse (bad[i], &r) == -EINVAL, "refused: \"%s\"", bad[i]);
    CHECK (strstr (harness_logged (), "kms:"), "refusal logged for \"%s\"",
           bad[i]);
  }
  struct cv_creds c = { .kms_region = "us-east-1\r\nX: y" };
  CHECK (cv_kms_ref_parse ("alias/x", &r) == 0
             && cv_kms_ref_region (&r, &c, "alias/x", region, sizeof region)
                    == -EINVAL,
         "a region with control characters is refused");
  harness_log_clear ();
}

static void
check_endpoints (void)
{
  struct {
    const char *override, *region, *url, *host;
  } ok[] = {
    { NULL, "us-east-1", "https://kms.us-east-1.amazonaws.com/",
      "kms.us-east-1.amazonaws.com" },
    { NULL, "cn-north-1", "https://kms.cn-north-1.amazonaws.com.cn/",
      "kms.cn-north-1.amazonaws.com.cn" },
    { "https://127.0.0.1:8443", "us-east-1", "https://127.0.0.1:8443/",
      "127.0.0.1:8443" },
    { "https://KMS-FIPS.us-east-1.amazonaws.com/", "us-east-1",
      "https://kms-fips.us-east-1.amazonaws.com/",
      "kms-fips.us-east-1.amazonaws.com" },
    { "https://vpce-1.kms.us-east-1.vpce.amazonaws.com:443", "us-east-1",
      "https://vpce-1.kms.us-east-1.vpce.amazonaws.com/",
      "vpce-1.kms.us-east-1.vpce.amazonaws.com" },
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    CLEANUP_FREE char *url = NULL, *host = NULL;
    int r = cv_kms_endpoint (ok[i].override, ok[i].region, &url, &host);
    CHECK (r == 0 && strcmp (url, ok[i].url) == 0
               && strcmp (host, ok[i].host) == 0,
           "endpoint %s: %d %s %s", ok[i].override ? ok[i].override : "-", r,
           url ? url : "", host ? host : "");
  }
  static const char *const bad[] = {
    "http://127.0.0.1:8080", "127.0.0.1:8443",    "https://host/path",
    "https://user:pw@host/", "https://host/?q=1", "ftp://host/",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *url = NULL, *host = NULL;
    harness_log_clear ();
    CHECK (cv_kms_endpoint (bad[i], "us-east-1", &url, &host) == -EINVAL,
           "endpoint refused: %s", bad[i]);
    CHECK (strstr (harness_logged (), "endpoint"), "refusal logged for %s",
           bad[i]);
  }
  char *url = NULL, *host = NULL;
  CHECK (cv_kms_endpoint (NULL, "us-east-1/x", &url, &host) == -EINVAL,
         "a region that is not a name makes no endpoint");
  harness_log_clear ();
}

int
main (void)
{
  harness_init ();
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  check_parse ();
  check_chain ();
  check_refs ();
  check_endpoints ();
  char path[512];
  snprintf (path, sizeof path, "%s/credentials", dir);
  unlink (path);
  rmdir (dir);
  return harness_done ("test-keys-kms-creds");
}

/* The AWS shared config and credentials files as the AWS CLI reads them:
 * profiles in both files, sso-session and services sections, sub-sections,
 * comments, CRLF, which file wins, malformed lines skipped without their
 * text in the log, and the files found through AWS_CONFIG_FILE and
 * AWS_SHARED_CREDENTIALS_FILE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "harness.h"
#include "keys/aws.h"

static char dir[] = "/tmp/cv-aws-config-XXXXXX";

/* Parse config and credentials texts (NUL-terminated, either NULL). */
static struct cv_aws_config *
parse (const char *config, const char *creds)
{
  struct cv_aws_config *c = NULL;
  int r = cv_aws_config_parse (config, config ? strlen (config) : 0, "/etc/cfg",
                               creds, creds ? strlen (creds) : 0, "/etc/creds",
                               &c);

  CHECK (r == 0 && c, "parse: %d", r);
  return c;
}

/* s equals want (both may be NULL). */
static bool
same (const char *s, const char *want)
{
  return s == want || (s && want && strcmp (s, want) == 0);
}

#define GET(c, p, k, want)                                                     \
  do {                                                                         \
    const char *got_ = cv_aws_profile_get (c, p, k);                           \
    CHECK (same (got_, want), "[%s] %s: got %s, want %s", p, k,                \
           got_ ? got_ : "(null)", (want) ? (const char *) (want) : "(null)"); \
  } while (0)

static void
check_profiles (void)
{
  struct cv_aws_config *c
      = parse ("# a comment\n"
               "; another\n"
               "[default]\n"
               "region = us-east-1\n"
               "Output=json\n"
               "\n"
               "[profile dev]\n"
               "   source_profile   =   default   \n"
               "region: eu-west-1\n"
               "role_arn = arn:aws:iam::111122223333:role/r # not a comment\n"
               "[profile \"spaced name\"]\n"
               "region = ap-south-1\n"
               "[profile  tabbed\t]\n"
               "region = sa-east-1\n"
               "[plain]\n"
               "region = us-west-1\n"
               "[profilex]\n"
               "region = us-west-2\n"
               "[profile a b]\n"
               "region = us-west-2\n",
               "[default]\n"
               "aws_access_key_id = AKIDDEFAULT\n"
               "aws_secret_access_key = s3cr3t\n"
               "region = ca-central-1\n"
               "[plain]\n"
               "aws_access_key_id=AKIDPLAIN\n"
               "[profile dev]\n"
               "aws_access_key_id = AKIDODD\n");

  GET (c, "default", "region", "ca-central-1"); /* the credentials file wins */
  CHECK (same (cv_aws_profile_where (c, "default", "region"),
               "the AWS credentials file /etc/creds"),
         "where: %s", cv_aws_profile_where (c, "default", "region"));
  CHECK (same (cv_aws_profile_where (c, "default", "output"),
               "the AWS config file /etc/cfg"),
         "where: %s", cv_aws_profile_where (c, "default", "output"));
  CHECK (!cv_aws_profile_where (c, "default", "nothing"), "where of unset");
  GET (c, "default", "output", "json"); /* keys are lower case */
  GET (c, "default", "aws_secret_access_key", "s3cr3t");
  GET (c, "dev", "region", "eu-west-1"); /* ':' separates too */
  GET (c, "dev", "role_arn",
       "arn:aws:iam::111122223333:role/r # not a comment");
  GET (c, "dev", "source_profile", "default");
  GET (c, "dev", "aws_access_key_id", NULL); /* [profile dev] in credentials */
  GET (c, "profile dev", "aws_access_key_id", "AKIDODD");
  GET (c, "spaced name", "region", "ap-south-1");
  GET (c, "tabbed", "region", "sa-east-1");
  /* [plain] is a profile in the credentials file only. */
  GET (c, "plain", "region", NULL);
  GET (c, "plain", "aws_access_key_id", "AKIDPLAIN");
  CHECK (cv_aws_profile_exists (c, "plain"), "[plain] of the credentials file");
  CHECK (!cv_aws_profile_exists (c, "profilex"), "[profilex] is no profile");
  CHECK (!cv_aws_profile_exists (c, "x"), "no profile x");
  CHECK (!cv_aws_profile_exists (c, "a b") && !cv_aws_profile_exists (c, "a"),
         "[profile a b] is no profile (three words)");
  CHECK (cv_aws_profile_exists (c, "dev")
             && cv_aws_profile_exists (c, "default"),
         "dev and default exist");
  CHECK (same (cv_aws_config_path (c), "/etc/cfg")
             && same (cv_aws_credentials_path (c), "/etc/creds"),
         "paths");
  cv_aws_config_free (c);

  c = parse ("[profile default]\nregion = us-east-2\n", NULL);
  GET (c, "default", "region", "us-east-2");
  CHECK (same (cv_aws_credentials_path (c), "/etc/creds"), "path without text");
  cv_aws_config_free (c);

  /* [NAME] in the config file is a profile only for default. */
  c = parse ("[dev]\nregion = us-east-2\n", NULL);
  CHECK (!cv_aws_profile_exists (c, "dev"), "[dev] in the config file");
  cv_aws_config_free (c);
}

static void
check_sections (void)
{
  struct cv_aws_config *c
      = parse ("[profile p]\r\n"
               "sso_session = corp\r\n"
               "services = local\r\n"
               "[sso-session corp]\r\n"
               "sso_start_url = https://corp.awsapps.com/start\r\n"
               "sso_region = eu-central-1\r\n"
               "[services local]\r\n"
               "kms =\r\n"
               "  endpoint_url = https://127.0.0.1:8443\r\n"
               "\r\n"
               "  # a comment inside\r\n"
               "  Other_Key = v\r\n"
               "sts =\r\n"
               "\tendpoint_url = https://127.0.0.1:9443\r\n"
               "endpoint_url = https://global\r\n"
               "[services 'quoted']\r"
               "kms =\r"
               "  endpoint_url = https://q\r",
               NULL);

  GET (c, "p", "sso_session", "corp");
  CHECK (same (cv_aws_section_get (c, "sso-session", "corp", "sso_region"),
               "eu-central-1"),
         "sso-session section");
  CHECK (!cv_aws_section_get (c, "sso-session", "other", "sso_region"),
         "another sso-session");
  CHECK (same (cv_aws_subsection_get (c, "services", "local", "kms",
                                      "endpoint_url"),
               "https://127.0.0.1:8443"),
         "services kms endpoint_url");
  CHECK (
      same (cv_aws_subsection_get (c, "services", "local", "kms", "Other_Key"),
            "v"),
      "sub-section keys keep their case, blank and comment lines between");
  CHECK (same (cv_aws_subsection_get (c, "services", "local", "sts",
                                      "endpoint_url"),
               "https://127.0.0.1:9443"),
         "services sts endpoint_url");
  CHECK (!cv_aws_section_get (c, "services", "local", "kms"),
         "a sub-section is not a value");
  CHECK (same (cv_aws_section_get (c, "services", "local", "endpoint_url"),
               "https://global"),
         "a key after a sub-section ends it");
  CHECK (!cv_aws_subsection_get (c, "services", "local", "sso", "endpoint_url"),
         "no sso sub-section");
  CHECK (same (cv_aws_subsection_get (c, "services", "quoted", "kms",
                                      "endpoint_url"),
               "https://q"),
         "quoted name, CR line ends");
  CHECK (!cv_aws_subsection_get (c, "profile", "p", "kms", "endpoint_url"),
         "an unknown kind of section has nothing");
  cv_aws_config_free (c);
}

static void
check_malformed (void)
{
  struct cv_aws_config *c;

  cv_log_set_debug (true);
  harness_log_clear ();
  c = parse ("orphan = SECRETORPHAN\n"
             "[default]\n"
             "no delimiter SECRETLINE\n"
             "= SECRETNOKEY\n"
             "region = us-east-1\n"
             "multi = first\n"
             "  SECRETCONT\n"
             "  more\n"
             "[profile x\n"
             "region = SECRETBROKEN\n"
             "[]\n"
             "region = eu-west-1\n"
             "[profile y]\n"
             "kms =\n"
             "  not a pair SECRETSUB\n"
             "  = SECRETSUBNOKEY\n"
             "  endpoint_url = https://y\n"
             "region = eu-west-2\n"
             "region = eu-west-3\n"
             "[profile y]\n"
             "output = text\n"
             "[other]\n"
             "key = in an ignored section\n",
             NULL);
  GET (c, "default", "region", "us-east-1");
  GET (c, "default", "multi", NULL);
  GET (c, "x", "region", NULL);
  CHECK (!cv_aws_profile_exists (c, "x"), "a broken header is no profile");
  GET (c, "y", "region", "eu-west-3");
  GET (c, "y", "output", "text");
  GET (c, "y", "kms", NULL);
  const char *log = harness_logged ();
  CHECK (!strstr (log, "SECRET"), "no text of a line is logged: %s", log);
  static const char *const msgs[] = {
    "the AWS config file /etc/cfg line 1: a key outside any section",
    "line 3: not \"key = value\"",
    "line 4: no key before '=' or ':'",
    "line 7: a value continued on another line is not a setting",
    "line 9: a section header without a name",
    "line 10: a key outside any section",
    "line 11: a section header without a name",
    "line 15: no '=' in a sub-section line",
    "line 16: no key before '='",
  };
  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
    CHECK (strstr (log, msgs[i]), "logged: %s", msgs[i]);
  CHECK (!strstr (log, "line 8:"), "one message per continued value");
  CHECK (!strstr (log, "line 23:"), "keys of ignored sections are no error");
  cv_aws_config_free (c);
  cv_log_set_debug (false);
  harness_log_clear ();

  c = parse ("", "");
  CHECK (!cv_aws_profile_exists (c, "default"), "empty files");
  cv_aws_config_free (c);
  static const char nul[] = "[default]\nregion = us-east-1  \0x\nb = 1\n";
  cv_log_set_debug (true);
  CHECK (cv_aws_config_parse (nul, sizeof nul - 1, "/cfg", NULL, 0, "", &c)
             == 0,
         "a NUL");
  GET (c, "default", "region", NULL);
  GET (c, "default", "b", "1");
  CHECK (strstr (harness_logged (), "/cfg line 2: a NUL byte; line skipped"),
         "logged: %s", harness_logged ());
  cv_log_set_debug (false);
  harness_log_clear ();
  cv_aws_config_free (c);
  c = parse (NULL, NULL);
  CHECK (!cv_aws_profile_get (c, "default", "region"), "no files");
  cv_aws_config_free (c);
}

/* Write text to dir/name; returns the path (static buffer). */
static const char *
write_file (const char *name, const char *text)
{
  static char path[4][256];
  static int n;
  char *p = path[n++ % 4];
  FILE *f;

  snprintf (p, 256, "%s/%s", dir, name);
  f = fopen (p, "w");
  if (f) {
    fputs (text, f);
    fclose (f);
  }
  return p;
}

static void
check_load (void)
{
  struct cv_aws_config *c = NULL;
  char home[300], big[300];

  setenv ("AWS_CONFIG_FILE", write_file ("config", "[default]\nregion = r1\n"),
          1);
  setenv ("AWS_SHARED_CREDENTIALS_FILE",
          write_file ("credentials", "[default]\naws_access_key_id = K\n"), 1);
  CHECK (cv_aws_config_load (&c) == 0, "load");
  if (c) {
    GET (c, "default", "region", "r1");
    GET (c, "default", "aws_access_key_id", "K");
    CHECK (strstr (cv_aws_config_path (c), "/config"), "config path");
    cv_aws_config_free (c);
    c = NULL;
  }

  /* ~/ is the home directory; missing files and /dev/null are empty. */
  snprintf (home, sizeof home, "%s", dir);
  setenv ("HOME", home, 1);
  setenv ("AWS_CONFIG_FILE", "~/config", 1);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
  CHECK (cv_aws_config_load (&c) == 0, "load ~/");
  if (c) {
    GET (c, "default", "region", "r1");
    GET (c, "default", "aws_access_key_id", NULL);
    cv_aws_config_free (c);
    c = NULL;
  }
  unsetenv ("AWS_CONFIG_FILE");
  unsetenv ("AWS_SHARED_CREDENTIALS_FILE");
  CHECK (cv_aws_config_load (&c) == 0, "no ~/.aws at all");
  if (c) {
    CHECK (!cv_aws_profile_exists (c, "default"), "nothing");
    snprintf (big, sizeof big, "%s/.aws/config", dir);
    CHECK (same (cv_aws_config_path (c), big), "default path %s",
           cv_aws_config_path (c));
    cv_aws_config_free (c);
    c = NULL;
  }

  /* A directory, an oversized file, an unreadable one. */
  setenv ("AWS_CONFIG_FILE", dir, 1);
  harness_log_clear ();
  CHECK (cv_aws_config_load (&c) == -EINVAL, "a directory is refused");
  CHECK (strstr (harness_logged (), "is not a regular file of at most 1048576 "
                                    "bytes"),
         "logged: %s", harness_logged ());
  snprintf (big, sizeof big, "%s/big", dir);
  CHECK (truncate (write_file ("big", ""), (1 << 20) + 1) == 0, "truncate");
  setenv ("AWS_CONFIG_FILE", big, 1);
  harness_log_clear ();
  CHECK (cv_aws_config_load (&c) == -EINVAL, "over 1 MiB is refused");
  CHECK (strstr (harness_logged (), "AWS config file")
             && strstr (harness_logged (), "/big is not a regular file"),
         "logged: %s", harness_logged ());
  unsetenv ("AWS_CONFIG_FILE");
  setenv ("AWS_SHARED_CREDENTIALS_FILE", write_file ("locked", "[default]\n"),
          1);
  snprintf (big, sizeof big, "%s/locked", dir);
  chmod (big, 0);
  if (access (big, R_OK) != 0) { /* not root */
    harness_log_clear ();
    CHECK (cv_aws_config_load (&c) == -EINVAL, "unreadable is refused");
    CHECK (strstr (harness_logged (), "cannot read AWS shared credentials "
                                      "file")
               && strstr (harness_logged (), "Permission denied"),
           "logged: %s", harness_logged ());
  }
  unsetenv ("AWS_SHARED_CREDENTIALS_FILE");
  harness_log_clear ();
}

int
main (void)
{
  harness_init ();
  harness_mkdtemp (dir);
  check_profiles ();
  check_sections ();
  check_malformed ();
  check_load ();
  harness_rm_rf (dir);
  return harness_done ("test-keys-aws-config");
}

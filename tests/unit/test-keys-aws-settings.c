/* The process's AWS settings: the profile (AWS_PROFILE, AWS_DEFAULT_PROFILE),
 * settings from the environment over the profile, booleans, the default
 * region, service endpoints (options, AWS_ENDPOINT_URL_*, services
 * sections, endpoint_url, FIPS and dual-stack, China) and the retry mode,
 * with every refusal's message. Instance metadata is disabled but where a
 * closed loopback port stands for it: nothing here leaves the machine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "harness.h"
#include "keys/aws.h"

static char dir[] = "/tmp/cv-aws-settings-XXXXXX";
static char config_path[300];

static const char *const vars[] = {
  "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_KMS",
  "AWS_ENDPOINT_URL_SSO",
  "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
  "AWS_USE_FIPS_ENDPOINT",
  "AWS_USE_DUALSTACK_ENDPOINT",
  "AWS_RETRY_MODE",
  "AWS_MAX_ATTEMPTS",
};

/* A fresh environment and a config file with text; ctx loaded from them. */
static int
load (const char *text, struct cv_aws_ctx *ctx)
{
  FILE *f = fopen (config_path, "w");

  if (f) {
    fputs (text, f);
    fclose (f);
  }
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv (vars[i]);
  harness_log_clear ();
  return cv_aws_ctx_load (ctx);
}

/* The log holds want (and we clear it). */
#define LOGGED(want)                                                           \
  do {                                                                         \
    CHECK (strstr (harness_logged (), want), "logged \"%s\", got: %s", want,   \
           harness_logged ());                                                 \
    harness_log_clear ();                                                      \
  } while (0)

static const char profiles[] = "[default]\n"
                               "region = eu-west-1\n"
                               "output =\n"
                               "use_fips_endpoint = yes\n"
                               "[profile dev]\n"
                               "region = eu-central-1\n"
                               "retry_mode = sometimes\n"
                               "max_attempts = 0\n"
                               "[profile emea]\n"
                               "region = eu-north-1 # comment\n";

static void
check_profile (void)
{
  struct cv_aws_ctx ctx;
  bool b;

  CHECK (load (profiles, &ctx) == 0 && !ctx.profile_named
             && strcmp (ctx.profile, "default") == 0,
         "the default profile");
  CHECK (strcmp (cv_aws_setting (&ctx, "AWS_REGION", "region"), "eu-west-1")
             == 0,
         "the profile's region");
  setenv ("AWS_REGION", "", 1);
  CHECK (strcmp (cv_aws_setting (&ctx, "AWS_REGION", "region"), "eu-west-1")
             == 0,
         "an empty variable is unset");
  setenv ("AWS_REGION", "us-east-2", 1);
  CHECK (strcmp (cv_aws_setting (&ctx, "AWS_REGION", "region"), "us-east-2")
             == 0,
         "the environment over the profile");
  CHECK (!cv_aws_setting (&ctx, NULL, "nothing"), "unset");
  CHECK (!cv_aws_setting (&ctx, NULL, "output"), "\"output =\" is unset");
  CHECK (cv_aws_setting_bool (&ctx, "AWS_USE_FIPS_ENDPOINT",
                              "use_fips_endpoint", false, &b)
             == -EINVAL,
         "yes is not a boolean");
  LOGGED ("error: use_fips_endpoint = yes in profile default of the AWS "
          "config file ");
  harness_log_clear ();
  setenv ("AWS_USE_FIPS_ENDPOINT", "TRUE", 1);
  CHECK (cv_aws_setting_bool (&ctx, "AWS_USE_FIPS_ENDPOINT",
                              "use_fips_endpoint", false, &b)
                 == 0
             && b,
         "TRUE");
  setenv ("AWS_USE_FIPS_ENDPOINT", "False", 1);
  CHECK (cv_aws_setting_bool (&ctx, "AWS_USE_FIPS_ENDPOINT",
                              "use_fips_endpoint", true, &b)
                 == 0
             && !b,
         "False");
  setenv ("AWS_USE_FIPS_ENDPOINT", "1", 1);
  CHECK (cv_aws_setting_bool (&ctx, "AWS_USE_FIPS_ENDPOINT",
                              "use_fips_endpoint", false, &b)
             == -EINVAL,
         "1 is not a boolean");
  LOGGED ("error: AWS_USE_FIPS_ENDPOINT=1 is not true or false");
  CHECK (cv_aws_setting_bool (&ctx, "AWS_X", "x", true, &b) == 0 && b,
         "the default when unset");
  cv_aws_ctx_free (&ctx);

  setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
  CHECK (load (profiles, &ctx) == 0, "load");
  setenv ("AWS_DEFAULT_PROFILE", "dev", 1);
  cv_aws_ctx_free (&ctx);
  CHECK (cv_aws_ctx_load (&ctx) == 0 && ctx.profile_named
             && strcmp (ctx.profile, "dev") == 0,
         "AWS_DEFAULT_PROFILE");
  cv_aws_ctx_free (&ctx);
  setenv ("AWS_PROFILE", "emea", 1);
  CHECK (cv_aws_ctx_load (&ctx) == 0 && strcmp (ctx.profile, "emea") == 0,
         "AWS_PROFILE over AWS_DEFAULT_PROFILE");
  cv_aws_ctx_free (&ctx);
  setenv ("AWS_PROFILE", "nope", 1);
  CHECK (cv_aws_ctx_load (&ctx) == -EINVAL && !ctx.cfg,
         "a named profile must exist");
  LOGGED ("error: AWS_PROFILE is nope, but neither the AWS config file ");
  unsetenv ("AWS_PROFILE");
  setenv ("AWS_DEFAULT_PROFILE", "default", 1);
  CHECK (load ("", &ctx) == 0, "load");
  cv_aws_ctx_free (&ctx);
  setenv ("AWS_DEFAULT_PROFILE", "default", 1);
  CHECK (cv_aws_ctx_load (&ctx) == -EINVAL,
         "a profile named default must exist too");
  LOGGED ("error: AWS_DEFAULT_PROFILE is default, but neither");

  /* An unreadable config file fails the load. */
  setenv ("AWS_CONFIG_FILE", dir, 1);
  unsetenv ("AWS_DEFAULT_PROFILE");
  CHECK (cv_aws_ctx_load (&ctx) == -EINVAL, "a directory as config file");
  LOGGED ("is not a regular file");
  setenv ("AWS_CONFIG_FILE", config_path, 1);
}

static void
check_region (void)
{
  struct cv_aws_ctx ctx;
  char region[32];
  const char *from = NULL;

  CHECK (load (profiles, &ctx) == 0, "load");
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == 0
             && strcmp (region, "eu-west-1") == 0
             && strstr (from, "profile default of the AWS config file "),
         "the profile's region: %s from %s", region, from);
  setenv ("AWS_DEFAULT_REGION", "us-west-1", 1);
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == 0
             && strcmp (region, "us-west-1") == 0
             && strcmp (from, "AWS_DEFAULT_REGION") == 0,
         "AWS_DEFAULT_REGION over the profile");
  setenv ("AWS_REGION", "us-west-2", 1);
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == 0
             && strcmp (region, "us-west-2") == 0
             && strcmp (from, "AWS_REGION") == 0,
         "AWS_REGION first");
  setenv ("AWS_REGION", "us-west-2\nX", 1);
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == -EINVAL,
         "not a region");
  LOGGED ("error: the AWS region \"us-west-2\nX\" (from AWS_REGION) is not a "
          "region name");
  setenv ("AWS_REGION", "us-west-2", 1);
  CHECK (cv_aws_default_region (&ctx, region, 5, &from) == -EINVAL,
         "no room: refused, not cut");
  LOGGED ("is not a region name");
  cv_aws_ctx_free (&ctx);

  setenv ("AWS_PROFILE", "emea", 1);
  CHECK (cv_aws_ctx_load (&ctx) == 0, "emea");
  unsetenv ("AWS_REGION");
  unsetenv ("AWS_DEFAULT_REGION");
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == -EINVAL,
         "no comments after values");
  LOGGED ("error: the AWS region \"eu-north-1 # comment\" (from profile emea "
          "of the AWS config file ");
  cv_aws_ctx_free (&ctx);

  CHECK (load ("", &ctx) == 0, "empty");
  harness_log_clear ();
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == -ENOENT,
         "no region anywhere, no instance metadata");
  CHECK (!harness_logged ()[0], "-ENOENT is not logged: %s", harness_logged ());
  /* Instance metadata asked, and nothing answers: still -ENOENT. */
  unsetenv ("AWS_EC2_METADATA_DISABLED");
  setenv ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == -ENOENT,
         "no instance metadata: no region");
  unsetenv ("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  setenv ("AWS_EC2_METADATA_DISABLED", "maybe", 1);
  CHECK (cv_aws_default_region (&ctx, region, sizeof region, &from) == -EINVAL,
         "AWS_EC2_METADATA_DISABLED=maybe");
  LOGGED ("error: AWS_EC2_METADATA_DISABLED=maybe is not true or false");
  setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
  cv_aws_ctx_free (&ctx);
}

/* cv_aws_endpoint of service in region: 0 with url, host and from as
 * given, or the error. */
static void
endpoint (const struct cv_aws_ctx *ctx, const char *service, const char *prefix,
          const char *override, const char *region, int want_r,
          const char *want_url, const char *want_host, const char *want_from,
          int line)
{
  CLEANUP_FREE char *url = NULL, *host = NULL;
  const char *from = NULL;
  int r = cv_aws_endpoint (ctx, service, prefix, override, region, &url, &host,
                           &from);

  CHECK (r == want_r, "line %d: %d, want %d", line, r, want_r);
  if (r == 0 && want_r == 0) {
    CHECK (strcmp (url, want_url) == 0 && strcmp (host, want_host) == 0,
           "line %d: %s %s", line, url, host);
    CHECK (strstr (from, want_from), "line %d: from %s", line, from);
  }
}
#define EP(ctx, svc, prefix, ovr, region, r, url, host, from)                  \
  endpoint (ctx, svc, prefix, ovr, region, r, url, host, from, __LINE__)

static void
check_endpoint (void)
{
  struct cv_aws_ctx ctx;

  CHECK (load ("[default]\n"
               "services = local\n"
               "[profile plain]\n"
               "endpoint_url = https://plain.example:444\n"
               "[profile ign]\n"
               "services = local\n"
               "ignore_configured_endpoint_urls = true\n"
               "use_fips_endpoint = true\n"
               "use_dualstack_endpoint = true\n"
               "[services local]\n"
               "kms =\n"
               "  endpoint_url = https://127.0.0.1:8443\n"
               "sts =\n"
               "  endpoint_url = http://127.0.0.1:8080\n",
               &ctx)
             == 0,
         "load");
  /* The option first, whatever else is set. */
  setenv ("AWS_ENDPOINT_URL_KMS", "https://env-kms", 1);
  EP (&ctx, "KMS", "kms", "https://KMS-FIPS.us-east-1.amazonaws.com/",
      "us-east-1", 0, "https://kms-fips.us-east-1.amazonaws.com/",
      "kms-fips.us-east-1.amazonaws.com", "the endpoint option");
  EP (&ctx, "KMS", "kms", "https://vpce-1.kms.us-east-1.vpce.amazonaws.com:443",
      "us-east-1", 0, "https://vpce-1.kms.us-east-1.vpce.amazonaws.com/",
      "vpce-1.kms.us-east-1.vpce.amazonaws.com", "option");
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0, "https://env-kms/", "env-kms",
      "AWS_ENDPOINT_URL_KMS");
  setenv ("AWS_ENDPOINT_URL", "https://env-all:8000", 1);
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0, "https://env-kms/", "env-kms",
      "AWS_ENDPOINT_URL_KMS");
  EP (&ctx, "SSO", "portal.sso", NULL, "us-east-1", 0, "https://env-all:8000/",
      "env-all:8000", "AWS_ENDPOINT_URL");
  unsetenv ("AWS_ENDPOINT_URL_KMS");
  unsetenv ("AWS_ENDPOINT_URL");
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0, "https://127.0.0.1:8443/",
      "127.0.0.1:8443", "[services local] of ");
  EP (&ctx, "SSO", "portal.sso", NULL, "eu-west-1", 0,
      "https://portal.sso.eu-west-1.amazonaws.com/",
      "portal.sso.eu-west-1.amazonaws.com", "the AWS endpoint of the region");
  EP (&ctx, "STS", "sts", NULL, "us-east-1", -EINVAL, NULL, NULL, NULL);
  LOGGED ("error: STS endpoint \"http://127.0.0.1:8080\" (from [services "
          "local] of ");
  setenv ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0,
      "https://kms.us-east-1.amazonaws.com/", "kms.us-east-1.amazonaws.com",
      "the AWS endpoint of the region");
  EP (&ctx, "KMS", "kms", "https://127.0.0.1:1", "us-east-1", 0,
      "https://127.0.0.1:1/", "127.0.0.1:1", "the endpoint option");
  setenv ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "no", 1);
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", -EINVAL, NULL, NULL, NULL);
  LOGGED ("error: AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=no is not true or false");
  unsetenv ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");

  /* The AWS endpoints: China, FIPS, dual-stack. */
  EP (&ctx, "KMS", "kms", NULL, "cn-north-1", 0, "https://127.0.0.1:8443/",
      "127.0.0.1:8443", "services");
  cv_aws_ctx_free (&ctx);
  setenv ("AWS_PROFILE", "ign", 1);
  CHECK (cv_aws_ctx_load (&ctx) == 0, "ign");
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0,
      "https://kms-fips.us-east-1.api.aws/", "kms-fips.us-east-1.api.aws",
      "FIPS or dual-stack");
  setenv ("AWS_USE_FIPS_ENDPOINT", "false", 1);
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0,
      "https://kms.us-east-1.api.aws/", "kms.us-east-1.api.aws",
      "FIPS or dual-stack");
  EP (&ctx, "KMS", "kms", NULL, "cn-north-1", 0,
      "https://kms.cn-north-1.api.amazonwebservices.com.cn/",
      "kms.cn-north-1.api.amazonwebservices.com.cn", "dual-stack");
  setenv ("AWS_USE_FIPS_ENDPOINT", "true", 1);
  setenv ("AWS_USE_DUALSTACK_ENDPOINT", "false", 1);
  EP (&ctx, "STS", "sts", NULL, "us-gov-west-1", 0,
      "https://sts-fips.us-gov-west-1.amazonaws.com/",
      "sts-fips.us-gov-west-1.amazonaws.com", "FIPS");
  setenv ("AWS_USE_FIPS_ENDPOINT", "false", 1);
  EP (&ctx, "KMS", "kms", NULL, "cn-north-1", 0,
      "https://kms.cn-north-1.amazonaws.com.cn/",
      "kms.cn-north-1.amazonaws.com.cn", "the AWS endpoint of the region");
  EP (&ctx, "KMS", "kms", NULL, "us-east-1/x", -EINVAL, NULL, NULL, NULL);
  LOGGED ("error: KMS: \"us-east-1/x\" is not an AWS region name");
  setenv ("AWS_USE_DUALSTACK_ENDPOINT", "on", 1);
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", -EINVAL, NULL, NULL, NULL);
  LOGGED ("error: AWS_USE_DUALSTACK_ENDPOINT=on is not true or false");
  unsetenv ("AWS_USE_DUALSTACK_ENDPOINT");
  setenv ("AWS_USE_FIPS_ENDPOINT", "on", 1);
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", -EINVAL, NULL, NULL, NULL);
  LOGGED ("error: AWS_USE_FIPS_ENDPOINT=on is not true or false");
  unsetenv ("AWS_USE_FIPS_ENDPOINT");
  cv_aws_ctx_free (&ctx);

  setenv ("AWS_PROFILE", "plain", 1);
  CHECK (cv_aws_ctx_load (&ctx) == 0, "plain");
  EP (&ctx, "KMS", "kms", NULL, "us-east-1", 0, "https://plain.example:444/",
      "plain.example:444", "endpoint_url of profile plain in the AWS config");
  unsetenv ("AWS_PROFILE");
  cv_aws_ctx_free (&ctx);

  /* Without a ctx: the environment only. */
  EP (NULL, "KMS", "kms", NULL, "eu-west-3", 0,
      "https://kms.eu-west-3.amazonaws.com/", "kms.eu-west-3.amazonaws.com",
      "the AWS endpoint");

  static const struct {
    const char *url, *msg;
  } bad[] = {
    { "http://127.0.0.1:8080", "is not an https:// URL" },
    { "127.0.0.1:8443", "is not an https:// URL" },
    { "ftp://host/", "is not an https:// URL" },
    { "https://", "is not an https:// URL" },
    { "https://host/path", "must be https://HOST[:PORT] with no path" },
    { "https://user:pw@host/", "must be https://HOST[:PORT] with no path" },
    { "https://host/?q=1", "must be https://HOST[:PORT] with no path" },
    { "https://host/#f", "must be https://HOST[:PORT] with no path" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char msg[300];
    EP (NULL, "KMS", "kms", bad[i].url, "us-east-1", -EINVAL, NULL, NULL, NULL);
    snprintf (msg, sizeof msg,
              "error: KMS endpoint \"%s\" (from the endpoint option) %s",
              bad[i].url, bad[i].msg);
    LOGGED (msg);
  }
  setenv ("AWS_ENDPOINT_URL_KMS", "http://x", 1);
  EP (NULL, "KMS", "kms", NULL, "us-east-1", -EINVAL, NULL, NULL, NULL);
  LOGGED ("(from AWS_ENDPOINT_URL_KMS) is not an https:// URL");
  unsetenv ("AWS_ENDPOINT_URL_KMS");
}

static void
check_retry (void)
{
  struct cv_aws_ctx ctx;
  struct cv_aws_retry rt;

  CHECK (load (profiles, &ctx) == 0, "load");
  CHECK (cv_aws_retry_settings (&ctx, &rt) == 0
             && rt.mode == CV_AWS_RETRY_STANDARD && rt.max_attempts == 3,
         "standard, 3 attempts by default");
  setenv ("AWS_RETRY_MODE", "adaptive", 1);
  setenv ("AWS_MAX_ATTEMPTS", "20", 1);
  CHECK (cv_aws_retry_settings (&ctx, &rt) == 0
             && rt.mode == CV_AWS_RETRY_ADAPTIVE && rt.max_attempts == 20,
         "adaptive, 20");
  cv_log_set_debug (true);
  setenv ("AWS_RETRY_MODE", "legacy", 1);
  setenv ("AWS_MAX_ATTEMPTS", "1", 1);
  CHECK (cv_aws_retry_settings (&ctx, &rt) == 0
             && rt.mode == CV_AWS_RETRY_STANDARD && rt.max_attempts == 1,
         "legacy is standard");
  LOGGED ("debug: aws: retry mode legacy is taken as standard");
  cv_log_set_debug (false);
  setenv ("AWS_RETRY_MODE", "Adaptive", 1);
  CHECK (cv_aws_retry_settings (&ctx, &rt) == -EINVAL, "Adaptive");
  LOGGED ("error: AWS_RETRY_MODE=Adaptive is not a retry mode (standard, "
          "adaptive or legacy)");
  setenv ("AWS_RETRY_MODE", "standard", 1);
  static const char *const bad[]
      = { "0", "21", "3x", "", " ", "-1", "99999999999999999999" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char msg[200];
    setenv ("AWS_MAX_ATTEMPTS", bad[i], 1);
    if (!*bad[i]) { /* empty: unset, the profile's is default's: none */
      CHECK (cv_aws_retry_settings (&ctx, &rt) == 0 && rt.max_attempts == 3,
             "empty AWS_MAX_ATTEMPTS is unset");
      continue;
    }
    CHECK (cv_aws_retry_settings (&ctx, &rt) == -EINVAL, "max %s", bad[i]);
    snprintf (msg, sizeof msg,
              "error: AWS_MAX_ATTEMPTS=%s is not a number of attempts in 1..20",
              bad[i]);
    LOGGED (msg);
  }
  cv_aws_ctx_free (&ctx);
  setenv ("AWS_PROFILE", "dev", 1);
  CHECK (cv_aws_ctx_load (&ctx) == 0, "dev");
  unsetenv ("AWS_RETRY_MODE");
  unsetenv ("AWS_MAX_ATTEMPTS");
  CHECK (cv_aws_retry_settings (&ctx, &rt) == -EINVAL, "the profile's mode");
  LOGGED ("error: retry_mode = sometimes in profile dev of the AWS config "
          "file ");
  setenv ("AWS_RETRY_MODE", "adaptive", 1);
  CHECK (cv_aws_retry_settings (&ctx, &rt) == -EINVAL, "the profile's max");
  LOGGED ("error: max_attempts = 0 in profile dev of the AWS config file ");
  unsetenv ("AWS_RETRY_MODE");
  unsetenv ("AWS_PROFILE");
  cv_aws_ctx_free (&ctx);
}

int
main (void)
{
  harness_init ();
  harness_mkdtemp (dir);
  snprintf (config_path, sizeof config_path, "%s/config", dir);
  setenv ("AWS_CONFIG_FILE", config_path, 1);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
  setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
  check_profile ();
  check_region ();
  check_endpoint ();
  check_retry ();
  harness_rm_rf (dir);
  return harness_done ("test-keys-aws-settings");
}

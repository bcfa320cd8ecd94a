/* The process's AWS settings, as the SDKs resolve them: the profile and its
 * files, settings from the environment or the profile, the default region,
 * service endpoints (configured URLs, FIPS, dual-stack) and the retry mode.
 * doc/kms.md is the operator's side. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "keys/aws.h"

int
cv_aws_ctx_load (struct cv_aws_ctx *ctx)
{
  const char *var = "AWS_PROFILE", *p = getenv (var);
  int r;

  *ctx = (struct cv_aws_ctx){ 0 };
  if (!p || !*p)
    p = getenv (var = "AWS_DEFAULT_PROFILE");
  ctx->profile_named = p && *p;
  ctx->profile = ctx->profile_named ? p : "default";
  if ((r = cv_aws_config_load (&ctx->cfg)) < 0)
    return r;
  if (ctx->profile_named && !cv_aws_profile_exists (ctx->cfg, ctx->profile)) {
    cv_err ("%s is %s, but neither the AWS config file %s nor the "
            "credentials file %s has that profile; add [profile %s] to the "
            "config file or [%s] to the credentials file, or unset %s",
            var, ctx->profile, cv_aws_config_path (ctx->cfg),
            cv_aws_credentials_path (ctx->cfg), ctx->profile, ctx->profile,
            var);
    cv_aws_ctx_free (ctx);
    return -EINVAL;
  }
  return 0;
}

void
cv_aws_ctx_free (struct cv_aws_ctx *ctx)
{
  cv_aws_config_free (ctx->cfg);
  *ctx = (struct cv_aws_ctx){ 0 };
}

/* The profile's value of key, or NULL (no ctx, no files, no key, or
 * "key =" with nothing: unset, as an empty variable). */
static const char *
profile_value (const struct cv_aws_ctx *ctx, const char *key)
{
  const char *v;

  if (!key || !ctx || !ctx->cfg)
    return NULL;
  v = cv_aws_profile_get (ctx->cfg, ctx->profile, key);
  return v && *v ? v : NULL;
}

/* The environment's value of env, or NULL when unset or empty. */
static const char *
env_value (const char *env)
{
  const char *v = env ? getenv (env) : NULL;

  return v && *v ? v : NULL;
}

const char *
cv_aws_setting (const struct cv_aws_ctx *ctx, const char *env, const char *key)
{
  const char *v = env_value (env);

  return v ? v : profile_value (ctx, key);
}

/* Log that the setting env / key (as cv_aws_setting found it) is not what,
 * and return -EINVAL. */
static int
bad_setting (const struct cv_aws_ctx *ctx, const char *env, const char *key,
             const char *what)
{
  const char *v = env_value (env);

  if (v)
    cv_err ("%s=%.40s is not %s", env, v, what);
  else
    cv_err ("%s = %.40s in profile %s of %s is not %s", key,
            profile_value (ctx, key), ctx->profile,
            cv_aws_profile_where (ctx->cfg, ctx->profile, key), what);
  return -EINVAL;
}

int
cv_aws_setting_bool (const struct cv_aws_ctx *ctx, const char *env,
                     const char *key, bool def, bool *out)
{
  const char *v = cv_aws_setting (ctx, env, key);

  if (!v)
    *out = def;
  else if (strcasecmp (v, "true") == 0)
    *out = true;
  else if (strcasecmp (v, "false") == 0)
    *out = false;
  else
    return bad_setting (ctx, env, key, "true or false");
  return 0;
}

/* True if s is a plausible region name: [a-z0-9-], 1..31 bytes. */
static bool
region_ok (const char *s)
{
  size_t n = strspn (s, "abcdefghijklmnopqrstuvwxyz0123456789-");

  return n > 0 && n < 32 && s[n] == '\0';
}

/* *from is a static string or, for a profile, a thread-local one that the
 * thread's next call replaces. */
int
cv_aws_default_region (const struct cv_aws_ctx *ctx, char *region, size_t len,
                       const char **from)
{
  static __thread char profile_from[320];
  const char *v;
  bool off;
  int r;

  if ((v = env_value ("AWS_REGION")))
    *from = "AWS_REGION";
  else if ((v = env_value ("AWS_DEFAULT_REGION")))
    *from = "AWS_DEFAULT_REGION";
  else if ((v = profile_value (ctx, "region"))) {
    snprintf (profile_from, sizeof profile_from, "profile %s of %s",
              ctx->profile,
              cv_aws_profile_where (ctx->cfg, ctx->profile, "region"));
    *from = profile_from;
  } else {
    /* The SDKs read AWS_EC2_METADATA_DISABLED from the environment only. */
    if ((r = cv_aws_setting_bool (NULL, "AWS_EC2_METADATA_DISABLED", NULL,
                                  false, &off))
        < 0)
      return r;
    if (off)
      return -ENOENT;
    const char *ep = cv_aws_setting (ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                     "ec2_metadata_service_endpoint");
    const char *mode
        = cv_aws_setting (ctx, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                          "ec2_metadata_service_endpoint_mode");
    if (!ep)
      ep = mode && strcasecmp (mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                  : "http://169.254.169.254";
    if ((r = cv_aws_imds_region (ep, region, len)) < 0)
      return r == -ENOKEY ? -ENOENT : r;
    *from = "instance metadata";
    v = region;
  }
  if (!region_ok (v) || strlen (v) >= len) {
    cv_err ("the AWS region \"%.40s\" (from %s) is not a region name", v,
            *from);
    return -EINVAL;
  }
  if (v != region)
    strcpy (region, v);
  return 0;
}

/* Check a configured endpoint URL (from says where it came from) and make
 * *url ("https://host[:port]/") and *host (the Host header: host[:port],
 * no :443) from it. 0, -EINVAL (logged) or -ENOMEM. */
static int
configured_url (const char *service, const char *given, const char *from,
                char **url, char **host)
{
  CLEANUP_FREE char *u = NULL, *h = NULL;
  char *scheme = NULL, *hostname = NULL, *port = NULL, *path = NULL;
  char *query = NULL, *user = NULL, *frag = NULL;
  CURLU *cu = NULL;
  int r = 0;

  if (!(cu = curl_url ()))
    return -ENOMEM;
  if (strncasecmp (given, "https://", 8) != 0
      || curl_url_set (cu, CURLUPART_URL, given, 0) != CURLUE_OK
      || curl_url_get (cu, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
      || curl_url_get (cu, CURLUPART_HOST, &hostname, 0) != CURLUE_OK) {
    cv_err ("%s endpoint \"%.200s\" (from %s) is not an https:// URL (AWS "
            "endpoints are always TLS)",
            service, given, from);
    r = -EINVAL;
    goto out;
  }
  curl_url_get (cu, CURLUPART_PORT, &port, 0);
  curl_url_get (cu, CURLUPART_PATH, &path, 0);
  curl_url_get (cu, CURLUPART_QUERY, &query, 0);
  curl_url_get (cu, CURLUPART_USER, &user, 0);
  curl_url_get (cu, CURLUPART_FRAGMENT, &frag, 0);
  if ((path && strcmp (path, "/") != 0) || query || user || frag) {
    cv_err ("%s endpoint \"%.200s\" (from %s) must be https://HOST[:PORT] "
            "with no path, query or user name",
            service, given, from);
    r = -EINVAL;
    goto out;
  }
  for (char *c = hostname; *c; c++)
    *c = (char) tolower ((unsigned char) *c);
  bool p443 = !port || strcmp (port, "443") == 0;
  if (asprintf (&h, "%s%s%s", hostname, p443 ? "" : ":", p443 ? "" : port) < 0
      || asprintf (&u, "https://%s/", h) < 0) {
    r = -ENOMEM;
    goto out;
  }
  *url = STEAL (u);
  *host = STEAL (h);
out:
  curl_free (scheme);
  curl_free (hostname);
  curl_free (port);
  curl_free (path);
  curl_free (query);
  curl_free (user);
  curl_free (frag);
  curl_url_cleanup (cu);
  return r;
}

/* The endpoint URL configured for service (SDK id "KMS") outside the
 * options, with *from set (thread-local: the thread's next call replaces
 * it); NULL if none. */
static const char *
configured (const struct cv_aws_ctx *ctx, const char *service,
            const char **from)
{
  static __thread char env[96], where[400];
  char key[64];
  const char *v, *sect;
  size_t i;

  snprintf (env, sizeof env, "AWS_ENDPOINT_URL_%s", service);
  for (char *c = env; *c; c++)
    *c = *c == ' ' || *c == '-' ? '_' : (char) toupper ((unsigned char) *c);
  if ((v = env_value (env))) {
    *from = env;
    return v;
  }
  if ((v = env_value ("AWS_ENDPOINT_URL"))) {
    *from = "AWS_ENDPOINT_URL";
    return v;
  }
  for (i = 0; service[i] && i + 1 < sizeof key; i++)
    key[i] = service[i] == ' ' || service[i] == '-'
                 ? '_'
                 : (char) tolower ((unsigned char) service[i]);
  key[i] = '\0';
  if ((sect = profile_value (ctx, "services"))
      && (v = cv_aws_subsection_get (ctx->cfg, "services", sect, key,
                                     "endpoint_url"))) {
    snprintf (where, sizeof where, "[services %s] of %s (profile %s)", sect,
              cv_aws_config_path (ctx->cfg), ctx->profile);
    *from = where;
    return v;
  }
  if ((v = profile_value (ctx, "endpoint_url"))) {
    snprintf (where, sizeof where, "endpoint_url of profile %s in %s",
              ctx->profile,
              cv_aws_profile_where (ctx->cfg, ctx->profile, "endpoint_url"));
    *from = where;
    return v;
  }
  return NULL;
}

int
cv_aws_endpoint (const struct cv_aws_ctx *ctx, const char *service,
                 const char *prefix, const char *override, const char *region,
                 char **url, char **host, const char **from)
{
  CLEANUP_FREE char *u = NULL, *h = NULL;
  bool ignore, fips, dual;
  const char *given;
  int r;

  if (override) {
    *from = "the endpoint option";
    return configured_url (service, override, *from, url, host);
  }
  if ((r = cv_aws_setting_bool (ctx, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                                "ignore_configured_endpoint_urls", false,
                                &ignore))
      < 0)
    return r;
  if (!ignore && (given = configured (ctx, service, from)))
    return configured_url (service, given, *from, url, host);
  if ((r = cv_aws_setting_bool (ctx, "AWS_USE_FIPS_ENDPOINT",
                                "use_fips_endpoint", false, &fips))
          < 0
      || (r = cv_aws_setting_bool (ctx, "AWS_USE_DUALSTACK_ENDPOINT",
                                   "use_dualstack_endpoint", false, &dual))
             < 0)
    return r;
  if (!region_ok (region)) {
    cv_err ("%s: \"%.40s\" is not an AWS region name", service, region);
    return -EINVAL;
  }
  bool cn = strncmp (region, "cn-", 3) == 0;
  const char *dns = dual ? (cn ? "api.amazonwebservices.com.cn" : "api.aws")
                         : (cn ? "amazonaws.com.cn" : "amazonaws.com");
  if (asprintf (&h, "%s%s.%s.%s", prefix, fips ? "-fips" : "", region, dns) < 0
      || asprintf (&u, "https://%s/", h) < 0)
    return -ENOMEM;
  *from = fips || dual ? "the AWS endpoint of the region (FIPS or dual-stack "
                         "as configured)"
                       : "the AWS endpoint of the region";
  *url = STEAL (u);
  *host = STEAL (h);
  return 0;
}

int
cv_aws_retry_settings (const struct cv_aws_ctx *ctx, struct cv_aws_retry *out)
{
  const char *mode = cv_aws_setting (ctx, "AWS_RETRY_MODE", "retry_mode");
  const char *max = cv_aws_setting (ctx, "AWS_MAX_ATTEMPTS", "max_attempts");

  *out = (struct cv_aws_retry){ CV_AWS_RETRY_STANDARD, 3 };
  if (!mode || strcmp (mode, "standard") == 0)
    ;
  else if (strcmp (mode, "adaptive") == 0)
    out->mode = CV_AWS_RETRY_ADAPTIVE;
  else if (strcmp (mode, "legacy") == 0)
    cv_debug ("aws: retry mode legacy is taken as standard, as the SDKs now "
              "do");
  else
    return bad_setting (ctx, "AWS_RETRY_MODE", "retry_mode",
                        "a retry mode (standard, adaptive or legacy)");
  if (max) {
    char *end;
    errno = 0;
    long n = strtol (max, &end, 10);
    if (errno || end == max || *end || n < 1 || n > 20)
      return bad_setting (ctx, "AWS_MAX_ATTEMPTS", "max_attempts",
                          "a number of attempts in 1..20");
    out->max_attempts = (int) n;
  }
  return 0;
}

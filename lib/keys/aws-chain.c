/* The AWS SDKs' default credential chain, in their order: the environment,
 * web identity, the profile (assumed roles, SSO, static keys,
 * credential_process), the container endpoint, instance metadata. The
 * first source that is configured answers; one that is configured but
 * fails ends the walk with its error, as in the SDKs. The process keeps the
 * answer and resolves again ahead of its expiry, so a server that runs for
 * days keeps working key checks. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define REFRESH_AHEAD_S 900 /* as the SDKs' advisory refresh: 15 min */
#define EXPIRY_MARGIN_S 2   /* never use credentials closer to expiry */
#define PROFILE_DEPTH_MAX 8 /* source_profile links followed */
#define DURATION_MIN_S 900  /* AssumeRole DurationSeconds bounds */
#define DURATION_MAX_S 43200

/* --- what each source said ---------------------------------------------- */

/* Why each source gave nothing, for the one error at the end. */
struct report {
  char text[2048];
  size_t len;
  int n;
};

/* Add "N. source: why" to the report. */
static void
note (struct report *rp, const char *source, const char *why)
{
  int w = snprintf (rp->text + rp->len, sizeof rp->text - rp->len,
                    "%s%d. %s: %s", rp->n ? "; " : "", rp->n + 1, source, why);

  rp->n++;
  if (w > 0)
    rp->len += (size_t) w < sizeof rp->text - rp->len
                   ? (size_t) w
                   : sizeof rp->text - rp->len - 1;
}

/* The environment variable name, or NULL when unset or empty. */
static const char *
env (const char *name)
{
  const char *v = getenv (name);

  return v && *v ? v : NULL;
}

/* --- STS, for assumed roles and web identity ----------------------------- */

struct sts {
  struct cv_aws_sts s;
  char *url, *host;
  char region[32];
};

/* Free what sts_open made. */
static void
sts_free (struct sts *t)
{
  free (t->url);
  free (t->host);
}

/* Where STS calls go: the region of the settings (not instance metadata:
 * STS is asked before the instance is), else us-east-1. */
static int
sts_open (const struct cv_aws_ctx *ctx, struct sts *t)
{
  const char *region = cv_aws_setting (ctx, "AWS_REGION", "region");
  const char *from;
  int r;

  *t = (struct sts){ 0 };
  if (!region)
    region = cv_aws_setting (ctx, "AWS_DEFAULT_REGION", NULL);
  if (!region)
    region = "us-east-1";
  if (strlen (region) >= sizeof t->region) {
    cv_err ("aws: region \"%.40s\" is not an AWS region name", region);
    return -EINVAL;
  }
  strcpy (t->region, region);
  if ((r = cv_aws_endpoint (ctx, "STS", "sts", NULL, t->region, &t->url,
                            &t->host, &from))
          < 0
      || (r = cv_aws_retry_settings (ctx, &t->s.retry)) < 0) {
    sts_free (t);
    return r;
  }
  t->s.url = t->url;
  t->s.host = t->host;
  t->s.region = t->region;
  t->s.ca_bundle = cv_aws_setting (ctx, "AWS_CA_BUNDLE", "ca_bundle");
  return 0;
}

/* --- the sources ---------------------------------------------------------- */

/* The environment's key pair (and session token), or -ENOKEY with why. */
static int
from_env (struct cv_aws_creds *out, char *why, size_t len)
{
  const char *akid = env ("AWS_ACCESS_KEY_ID");
  const char *sec = env ("AWS_SECRET_ACCESS_KEY");
  const char *tok = env ("AWS_SESSION_TOKEN");

  if (akid && sec)
    return cv_aws_creds_set (out, akid, strlen (akid), sec, strlen (sec), tok,
                             tok ? strlen (tok) : 0, "the environment");
  if (akid || sec)
    snprintf (why, len, "%s is set but %s is not",
              akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
              akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
  else
    snprintf (why, len,
              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not "
              "set");
  return -ENOKEY;
}

/* DurationSeconds from profile's duration_seconds: 0 (unset) or
 * 900..43200; -EINVAL (logged) otherwise. */
static int
duration_of (const struct cv_aws_ctx *ctx, const char *profile, int *out)
{
  const char *s = cv_aws_profile_get (ctx->cfg, profile, "duration_seconds");
  char *end;
  long v;

  *out = 0;
  if (!s)
    return 0;
  errno = 0;
  v = strtol (s, &end, 10);
  if (errno || end == s || *end || v < DURATION_MIN_S || v > DURATION_MAX_S) {
    cv_err ("aws: profile %s: duration_seconds = %.20s is not a number of "
            "seconds in %d..%d",
            profile, s, DURATION_MIN_S, DURATION_MAX_S);
    return -EINVAL;
  }
  *out = (int) v;
  return 0;
}

/* Web identity from AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, or
 * -ENOKEY with why when they are not both set. */
static int
from_env_web_identity (const struct cv_aws_ctx *ctx, struct cv_aws_creds *out,
                       char *why, size_t len)
{
  const char *file = env ("AWS_WEB_IDENTITY_TOKEN_FILE");
  const char *role = env ("AWS_ROLE_ARN");
  struct sts t;
  int r;

  if (!file || !role) {
    snprintf (why, len, "%s",
              file   ? "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN "
                       "is not"
              : role ? "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE "
                       "is not"
                     : "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not "
                       "set");
    return -ENOKEY;
  }
  if ((r = sts_open (ctx, &t)) < 0)
    return r;
  r = cv_aws_sts_web_identity (&t.s, role, env ("AWS_ROLE_SESSION_NAME"), file,
                               0, "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
                               out);
  sts_free (&t);
  return r;
}

static int from_profile (const struct cv_aws_ctx *ctx, const char *name,
                         int depth, struct cv_aws_creds *out, char *why,
                         size_t len);

/* The static keys of profile, or -ENOKEY. A key id without a secret (or
 * the other way round) is -EINVAL (logged). */
static int
profile_keys (const struct cv_aws_ctx *ctx, const char *profile,
              struct cv_aws_creds *out)
{
  const char *akid
      = cv_aws_profile_get (ctx->cfg, profile, "aws_access_key_id");
  const char *sec
      = cv_aws_profile_get (ctx->cfg, profile, "aws_secret_access_key");
  const char *tok = cv_aws_profile_get (ctx->cfg, profile, "aws_session_token");
  char source[600];

  if (akid && !*akid)
    akid = NULL;
  if (sec && !*sec)
    sec = NULL;
  if (!akid && !sec)
    return -ENOKEY;
  if (!akid || !sec) {
    const char *has = akid ? "aws_access_key_id" : "aws_secret_access_key";
    cv_err ("aws: profile %s has %s (in %s) but no %s; add it, or remove "
            "both",
            profile, has, cv_aws_profile_where (ctx->cfg, profile, has),
            akid ? "aws_secret_access_key" : "aws_access_key_id");
    return -EINVAL;
  }
  snprintf (source, sizeof source, "profile %s (%s)", profile,
            cv_aws_profile_where (ctx->cfg, profile, "aws_access_key_id"));
  return cv_aws_creds_set (out, akid, strlen (akid), sec, strlen (sec), tok,
                           tok ? strlen (tok) : 0, source);
}

/* The credentials a role profile's credential_source names. */
static int
credential_source (const struct cv_aws_ctx *ctx, const char *profile,
                   const char *cs, struct cv_aws_creds *out)
{
  char why[CV_AWS_WHY_MAX] = "";
  int r;

  if (strcmp (cs, "Environment") == 0)
    r = from_env (out, why, sizeof why);
  else if (strcmp (cs, "EcsContainer") == 0)
    r = cv_aws_container_creds (out, why, sizeof why);
  else if (strcmp (cs, "Ec2InstanceMetadata") == 0)
    r = cv_aws_imds_creds (cv_aws_setting (ctx,
                                           "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                           "ec2_metadata_service_endpoint"),
                           out, why, sizeof why);
  else {
    cv_err ("aws: profile %s: credential_source = %.40s is not Environment, "
            "Ec2InstanceMetadata or EcsContainer",
            profile, cs);
    return -EINVAL;
  }
  if (r == -ENOKEY) {
    cv_err ("aws: profile %s: credential_source = %s gave no credentials: %s",
            profile, cs, why);
    return -EINVAL;
  }
  return r;
}

/* A profile with role_arn: the source credentials, then AssumeRole (or
 * AssumeRoleWithWebIdentity). */
static int
role_creds (const struct cv_aws_ctx *ctx, const char *profile, int depth,
            const char *role, struct cv_aws_creds *out)
{
  const struct cv_aws_config *cfg = ctx->cfg;
  const char *sp = cv_aws_profile_get (cfg, profile, "source_profile");
  const char *cs = cv_aws_profile_get (cfg, profile, "credential_source");
  const char *wif
      = cv_aws_profile_get (cfg, profile, "web_identity_token_file");
  const char *session = cv_aws_profile_get (cfg, profile, "role_session_name");
  const char *xid = cv_aws_profile_get (cfg, profile, "external_id");
  struct cv_aws_creds src = { 0 };
  char source[300], why[CV_AWS_WHY_MAX] = "";
  int duration, r;
  struct sts t;

  if (!!sp + !!cs + !!wif != 1) {
    cv_err ("aws: profile %s has role_arn and %s of source_profile, "
            "credential_source and web_identity_token_file; give exactly one",
            profile, sp || cs || wif ? "more than one" : "none");
    return -EINVAL;
  }
  if ((r = duration_of (ctx, profile, &duration)) < 0)
    return r;
  snprintf (source, sizeof source, "profile %s", profile);
  if (wif) {
    if ((r = sts_open (ctx, &t)) < 0)
      return r;
    r = cv_aws_sts_web_identity (&t.s, role, session, wif, duration, source,
                                 out);
    sts_free (&t);
    return r;
  }
  if (cs)
    r = credential_source (ctx, profile, cs, &src);
  else if (strcmp (sp, profile) == 0) { /* its own static keys */
    r = profile_keys (ctx, profile, &src);
    if (r == -ENOKEY) {
      cv_err ("aws: profile %s names itself as source_profile but has no "
              "aws_access_key_id and aws_secret_access_key",
              profile);
      r = -EINVAL;
    }
  } else if (depth >= PROFILE_DEPTH_MAX) {
    cv_err ("aws: profile %s: source_profile links more than %d profiles "
            "deep (a loop?); check the source_profile settings",
            profile, PROFILE_DEPTH_MAX);
    r = -EINVAL;
  } else if ((r = from_profile (ctx, sp, depth + 1, &src, why, sizeof why))
             == -ENOKEY) {
    cv_err ("aws: profile %s: its source_profile %s gives no credentials "
            "(%s)",
            profile, sp, why);
    r = -EINVAL;
  }
  if (r < 0)
    return r;
  if ((r = sts_open (ctx, &t)) == 0) {
    r = cv_aws_sts_assume_role (&t.s, &src, role, session, xid, duration,
                                source, out);
    sts_free (&t);
  }
  cv_aws_creds_free (&src);
  return r;
}

/* The credentials of profile name, in botocore's order within a profile:
 * role_arn, SSO, static keys, credential_process. */
static int
from_profile (const struct cv_aws_ctx *ctx, const char *name, int depth,
              struct cv_aws_creds *out, char *why, size_t len)
{
  const struct cv_aws_config *cfg = ctx->cfg;
  const char *role = cv_aws_profile_get (cfg, name, "role_arn");
  const char *proc = cv_aws_profile_get (cfg, name, "credential_process");
  int r;

  if (!cv_aws_profile_exists (cfg, name)) {
    snprintf (why, len, "no profile %s in %s or %s", name,
              *cv_aws_config_path (cfg) ? cv_aws_config_path (cfg)
                                        : "the config file (none)",
              *cv_aws_credentials_path (cfg) ? cv_aws_credentials_path (cfg)
                                             : "the credentials file (none)");
    return -ENOKEY;
  }
  if (role)
    return role_creds (ctx, name, depth, role, out);
  if (cv_aws_profile_get (cfg, name, "sso_session")
      || cv_aws_profile_get (cfg, name, "sso_start_url"))
    return cv_aws_sso_creds (ctx, name, out);
  if ((r = profile_keys (ctx, name, out)) != -ENOKEY)
    return r;
  if (proc)
    return cv_aws_process_creds (proc, name, out);
  snprintf (why, len,
            "profile %s has no aws_access_key_id, role_arn, sso_session or "
            "credential_process",
            name);
  return -ENOKEY;
}

/* The instance role's credentials, unless instance metadata is disabled
 * (-ENOKEY with why). */
static int
from_imds (const struct cv_aws_ctx *ctx, struct cv_aws_creds *out, char *why,
           size_t len)
{
  bool off = false;
  int r = cv_aws_setting_bool (ctx, "AWS_EC2_METADATA_DISABLED", NULL, false,
                               &off);

  if (r < 0)
    return r;
  if (off) {
    snprintf (why, len, "AWS_EC2_METADATA_DISABLED is true");
    return -ENOKEY;
  }
  return cv_aws_imds_creds (cv_aws_setting (ctx,
                                            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                            "ec2_metadata_service_endpoint"),
                            out, why, len);
}

int
cv_aws_chain_resolve (const struct cv_aws_ctx *ctx, struct cv_aws_creds *out)
{
  struct report rp = { .len = 0 };
  char why[CV_AWS_WHY_MAX], src[300];
  int r;

  *out = (struct cv_aws_creds){ 0 };
#define STEP(name, call)                                                       \
  do {                                                                         \
    why[0] = '\0';                                                             \
    if ((r = (call)) != -ENOKEY)                                               \
      return r;                                                                \
    note (&rp, name, why);                                                     \
  } while (0)
  STEP ("the environment", from_env (out, why, sizeof why));
  STEP ("web identity", from_env_web_identity (ctx, out, why, sizeof why));
  snprintf (src, sizeof src, "profile %s%s", ctx->profile,
            ctx->profile_named ? "" : " (AWS_PROFILE is not set)");
  STEP (src, from_profile (ctx, ctx->profile, 0, out, why, sizeof why));
  STEP ("container credentials", cv_aws_container_creds (out, why, sizeof why));
  STEP ("instance metadata", from_imds (ctx, out, why, sizeof why));
#undef STEP
  cv_err ("aws: no AWS credentials found. Looked at %s. Give credentials "
          "in one of these ways (doc/kms.md, \"Credentials\")",
          rp.text);
  return -ENOKEY;
}

/* --- the process's cache -------------------------------------------------- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct cv_aws_ctx pctx;
static bool pctx_loaded;
static struct cv_aws_creds cache;
static time_t cache_obtained;
static time_t (*clock_fn) (void);

void
cv_aws_creds_clock_for_tests (time_t (*now) (void))
{
  clock_fn = now;
}

/* pctx loaded; call with lock held. */
static int
ctx_locked (void)
{
  int r;

  if (pctx_loaded)
    return 0;
  if ((r = cv_aws_ctx_load (&pctx)) == 0)
    pctx_loaded = true;
  return r;
}

int
cv_aws_process_ctx (const struct cv_aws_ctx **out)
{
  int r;

  pthread_mutex_lock (&lock);
  r = ctx_locked ();
  pthread_mutex_unlock (&lock);
  if (r == 0)
    *out = &pctx;
  return r;
}

/* Whether the cached credentials serve at now: long-lived ones always,
 * temporary ones until REFRESH_AHEAD_S before expiry (or half their life,
 * if that is shorter: short-lived credentials are refreshed too). */
static bool
fresh (time_t now)
{
  time_t ahead = REFRESH_AHEAD_S;

  if (!cache.access_key_id)
    return false;
  if (!cache.expires)
    return true;
  if ((cache.expires - cache_obtained) / 2 < ahead)
    ahead = (cache.expires - cache_obtained) / 2;
  return now < cache.expires - ahead;
}

int
cv_aws_creds_load (struct cv_aws_creds *out)
{
  struct cv_aws_creds next = { 0 };
  time_t now;
  int r;

  *out = (struct cv_aws_creds){ 0 };
  pthread_mutex_lock (&lock);
  now = clock_fn ? clock_fn () : time (NULL);
  if ((r = ctx_locked ()) < 0)
    goto out;
  if (fresh (now)) {
    r = cv_aws_creds_copy (&cache, out);
    goto out;
  }
  r = cv_aws_chain_resolve (&pctx, &next);
  if (r == 0) {
    if (cache.access_key_id)
      cv_debug ("aws: credentials from %s refreshed%s", next.source,
                cache.expires ? " ahead of their expiry" : "");
    cv_aws_creds_free (&cache);
    cache = next;
    cache_obtained = now;
    r = cv_aws_creds_copy (&cache, out);
  } else if (cache.access_key_id && now < cache.expires - EXPIRY_MARGIN_S) {
    cv_warn ("aws: refreshing the credentials from %s failed; the current "
             "ones stay in use until they expire in %ld s",
             cache.source, (long) (cache.expires - now));
    r = cv_aws_creds_copy (&cache, out);
  }
out:
  pthread_mutex_unlock (&lock);
  /* Failing to get credentials is the operator's problem, never the
   * customer revoking the key: the key watch must not take a refused
   * AssumeRole (-EACCES) or a bad profile (-EINVAL) for a revocation. */
  return r == 0 || r == -ENOKEY || r == -ENOMEM ? r : -EKEYEXPIRED;
}

int
cv_aws_identity (char **arn, char **source, time_t *expires)
{
  const struct cv_aws_ctx *ctx;
  struct cv_aws_creds c;
  struct sts t;
  int r;

  *arn = *source = NULL;
  if ((r = cv_aws_process_ctx (&ctx)) < 0 || (r = cv_aws_creds_load (&c)) < 0)
    return r;
  if ((r = sts_open (ctx, &t)) == 0) {
    r = cv_aws_sts_caller_identity (&t.s, &c, arn);
    sts_free (&t);
  }
  if (r == 0 && !(*source = strdup (c.source))) {
    free (*arn);
    *arn = NULL;
    r = -ENOMEM;
  }
  *expires = c.expires;
  cv_aws_creds_free (&c);
  return r;
}

void
cv_aws_creds_reset (void)
{
  pthread_mutex_lock (&lock);
  cv_aws_creds_free (&cache);
  if (pctx_loaded)
    cv_aws_ctx_free (&pctx);
  pctx_loaded = false;
  pthread_mutex_unlock (&lock);
}

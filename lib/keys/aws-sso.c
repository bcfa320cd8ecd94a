/* SSO profiles (IAM Identity Center) through the token the AWS CLI caches
 * after `aws sso login`: ~/.aws/sso/cache/SHA1.json, where SHA1 is the hex
 * SHA-1 of the sso_session name (or, for a legacy profile, of its
 * sso_start_url), holding accessToken and expiresAt. The token buys the
 * role's credentials from the SSO portal (GetRoleCredentials: GET
 * /federation/credentials). We never log in or refresh the token: that is
 * the CLI's interactive step, and the messages say to run it. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"

#define CACHE_MAX (1 << 20)
#define HEADER "x-amz-sso_bearer_token: "

/* What an SSO profile names. */
struct sso {
  const char *profile, *key, *region, *account, *role;
};

/* Read the SSO settings of profile. 0, -ENOKEY (not an SSO profile),
 * -EINVAL (incomplete; logged). */
static int
sso_settings (const struct cv_aws_ctx *ctx, const char *profile, struct sso *s)
{
  const struct cv_aws_config *cfg = ctx->cfg;
  const char *session = cv_aws_profile_get (cfg, profile, "sso_session");

  *s = (struct sso){ .profile = profile };
  if (session) {
    s->key = session;
    s->region = cv_aws_section_get (cfg, "sso-session", session, "sso_region");
    if (!s->region
        || !cv_aws_section_get (cfg, "sso-session", session, "sso_start_url")) {
      cv_err ("AWS profile %s names sso_session %s, but %s has no "
              "[sso-session %s] with sso_start_url and sso_region; run `aws "
              "configure sso` or add them",
              profile, session, cv_aws_config_path (cfg), session);
      return -EINVAL;
    }
  } else {
    if (!(s->key = cv_aws_profile_get (cfg, profile, "sso_start_url")))
      return -ENOKEY;
    if (!(s->region = cv_aws_profile_get (cfg, profile, "sso_region"))) {
      cv_err ("AWS profile %s has sso_start_url but no sso_region; add it",
              profile);
      return -EINVAL;
    }
  }
  s->account = cv_aws_profile_get (cfg, profile, "sso_account_id");
  s->role = cv_aws_profile_get (cfg, profile, "sso_role_name");
  if (!s->account || !s->role) {
    cv_err ("AWS profile %s is an SSO profile without %s; add "
            "sso_account_id and sso_role_name (the account and the role to "
            "use)",
            profile, !s->account ? "sso_account_id" : "sso_role_name");
    return -EINVAL;
  }
  return 0;
}

/* The path of the CLI's cache file for key into a new string; NULL if
 * there is no home directory or no memory. */
static char *
cache_path (const char *key)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  const char *home = getenv ("HOME");
  char *out = NULL;

  if (!home || !*home) {
    struct passwd *pw = getpwuid (getuid ());
    home = pw ? pw->pw_dir : NULL;
  }
  if (!home || !EVP_Digest (key, strlen (key), md, &n, EVP_sha1 (), NULL))
    return NULL;
  for (unsigned int i = 0; i < n; i++)
    sprintf (hex + 2 * i, "%02x", md[i]);
  if (asprintf (&out, "%s/.aws/sso/cache/%s.json", home, hex) < 0)
    return NULL;
  return out;
}

/* The cached token of s as the header line "x-amz-sso_bearer_token: T" in
 * locked memory. 0, -EKEYEXPIRED (none or expired; logged), -EPROTO,
 * -EINVAL (logged), -ENOMEM. */
static int
cached_token (const struct sso *s, struct cv_key **header)
{
  CLEANUP_FREE char *path = cache_path (s->key);
  CLEANUP_KEY struct cv_key *text = NULL;
  char when[40];
  time_t expires;
  size_t len;
  int r;

  if (!path)
    return -ENOMEM;
  r = cv_aws_read_file (path, "AWS SSO token cache file", CACHE_MAX, &text,
                        &len);
  if (r == -ENOENT) {
    cv_err ("AWS profile %s: no SSO token is cached (%s); run `aws sso login "
            "--profile %s`",
            s->profile, path, s->profile);
    return -EKEYEXPIRED;
  }
  if (r < 0)
    return r;
  cv_kms_json_wipe_init (); /* the token passes through jansson's strings */
  json_auto_t *j = json_loadb ((const char *) text->b, len, 0, NULL);
  const char *tok = json_string_value (json_object_get (j, "accessToken"));
  const char *exp = json_string_value (json_object_get (j, "expiresAt"));
  if (!tok || !*tok || !exp) {
    cv_err ("AWS profile %s: the SSO token cache file %s has no %s; run `aws "
            "sso login --profile %s`",
            s->profile, path, !tok || !*tok ? "accessToken" : "expiresAt",
            s->profile);
    return -EPROTO;
  }
  /* The CLI wrote "...Z"; older versions "...UTC". */
  size_t el = strlen (exp);
  snprintf (when, sizeof when, "%.*s%s",
            el > 3 && strcmp (exp + el - 3, "UTC") == 0 ? (int) el - 3
                                                        : (int) el,
            exp, el > 3 && strcmp (exp + el - 3, "UTC") == 0 ? "Z" : "");
  if (el >= sizeof when || cv_aws_parse_time (when, &expires) < 0) {
    cv_err ("AWS profile %s: the expiresAt of the SSO token cache file %s "
            "is not a time; run `aws sso login --profile %s`",
            s->profile, path, s->profile);
    return -EPROTO;
  }
  if (expires <= time (NULL)) {
    cv_err ("AWS profile %s: the SSO token cached in %s expired at %s; run "
            "`aws sso login --profile %s`",
            s->profile, path, when, s->profile);
    return -EKEYEXPIRED;
  }
  if ((r = cv_key_new (strlen (HEADER) + strlen (tok) + 1, header)) < 0)
    return r;
  memcpy ((*header)->b, HEADER, strlen (HEADER));
  memcpy ((*header)->b + strlen (HEADER), tok, strlen (tok));
  return 0;
}

/* The "message" of an error answer of the portal, sanitised, into msg. */
static void
error_message (const struct cv_aws_fetched *res, char *msg, size_t len)
{
  json_auto_t *j
      = res->body ? json_loads ((const char *) res->body->b, 0, NULL) : NULL;
  const char *m = json_string_value (json_object_get (j, "message"));

  if (!m)
    m = json_string_value (json_object_get (j, "Message"));
  cv_http_sanitise (msg, len, m ? m : "", m ? strlen (m) : 0);
}

/* One GET of the portal, for cv_aws_retried: again when nothing answered,
 * on 5xx and on 429, as the SDKs' SSO client. */
struct sso_attempt {
  const struct cv_aws_fetch *req;
  struct cv_aws_fetched *res;
  int fetched; /* what cv_aws_fetch returned */
};

static int
sso_attempt (void *arg, struct cv_aws_attempt *a)
{
  struct sso_attempt *t = arg;

  cv_aws_fetched_free (t->res);
  t->fetched = cv_aws_fetch (t->req, t->res);
  a->status = t->res->status;
  a->request_id = t->res->request_id;
  a->what = t->fetched == -EIO ? t->res->message : "an HTTP error";
  if (t->fetched < 0)
    a->how = cv_kms_classify (t->res->curl_code, 0, "");
  else if (t->res->status >= 300)
    a->how = cv_kms_classify (CURLE_OK, t->res->status, "");
  return t->fetched < 0 || t->res->status >= 300 ? -EIO : 0;
}

/* req with the retries of the process's retry mode. Returns what the last
 * cv_aws_fetch returned (res holds its answer), or -EINVAL for a bad knob
 * or retry setting (logged). */
static int
fetch_retried (const struct cv_aws_ctx *ctx, const struct cv_aws_fetch *req,
               struct cv_aws_fetched *res)
{
  struct sso_attempt t = { req, res, -EIO };
  struct cv_aws_retry rt;
  bool exhausted = false;
  int attempts, r;

  *res = (struct cv_aws_fetched){ 0 };
  if ((r = cv_aws_retry_settings (ctx, &rt)) < 0)
    return r;
  r = cv_aws_retried ("sso", "GetRoleCredentials", rt.max_attempts, false,
                      sso_attempt, &t, &attempts, &exhausted);
  return r == -EIO || r == 0 ? t.fetched : r;
}

/* GetRoleCredentials at the portal with the token header. */
static int
role_credentials (const struct cv_aws_ctx *ctx, const struct sso *s,
                  const struct cv_key *header, struct cv_aws_creds *out)
{
  static const struct cv_aws_json_names names
      = { "accessKeyId", "secretAccessKey", "sessionToken", "expiration" };
  CLEANUP_FREE char *base = NULL, *host = NULL, *url = NULL, *what = NULL;
  CLEANUP_FREE char *source = NULL;
  const char *headers[] = { (const char *) header->b, NULL };
  struct cv_aws_fetched res;
  const char *from;
  char msg[256];
  char *acct, *role;
  int r;

  if ((r = cv_aws_endpoint (ctx, "SSO", "portal.sso", NULL, s->region, &base,
                            &host, &from))
      < 0)
    return r;
  acct = curl_easy_escape (NULL, s->account, 0);
  role = curl_easy_escape (NULL, s->role, 0);
  if (!acct || !role
      || asprintf (&url, "%sfederation/credentials?account_id=%s&role_name=%s",
                   base, acct, role)
             < 0)
    url = NULL;
  curl_free (acct);
  curl_free (role);
  if (!url
      || asprintf (&what, "the SSO portal at %s (profile %s)", base, s->profile)
             < 0)
    return -ENOMEM;
  struct cv_aws_fetch req = { .method = "GET",
                              .url = url,
                              .headers = headers,
                              .connect_timeout_ms = 5000,
                              .timeout_ms = 20000 };
  r = fetch_retried (ctx, &req, &res);
  if (r == -EIO) {
    cv_err ("AWS profile %s: cannot reach the SSO portal at %s: %s; check "
            "the network and sso_region",
            s->profile, base, res.message);
    return res.curl_code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                                                     : -ECONNREFUSED;
  }
  if (r < 0)
    return r;
  if (res.status != 200) {
    error_message (&res, msg, sizeof msg);
    cv_aws_fetched_free (&res);
    if (res.status == 401) {
      cv_err ("AWS profile %s: the SSO portal refused the cached token "
              "(HTTP 401: %s); run `aws sso login --profile %s`",
              s->profile, msg, s->profile);
      return -EKEYEXPIRED;
    }
    if (res.status == 403) {
      cv_err ("AWS profile %s: the SSO portal refused role %s in account %s "
              "(HTTP 403: %s); check sso_account_id and sso_role_name and "
              "the assignments in IAM Identity Center",
              s->profile, s->role, s->account, msg);
      return -EACCES;
    }
    cv_err ("AWS profile %s: the SSO portal at %s failed (HTTP %ld: %s; "
            "request id %s)%s",
            s->profile, base, res.status, msg,
            res.request_id[0] ? res.request_id : "none",
            res.status >= 500 || res.status == 429 ? "; try again later" : "");
    return res.status >= 500 || res.status == 429 ? -EAGAIN : -EPROTO;
  }
  json_auto_t *j = json_loads ((const char *) res.body->b, 0, NULL);
  cv_aws_fetched_free (&res);
  if (asprintf (&source, "SSO profile %s (role %s in account %s)", s->profile,
                s->role, s->account)
      < 0) {
    source = NULL;
    return -ENOMEM;
  }
  return cv_aws_creds_from_json (json_object_get (j, "roleCredentials"), &names,
                                 what, source, out);
}

int
cv_aws_sso_creds (const struct cv_aws_ctx *ctx, const char *profile,
                  struct cv_aws_creds *out)
{
  CLEANUP_KEY struct cv_key *header = NULL;
  struct sso s;
  int r;

  *out = (struct cv_aws_creds){ 0 };
  if ((r = sso_settings (ctx, profile, &s)) < 0
      || (r = cached_token (&s, &header)) < 0)
    return r;
  return role_credentials (ctx, &s, header, out);
}

/* EC2 instance metadata with IMDSv2 only: a session token (PUT
 * /latest/api/token, TTL 21600 s), then with it the name of the instance's
 * role and the role's credentials, or the instance's region. 1 s timeouts
 * and 2 attempts per request, as the SDKs. IMDSv1 (requests without a token)
 * is never made: doc/kms.md says why. The token and the answers live in
 * locked memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 1000
#define IMDS_ATTEMPTS 2
#define TOKEN_TTL "21600"
#define CREDS_PATH "/latest/meta-data/iam/security-credentials/"
#define HOP_HINT                                                               \
  "in a container on EC2, the instance's metadata hop limit must be 2 (aws "   \
  "ec2 modify-instance-metadata-options --http-put-response-hop-limit 2)"

/* The endpoint without trailing slashes into *out (malloc'd): http or
 * https, no path. 0, -EINVAL (logged), -ENOMEM. */
static int
base_url (const char *endpoint, char **out)
{
  const char *e = endpoint && *endpoint ? endpoint : IMDS_DEFAULT;
  size_t len = strlen (e), skip;

  while (len && e[len - 1] == '/')
    len--;
  skip = strncmp (e, "http://", 7) == 0    ? 7
         : strncmp (e, "https://", 8) == 0 ? 8
                                           : 0;
  if (!skip || len <= skip || memchr (e + skip, '/', len - skip)
      || strcspn (e, "?#@ \t\r\n") < len) {
    cv_err ("instance metadata: the endpoint \"%.200s\" is not "
            "http[s]://HOST[:PORT] (AWS_EC2_METADATA_SERVICE_ENDPOINT or the "
            "profile's ec2_metadata_service_endpoint)",
            e);
    return -EINVAL;
  }
  return (*out = strndup (e, len)) ? 0 : -ENOMEM;
}

/* One request of up to IMDS_ATTEMPTS attempts: again when nothing answered
 * or on HTTP 5xx. 0 with res (any status) or -EIO when nothing answered
 * (res->message says why), -ENOMEM, -EINVAL (logged by cv_aws_fetch). */
static int
imds_get (const char *method, const char *url, const char *const *headers,
          struct cv_aws_fetched *res)
{
  struct cv_aws_fetch req = { .method = method,
                              .url = url,
                              .allow_http = true,
                              .headers = headers,
                              .connect_timeout_ms = IMDS_TIMEOUT_MS,
                              .timeout_ms = IMDS_TIMEOUT_MS };

  return cv_aws_fetch_tries (&req, IMDS_ATTEMPTS, 0, "instance metadata", res);
}

/* The text of an answer: its body without trailing white space (a view
 * into res->body). */
static const char *
answer_text (struct cv_aws_fetched *res, size_t *len)
{
  char *s = res->body ? (char *) res->body->b : (char *) "";
  size_t n = strlen (s);

  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
    s[--n] = '\0';
  *len = n;
  return s;
}

/* A session token: *header gets "X-aws-ec2-metadata-token: T" (malloc'd,
 * wipe it). -ENOKEY with why when nothing answers or the token is refused
 * as instance metadata is off; -EPROTO (logged) for another answer. */
static int
imds_token (const char *base, char **header, char *why, size_t why_len)
{
  static const char *const ttl[]
      = { "X-aws-ec2-metadata-token-ttl-seconds: " TOKEN_TTL, NULL };
  CLEANUP_FREE char *url = NULL;
  struct cv_aws_fetched res = { 0 };
  const char *t;
  size_t len;
  int r;

  if (!(url = cv_strf ("%s/latest/api/token", base)))
    return -ENOMEM;
  r = imds_get ("PUT", url, ttl, &res);
  if (r == -EIO) {
    snprintf (why, why_len, "no instance metadata at %s (%s%s%s)", base,
              res.message,
              res.curl_code == CURLE_OPERATION_TIMEDOUT ? "; " : "",
              res.curl_code == CURLE_OPERATION_TIMEDOUT ? HOP_HINT : "");
    r = -ENOKEY;
  } else if (r == 0 && res.status == 403) {
    snprintf (why, why_len,
              "instance metadata at %s refused a session token (HTTP 403): it "
              "is turned off for this instance (aws ec2 "
              "modify-instance-metadata-options --http-endpoint enabled)",
              base);
    r = -ENOKEY;
  } else if (r == 0) {
    t = answer_text (&res, &len);
    if (res.status != 200 || len == 0 || strcspn (t, " \t\r\n") != len) {
      cv_err ("instance metadata at %s answered HTTP %ld %s to the session "
              "token request (PUT /latest/api/token); cryptvol only uses "
              "IMDSv2 (doc/kms.md): check that this is the instance metadata "
              "service (AWS_EC2_METADATA_SERVICE_ENDPOINT), or set "
              "AWS_EC2_METADATA_DISABLED=true",
              base, res.status,
              res.status == 200 ? "without a usable token"
                                : "instead of a token");
      r = -EPROTO;
    } else if (!(*header = cv_strf ("X-aws-ec2-metadata-token: %s", t)))
      r = -ENOMEM;
  }
  cv_aws_fetched_free (&res);
  return r;
}

/* Wipe and free a string that held a token. */
static void
wipe_free (char *s)
{
  if (s) {
    cv_wipe (s, strlen (s));
    free (s);
  }
}

/* True if s (len bytes) may be an IAM role name: 1..64 of [\w+=,.@-]. */
static bool
role_name_ok (const char *s, size_t len)
{
  if (len == 0 || len > 64)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!strchr ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "0123456789_+=,.@-",
                 s[i]))
      return false;
  return true;
}

/* The role's credentials with the session token header tok. */
static int
role_creds (const char *base, const char *tok, struct cv_aws_creds *out,
            char *why, size_t why_len)
{
  const char *const hdrs[] = { tok, NULL };
  static const struct cv_aws_json_names names
      = { "AccessKeyId", "SecretAccessKey", "Token", "Expiration" };
  CLEANUP_FREE char *url = NULL, *role = NULL, *what = NULL, *source = NULL;
  struct cv_aws_fetched res = { 0 };
  json_auto_t *j = NULL;
  const char *t, *code;
  size_t len;
  int r;

  if (!(url = cv_strf ("%s" CREDS_PATH, base)))
    return -ENOMEM;
  if ((r = imds_get ("GET", url, hdrs, &res)) == -EIO) {
    cv_err ("instance metadata at %s: no answer to %s after a session token "
            "was given (%s)",
            base, CREDS_PATH, res.message);
    r = -ETIMEDOUT;
    goto out;
  }
  if (r < 0)
    goto out;
  t = answer_text (&res, &len);
  if (res.status == 404) {
    snprintf (why, why_len,
              "no IAM role is attached to this instance (instance metadata at "
              "%s has no %s)",
              base, CREDS_PATH);
    r = -ENOKEY;
    goto out;
  }
  len = strcspn (t, "\r\n"); /* the first role listed: there is one */
  if (res.status != 200 || !role_name_ok (t, len)) {
    cv_err ("instance metadata at %s answered HTTP %ld to %s, not the name of "
            "the instance's role",
            base, res.status, CREDS_PATH);
    r = -EPROTO;
    goto out;
  }
  if (!(role = strndup (t, len)))
    goto nomem;
  free (url);
  if (!(url = cv_strf ("%s" CREDS_PATH "%s", base, role))
      || !(what = cv_strf ("the credentials of role %s from instance metadata "
                           "at %s",
                           role, base))
      || !(source = cv_strf ("instance metadata (role %s)", role)))
    goto nomem;
  cv_aws_fetched_free (&res);
  if ((r = imds_get ("GET", url, hdrs, &res)) == -EIO) {
    cv_err ("%s: no answer (%s)", what, res.message);
    r = -ETIMEDOUT;
    goto out;
  }
  if (r < 0)
    goto out;
  if (res.status != 200) {
    cv_err ("%s: HTTP %ld instead of credentials; check the instance profile "
            "(aws ec2 describe-iam-instance-profile-associations)",
            what, res.status);
    r = -EPROTO;
    goto out;
  }
  j = json_loadb ((const char *) res.body->b, res.body->len - 1,
                  JSON_REJECT_DUPLICATES, NULL);
  code = json_string_value (json_object_get (j, "Code"));
  if (!json_is_object (j) || !code || strcmp (code, "Success") != 0) {
    char c[64] = "missing";
    if (code)
      cv_http_sanitise (c, sizeof c, code, strlen (code));
    if (!json_is_object (j))
      cv_err ("%s: the answer is not a JSON object", what);
    else
      cv_err ("%s: Code is %s, not Success; the role's credentials are not "
              "available (check the instance profile and its role)",
              what, c);
    r = -EPROTO;
    goto out;
  }
  r = cv_aws_creds_from_json (j, &names, what, source, out);
  goto out;
nomem:
  r = -ENOMEM;
out:
  cv_aws_fetched_free (&res);
  return r;
}

int
cv_aws_imds_creds (const char *endpoint, struct cv_aws_creds *out, char *why,
                   size_t why_len)
{
  CLEANUP_FREE char *base = NULL;
  char *tok = NULL;
  int r;

  if ((r = base_url (endpoint, &base)) < 0
      || (r = imds_token (base, &tok, why, why_len)) < 0)
    return r;
  r = role_creds (base, tok, out, why, why_len);
  wipe_free (tok);
  return r;
}

int
cv_aws_imds_region (const char *endpoint, char *region, size_t len)
{
  CLEANUP_FREE char *base = NULL, *url = NULL;
  struct cv_aws_fetched res = { 0 };
  char why[CV_AWS_WHY_MAX];
  char *tok = NULL;
  const char *t;
  size_t n;
  int r;

  if (base_url (endpoint, &base) < 0
      || imds_token (base, &tok, why, sizeof why) < 0)
    return -ENOKEY;
  const char *const hdrs[] = { tok, NULL };
  if (!(url = cv_strf ("%s/latest/meta-data/placement/region", base))) {
    wipe_free (tok);
    return -ENOMEM;
  }
  r = imds_get ("GET", url, hdrs, &res);
  wipe_free (tok);
  t = r == 0 ? answer_text (&res, &n) : "";
  n = strlen (t);
  if (r < 0 || res.status != 200 || n == 0 || n >= len
      || strspn (t, "abcdefghijklmnopqrstuvwxyz0123456789-") != n) {
    cv_debug ("instance metadata at %s: no region (%s, HTTP %ld)", base,
              r < 0 ? res.message : "answered", res.status);
    r = r == -ENOMEM ? r : -ENOKEY;
  } else
    memcpy (region, t, n + 1);
  cv_aws_fetched_free (&res);
  return r;
}

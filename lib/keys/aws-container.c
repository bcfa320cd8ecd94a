/* The container credentials endpoint (ECS task roles, EKS Pod Identity):
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on http://169.254.170.2, or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; http only to the hosts
 * the SDKs allow), with an Authorization header from
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read fresh on every call: Pod
 * Identity rotates it) or AWS_CONTAINER_AUTHORIZATION_TOKEN. 3 attempts of
 * 2 s with 1 s between them, as botocore. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define ECS_HOST "http://169.254.170.2"
#define ATTEMPTS 3
#define TIMEOUT_MS 2000
#define PAUSE_MS 1000
#define TOKEN_MAX 16384
#define FULL "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#define RELATIVE "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
#define TOKEN_FILE "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
#define TOKEN_ENV "AWS_CONTAINER_AUTHORIZATION_TOKEN"

/* Whether an http:// URL may go to host (as curl gives it: IPv6 in
 * brackets): a loopback address, the ECS and EKS Pod Identity addresses,
 * or "localhost" (botocore allows it by name). */
static bool
http_host_allowed (const char *host)
{
  char h[64];
  unsigned char a[16];
  size_t len = strlen (host);

  if (len >= sizeof h)
    return false;
  if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
    memcpy (h, host + 1, len - 2);
    h[len - 2] = '\0';
  } else
    memcpy (h, host, len + 1);
  if (strcasecmp (h, "localhost") == 0)
    return true;
  if (inet_pton (AF_INET, h, a) == 1)
    return a[0] == 127 || strcmp (h, "169.254.170.2") == 0
           || strcmp (h, "169.254.170.23") == 0;
  if (inet_pton (AF_INET6, h, a) == 1) {
    static const unsigned char loop6[16] = { [15] = 1 };
    static const unsigned char eks6[16]
        = { 0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23 };
    return memcmp (a, loop6, 16) == 0 || memcmp (a, eks6, 16) == 0;
  }
  return false;
}

/* Check the full URI: https, or http to an allowed host. *shown gets
 * scheme://host[:port] for messages (the path may be a capability: it is
 * never shown). 0, -EINVAL (logged), -ENOMEM. */
static int
check_full_uri (const char *uri, char **shown)
{
  CURLU *u = curl_url ();
  char *scheme = NULL, *host = NULL, *port = NULL;
  int r = 0;

  if (!u)
    return -ENOMEM;
  if (curl_url_set (u, CURLUPART_URL, uri, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
      || curl_url_get (u, CURLUPART_HOST, &host, 0) != CURLUE_OK
      || (strcmp (scheme, "http") != 0 && strcmp (scheme, "https") != 0)) {
    cv_err ("container credentials: " FULL " is not an http:// or https:// "
            "URL");
    r = -EINVAL;
    goto out;
  }
  curl_url_get (u, CURLUPART_PORT, &port, 0);
  if (!(*shown = cv_strf ("%s://%s%s%s", scheme, host, port ? ":" : "",
                          port ? port : ""))) {
    r = -ENOMEM;
    goto out;
  }
  if (strcmp (scheme, "http") == 0 && !http_host_allowed (host)) {
    cv_err ("container credentials: " FULL " (%s) is http:// to a host that "
            "is not allowed: plain http only goes to a loopback address, "
            "169.254.170.2, 169.254.170.23 or fd00:ec2::23 (as the AWS SDKs); "
            "use https:// for another host",
            *shown);
    free (*shown);
    *shown = NULL;
    r = -EINVAL;
  }
out:
  curl_free (scheme);
  curl_free (host);
  curl_free (port);
  curl_url_cleanup (u);
  return r;
}

/* The Authorization header line into *line (malloc'd, holds a secret), or
 * NULL when no token is configured. 0, or -errno (logged). */
static int
auth_header (char **line)
{
  const char *file = getenv (TOKEN_FILE), *env = getenv (TOKEN_ENV);
  CLEANUP_KEY struct cv_key *k = NULL;
  const char *tok = NULL, *from = NULL;
  int r;

  *line = NULL;
  if (file && *file) {
    if ((r = cv_aws_read_token_file (file, "container credentials",
                                     "check " TOKEN_FILE
                                     " (on EKS, the Pod Identity agent's "
                                     "projected token)",
                                     TOKEN_MAX, &k))
        < 0)
      return r;
    tok = (const char *) k->b;
    from = TOKEN_FILE;
  } else if (env && *env) {
    tok = env;
    from = TOKEN_ENV;
  } else
    return 0;
  for (const char *c = tok; *c; c++)
    if ((unsigned char) *c < 0x20 || (unsigned char) *c == 0x7f) {
      cv_err ("container credentials: the authorization token from %s holds "
              "a control character (a line break?); it cannot be sent as a "
              "header",
              from);
      return -EINVAL;
    }
  return (*line = cv_strf ("Authorization: %s", tok)) ? 0 : -ENOMEM;
}

/* GET url with up to ATTEMPTS attempts (again when nothing answered or on
 * HTTP 5xx). As imds_get in aws-imds.c. */
static int
get (const char *url, const char *const *headers, struct cv_aws_fetched *res)
{
  struct cv_aws_fetch req = { .method = "GET",
                              .url = url,
                              .allow_http = true,
                              .headers = headers,
                              .connect_timeout_ms = TIMEOUT_MS,
                              .timeout_ms = TIMEOUT_MS };
  long pause = cv_kms_knob_ms ("CV_KMS_RETRY_BASE_MS", PAUSE_MS);

  if (pause < 0) /* a bad knob, reported */
    return -EINVAL;
  return cv_aws_fetch_tries (&req, ATTEMPTS, pause, "container credentials",
                             res);
}

int
cv_aws_container_creds (struct cv_aws_creds *out, char *why, size_t why_len)
{
  static const struct cv_aws_json_names names
      = { "AccessKeyId", "SecretAccessKey", "Token", "Expiration" };
  const char *rel = getenv (RELATIVE), *full = getenv (FULL);
  CLEANUP_FREE char *url = NULL, *shown = NULL, *what = NULL, *source = NULL;
  char *auth = NULL;
  struct cv_aws_fetched res = { 0 };
  json_auto_t *j = NULL;
  int r;

  if (rel && *rel) { /* the SDKs take the relative URI first */
    if (!(url = cv_strf (ECS_HOST "%s%s", rel[0] == '/' ? "" : "/", rel))
        || !(shown = strdup (ECS_HOST " (" RELATIVE ")")))
      return -ENOMEM;
  } else if (full && *full) {
    if ((r = check_full_uri (full, &shown)) < 0)
      return r;
    char *s = cv_strf ("%s (" FULL ")", shown);
    free (shown);
    if (!(shown = s) || !(url = strdup (full)))
      return -ENOMEM;
  } else {
    snprintf (why, why_len, "neither " RELATIVE " nor " FULL " is set");
    return -ENOKEY;
  }
  if (!(what = cv_strf ("container credentials from %s", shown))
      || !(source = cv_strf ("the container credentials endpoint %s", shown)))
    return -ENOMEM;
  if ((r = auth_header (&auth)) < 0)
    return r;
  const char *const hdrs[] = { auth, NULL };
  bool sent_auth = auth != NULL;
  r = get (url, auth ? hdrs : NULL, &res);
  if (auth) {
    cv_wipe (auth, strlen (auth));
    free (auth);
  }
  if (r == -EIO) {
    cv_err ("%s: no answer after %d attempts (%s); check the variable and "
            "that the endpoint runs (ECS agent, EKS Pod Identity agent)",
            what, ATTEMPTS, res.message);
    r = res.curl_code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
    goto out;
  }
  if (r < 0)
    goto out;
  j = json_loadb ((const char *) res.body->b, res.body->len - 1,
                  JSON_REJECT_DUPLICATES, NULL);
  if (res.status != 200) {
    const char *m = json_string_value (json_object_get (j, "message"));
    char msg[200] = "";
    if (!m)
      m = json_string_value (json_object_get (j, "Message"));
    if (m)
      cv_http_sanitise (msg, sizeof msg, m, strlen (m));
    bool denied = res.status == 401 || res.status == 403;
    cv_err ("%s: HTTP %ld%s%s; %s", what, res.status, msg[0] ? ": " : "", msg,
            !denied ? "check the URI's path and the task's or pod's role"
            : sent_auth
                ? "the authorization token was refused: check " TOKEN_FILE
                  " or " TOKEN_ENV
                : "no authorization token was sent: set " TOKEN_FILE
                  " or " TOKEN_ENV);
    r = denied ? -EACCES : -EPROTO;
    goto out;
  }
  if (!json_is_object (j)) {
    cv_err ("%s: the answer is not a JSON object", what);
    r = -EPROTO;
    goto out;
  }
  r = cv_aws_creds_from_json (j, &names, what, source, out);
out:
  cv_aws_fetched_free (&res);
  return r;
}

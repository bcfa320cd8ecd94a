/* One plain HTTP(S) request of a credential source (instance metadata, the
 * container endpoint, STS, the SSO portal), and the same tried a fixed
 * number of times; no signing. The answer is kept in locked memory because
 * it carries credentials. TLS is always verified. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define USER_AGENT "cryptvol/0.1"

void
cv_aws_fetched_free (struct cv_aws_fetched *res)
{
  cv_key_free (res->body);
  res->body = NULL;
}

/* Keep the x-amzn-RequestId of the answer. */
static size_t
on_header (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct cv_aws_fetched *res = opaque;
  static const char rid[] = "x-amzn-requestid:";
  size_t n = size * nmemb, len = n;

  while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
    len--;
  if (len > sizeof rid - 1 && strncasecmp (data, rid, sizeof rid - 1) == 0) {
    const char *v = data + sizeof rid - 1;
    while (v < data + len && *v == ' ')
      v++;
    cv_http_sanitise (res->request_id, sizeof res->request_id, v,
                      len - (size_t) (v - data));
  }
  return n;
}

/* The headers of req as a curl list (wiped by the caller with
 * cv_kms_headers_free), with lines that stop curl adding Accept and Expect. */
static int
header_list (const struct cv_aws_fetch *req, struct curl_slist **out)
{
  static const char *const extra[] = { "Accept:", "Expect:" };
  struct curl_slist *l = NULL, *n;

  for (size_t i = 0; req->headers && req->headers[i]; i++) {
    if (!(n = curl_slist_append (l, req->headers[i])))
      goto nomem;
    l = n;
  }
  for (size_t i = 0; i < ARRAY_SIZE (extra); i++) {
    if (!(n = curl_slist_append (l, extra[i])))
      goto nomem;
    l = n;
  }
  *out = l;
  return 0;
nomem:
  cv_kms_headers_free (l);
  return -ENOMEM;
}

int
cv_aws_fetch (const struct cv_aws_fetch *req, struct cv_aws_fetched *res)
{
  const char *ca = req->ca_bundle ? req->ca_bundle : getenv ("AWS_CA_BUNDLE");
  bool http = strncasecmp (req->url, "http://", 7) == 0;
  char errbuf[CURL_ERROR_SIZE] = "";
  struct cv_http_buf b = { 0 };
  struct curl_slist *hdrs = NULL;
  CURL *e;
  int r;

  *res = (struct cv_aws_fetched){ 0 };
  if ((http && !req->allow_http)
      || (!http && strncasecmp (req->url, "https://", 8) != 0)) {
    cv_err ("%.200s is not an https:// URL%s", req->url,
            req->allow_http ? " or http:// URL" : "");
    return -EINVAL;
  }
  cv_kms_json_wipe_init (); /* the answer is parsed by jansson next */
  if ((r = cv_http_init ()) < 0 || (r = header_list (req, &hdrs)) < 0)
    return r;
  if (!(e = curl_easy_init ())) {
    cv_kms_headers_free (hdrs);
    return -ENOMEM;
  }
  curl_easy_setopt (e, CURLOPT_URL, req->url);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR,
                    req->allow_http ? "http,https" : "https");
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt (e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
  if (ca && *ca)
    curl_easy_setopt (e, CURLOPT_CAINFO, ca);
  /* Instance metadata and container endpoints are link-local or loopback:
   * never through a proxy, which would see their credentials. */
  if (http)
    curl_easy_setopt (e, CURLOPT_NOPROXY, "*");
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
  curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
  curl_easy_setopt (e, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt (e, CURLOPT_CUSTOMREQUEST, req->method);
  if (req->body || strcmp (req->method, "GET") != 0) {
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE_LARGE,
                      (curl_off_t) req->body_len);
  }
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, cv_http_buf_write);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, res);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, errbuf);
  res->curl_code = (int) curl_easy_perform (e);
  if (res->curl_code != CURLE_OK) {
    const char *m = errbuf[0] ? errbuf : curl_easy_strerror (res->curl_code);
    cv_http_sanitise (res->message, sizeof res->message, m, strlen (m));
    r = -EIO;
  } else {
    curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &res->status);
    r = cv_key_new (b.len + 1, &res->body);
    if (r == 0 && b.len)
      memcpy (res->body->b, b.p, b.len);
  }
  curl_easy_cleanup (e);
  cv_kms_headers_free (hdrs);
  cv_http_buf_wipe (&b);
  return r;
}

int
cv_aws_fetch_tries (const struct cv_aws_fetch *req, int attempts, long pause_ms,
                    const char *what, struct cv_aws_fetched *res)
{
  int r = -EIO;

  for (int n = 1; n <= attempts; n++) {
    if (n > 1 && pause_ms > 0)
      cv_kms_sleep_ms (pause_ms);
    cv_aws_fetched_free (res);
    r = cv_aws_fetch (req, res);
    if (r != -EIO && !(r == 0 && res->status >= 500))
      break;
    cv_debug ("%s: %s attempt %d of %d: %s", what, req->method, n, attempts,
              r == 0 ? "a server error" : res->message);
  }
  return r;
}

/* Signed HTTPS calls to AWS KMS (AWS JSON 1.1 over libcurl) with the AWS
 * SDKs' standard retry mode: at most 3 attempts (or as configured),
 * full-jitter exponential backoff capped at 20 s, a process-wide retry
 * quota; and their adaptive mode: the same with a client-side rate limiter
 * that slows down on throttling errors. TLS is always
 * verified. Response bodies (which carry the plaintext DEK) are collected in
 * buffers wiped before they are freed, and jansson frees through a wiping
 * free. curl's own receive buffer and OpenSSL's record buffers are outside
 * our reach (doc/kms.md says so). */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/reqlog.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/kms.h"
#include "keys/providers.h"
#include "keys/sigv4.h"

#define JSON_CT "application/x-amz-json-1.1"
#define RESPONSE_MAX (1 << 20)
#define CONNECT_TIMEOUT_MS 5000
#define TIMEOUT_MS 20000
#define RETRY_BASE_MS 1000
#define USER_AGENT "cryptvol/0.1"

/* --- jansson: wipe every block on free --------------------------------- */

static void
wiping_free (void *p)
{
  if (p) {
    cv_wipe (p, malloc_usable_size (p));
    free (p);
  }
}

static void
install_wiping_free (void)
{
  json_set_alloc_funcs (malloc, wiping_free);
}

void
cv_kms_json_wipe_init (void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;

  pthread_once (&once, install_wiping_free);
}

/* --- curl global state -------------------------------------------------- */

static pthread_mutex_t curl_lock = PTHREAD_MUTEX_INITIALIZER;
static bool curl_ready;

int
cv_http_init (void)
{
  int r = 0;

  pthread_mutex_lock (&curl_lock);
  if (!curl_ready) {
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      cv_err ("kms: libcurl initialisation failed");
      r = -EIO;
    } else
      curl_ready = true;
  }
  pthread_mutex_unlock (&curl_lock);
  return r;
}

void
cv_kms_cleanup (void)
{
  pthread_mutex_lock (&curl_lock);
  if (curl_ready)
    curl_global_cleanup ();
  curl_ready = false;
  pthread_mutex_unlock (&curl_lock);
}

/* --- signed request headers ----------------------------------------------
 */

void
cv_kms_headers_free (struct curl_slist *l)
{
  for (struct curl_slist *i = l; i; i = i->next)
    cv_wipe (i->data, strlen (i->data));
  curl_slist_free_all (l);
}

/* Append "name: value" to *l; false when out of memory (*l is kept). */
static bool
add_header (struct curl_slist **l, const char *name, const char *value)
{
  CLEANUP_FREE char *line = NULL;
  struct curl_slist *n;
  int len
      = asprintf (&line, "%s:%s%s", name, value ? " " : "", value ? value : "");

  if (len < 0) {
    line = NULL;
    return false;
  }
  n = curl_slist_append (*l, line);
  cv_wipe (line, (size_t) len);
  if (!n)
    return false;
  *l = n;
  return true;
}

int
cv_aws_sign_headers (const char *service, const char *content_type,
                     const char *target, const char *host, const char *region,
                     const void *body, size_t len,
                     const struct cv_aws_creds *cr, time_t now,
                     struct curl_slist **headers)
{
  char date[CV_SIGV4_DATE_LEN + 1];
  const char *token = cr->token ? (const char *) cr->token->b : NULL;
  struct cv_sigv4_header h[5] = {
    { "Content-Type", content_type },
    { "Host", host },
    { "X-Amz-Date", date },
  };
  size_t n = 3;
  CLEANUP_FREE char *authz = NULL;
  struct curl_slist *l = NULL;
  int r;

  cv_sigv4_date (now, date);
  if (token)
    h[n++] = (struct cv_sigv4_header){ "X-Amz-Security-Token", token };
  if (target)
    h[n++] = (struct cv_sigv4_header){ "X-Amz-Target", target };
  struct cv_sigv4_request req = {
    .method = "POST",
    .path = "/",
    .headers = h,
    .nheaders = n,
    .body = body,
    .body_len = len,
  };
  struct cv_sigv4_scope scope = {
    .access_key_id = cr->access_key_id,
    .secret = cr->secret,
    .region = region,
    .service = service,
    .amz_date = date,
  };
  if ((r = cv_sigv4_sign (&req, &scope, &authz, NULL, NULL)) < 0)
    return r;
  bool ok = true;
  for (size_t i = 0; ok && i < n; i++)
    ok = add_header (&l, h[i].name, h[i].value);
  ok = ok && add_header (&l, "Authorization", authz)
       && add_header (&l, "Accept", NULL) && add_header (&l, "Expect", NULL);
  if (!ok) {
    cv_kms_headers_free (l);
    return -ENOMEM;
  }
  *headers = l;
  return 0;
}

int
cv_kms_sign_request (const char *host, const char *region, const char *op,
                     const void *body, size_t len,
                     const struct cv_aws_creds *cr, time_t now,
                     struct curl_slist **headers)
{
  char target[96];

  if ((size_t) snprintf (target, sizeof target, "TrentService.%s", op)
      >= sizeof target)
    return -EINVAL;
  return cv_aws_sign_headers ("kms", JSON_CT, target, host, region, body, len,
                              cr, now, headers);
}

/* --- retry policy --------------------------------------------------------
 */

/* Error types never retried, whatever the status says. */
static const char *const never_retry[] = {
  "AccessDeniedException",
  "DisabledException",
  "KMSInvalidStateException",
  "NotFoundException",
  "InvalidCiphertextException",
  "IncorrectKeyException",
  "InvalidKeyUsageException",
  "InvalidSignatureException",
  "UnrecognizedClientException",
  "IncompleteSignatureException",
  "MissingAuthenticationTokenException",
  "ExpiredTokenException",
  "ValidationException",
  "SerializationException",
};

/* Transient error types, as the SDKs list them for standard mode (plus the
 * KMS ones the issue names). */
static const char *const transient[] = {
  "ThrottlingException",      "Throttling",
  "ThrottledException",       "RequestThrottledException",
  "TooManyRequestsException", "RequestLimitExceeded",
  "KMSInternalException",     "DependencyTimeoutException",
  "KeyUnavailableException",  "RequestTimeout",
  "RequestTimeoutException",  "PriorRequestNotComplete",
  "InternalFailure",          "ServiceUnavailable",
};

static bool
listed (const char *const *list, size_t n, const char *type)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (list[i], type) == 0)
      return true;
  return false;
}

enum cv_kms_retry
cv_kms_classify (int curl_code, long status, const char *type)
{
  switch (curl_code) {
  case CURLE_OK:
    break;
  case CURLE_OPERATION_TIMEDOUT:
    return CV_KMS_RETRY_TIMEOUT;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return CV_KMS_RETRY; /* the connection failed or was dropped */
  default:
    return CV_KMS_NO_RETRY; /* TLS trust, bad URL, our own abort... */
  }
  if (status >= 200 && status < 300)
    return CV_KMS_NO_RETRY;
  if (type && *type) {
    if (listed (never_retry, ARRAY_SIZE (never_retry), type))
      return CV_KMS_NO_RETRY;
    if (listed (transient, ARRAY_SIZE (transient), type))
      return CV_KMS_RETRY;
  }
  return status >= 500 || status == 429 ? CV_KMS_RETRY : CV_KMS_NO_RETRY;
}

long
cv_kms_backoff_ms (int attempt, long base_ms, double r)
{
  double cap = (double) base_ms;

  for (int i = 1; i < attempt && cap < CV_KMS_MAX_BACKOFF_MS; i++)
    cap *= 2;
  if (cap > CV_KMS_MAX_BACKOFF_MS)
    cap = CV_KMS_MAX_BACKOFF_MS;
  return (long) (r * cap);
}

static pthread_mutex_t quota_lock = PTHREAD_MUTEX_INITIALIZER;
static int quota = CV_KMS_QUOTA_CAPACITY;

bool
cv_kms_quota_acquire (int cost)
{
  bool ok;

  pthread_mutex_lock (&quota_lock);
  ok = quota >= cost;
  if (ok)
    quota -= cost;
  pthread_mutex_unlock (&quota_lock);
  return ok;
}

void
cv_kms_quota_release (int acquired)
{
  pthread_mutex_lock (&quota_lock);
  quota += acquired > 0 ? acquired : 1;
  if (quota > CV_KMS_QUOTA_CAPACITY)
    quota = CV_KMS_QUOTA_CAPACITY;
  pthread_mutex_unlock (&quota_lock);
}

int
cv_kms_quota_available (void)
{
  int q;

  pthread_mutex_lock (&quota_lock);
  q = quota;
  pthread_mutex_unlock (&quota_lock);
  return q;
}

void
cv_kms_quota_reset (void)
{
  pthread_mutex_lock (&quota_lock);
  quota = CV_KMS_QUOTA_CAPACITY;
  pthread_mutex_unlock (&quota_lock);
}

/* --- the adaptive mode's rate limiter ------------------------------------
 * botocore's retries/adaptive.py, bucket.py and throttling.py (the SDKs'
 * retry behaviour spec), for one process. */

#define RATE_MIN 0.5        /* the bucket's least fill rate (requests/s) */
#define CUBIC_SCALE 0.4     /* CUBIC's C */
#define CUBIC_BETA 0.7      /* the rate kept after a throttling error */
#define CLOCK_SMOOTHING 0.8 /* of the measured sending rate */
#define CLOCK_BUCKET 0.5    /* the measured rate is updated every 0.5 s */

static const char *const throttling[] = {
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottledException",
  "TooManyRequestsException",
  "ProvisionedThroughputExceededException",
  "TransactionInProgressException",
  "RequestLimitExceeded",
  "BandwidthLimitExceeded",
  "LimitExceededException",
  "RequestThrottled",
  "SlowDown",
  "PriorRequestNotComplete",
  "EC2ThrottledException",
};

static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  bool on;             /* a throttling error was seen */
  double fill, cap;    /* the bucket: fill rate, capacity */
  double tokens, last; /* tokens (negative: owed by waiting requests) */
  double w_max, k;     /* CUBIC: the rate at the last throttle, its zero */
  double last_fail;    /* when that was */
  double measured;     /* the smoothed sending rate */
  double clock_bucket; /* the start of the current measuring bucket */
  unsigned count;      /* answers in it */
  bool ready;
} rate;

/* The bucket's tokens brought up to now. */
static void
rate_refill (double now)
{
  if (now > rate.last) {
    rate.tokens += (now - rate.last) * rate.fill;
    if (rate.tokens > rate.cap)
      rate.tokens = rate.cap;
    rate.last = now;
  }
}

/* A new fill rate for the bucket, from now on. */
static void
rate_set_fill (double r, double now)
{
  rate_refill (now);
  rate.fill = r > RATE_MIN ? r : RATE_MIN;
  rate.cap = r >= 1 ? r : 1;
  if (rate.tokens > rate.cap)
    rate.tokens = rate.cap;
}

/* Reset, with rate_lock held. */
static void
rate_reset_locked (double now)
{
  rate = (typeof (rate)){ .last = now, .last_fail = now, .ready = true };
  rate.clock_bucket = floor (now / CLOCK_BUCKET) * CLOCK_BUCKET;
  rate_set_fill (1, now);
}

void
cv_kms_rate_reset (double now)
{
  pthread_mutex_lock (&rate_lock);
  rate_reset_locked (now);
  pthread_mutex_unlock (&rate_lock);
}

bool
cv_kms_throttling (const char *type)
{
  return type && listed (throttling, ARRAY_SIZE (throttling), type);
}

double
cv_kms_rate_acquire (double now)
{
  double wait = 0;

  pthread_mutex_lock (&rate_lock);
  if (!rate.ready)
    rate_reset_locked (now);
  if (rate.on) {
    rate_refill (now);
    if (rate.tokens < 1)
      wait = (1 - rate.tokens) / rate.fill;
    rate.tokens -= 1; /* taken now, or owed until the wait is over */
  }
  pthread_mutex_unlock (&rate_lock);
  return wait;
}

void
cv_kms_rate_update (bool throttled, double now)
{
  double r;

  pthread_mutex_lock (&rate_lock);
  if (!rate.ready)
    rate_reset_locked (now);
  /* The sending rate, measured over 0.5 s buckets and smoothed. */
  double bucket = floor (now / CLOCK_BUCKET) * CLOCK_BUCKET;
  rate.count++;
  if (bucket > rate.clock_bucket) {
    double current = rate.count / (bucket - rate.clock_bucket);
    rate.measured
        = current * CLOCK_SMOOTHING + rate.measured * (1 - CLOCK_SMOOTHING);
    rate.count = 0;
    rate.clock_bucket = bucket;
  }
  if (!throttled)
    /* CUBIC: back towards w_max, then beyond it. */
    r = CUBIC_SCALE * pow (now - rate.last_fail - rate.k, 3) + rate.w_max;
  else {
    rate.w_max
        = rate.on && rate.fill < rate.measured ? rate.fill : rate.measured;
    rate.k = cbrt (rate.w_max * (1 - CUBIC_BETA) / CUBIC_SCALE);
    rate.last_fail = now;
    r = rate.w_max * CUBIC_BETA;
    rate.on = true;
  }
  rate_set_fill (r < 2 * rate.measured ? r : 2 * rate.measured, now);
  pthread_mutex_unlock (&rate_lock);
}

double
cv_kms_rate_fill (bool *on)
{
  double f;

  pthread_mutex_lock (&rate_lock);
  f = rate.ready ? rate.fill : 1;
  *on = rate.on;
  pthread_mutex_unlock (&rate_lock);
  return f;
}

const char *
cv_kms_no_retry_why (enum cv_kms_retry how, int n, int max, int cost,
                     bool *quota_exhausted)
{
  if (how == CV_KMS_NO_RETRY)
    return "not a retryable error";
  if (n == max)
    return "no attempts left";
  if (!cv_kms_quota_acquire (cost)) {
    *quota_exhausted = true;
    return "the retry quota is exhausted";
  }
  return NULL;
}

long
cv_kms_knob_ms (const char *name, long def)
{
  const char *s = getenv (name);
  char *end;
  long v;

  if (!s || !*s)
    return def;
  errno = 0;
  v = strtol (s, &end, 10);
  if (errno || *end || v < 1 || v > 600000) {
    cv_err ("kms: %s=%.20s is not a number of milliseconds in 1..600000", name,
            s);
    return -1;
  }
  return v;
}

double
cv_kms_jitter (void)
{
  uint32_t u = 0;

  if (cv_random (&u, sizeof u) < 0)
    u = (uint32_t) rand ();
  return u / 4294967296.0;
}

void
cv_kms_sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Seconds on the monotonic clock. */
static double
mono_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- one call ------------------------------------------------------------ */

void
cv_http_buf_wipe (struct cv_http_buf *b)
{
  if (b->p) {
    cv_wipe (b->p, b->cap);
    free (b->p);
  }
  *b = (struct cv_http_buf){ 0 };
}

size_t
cv_http_buf_write (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct cv_http_buf *b = opaque;
  size_t n = size * nmemb;

  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    if (cap > RESPONSE_MAX)
      return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    char *p = malloc (cap);
    if (!p)
      return 0;
    if (b->p) {
      memcpy (p, b->p, b->len);
      cv_wipe (b->p, b->cap);
      free (b->p);
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy (b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
  return n;
}

void
cv_http_sanitise (char *out, size_t outlen, const char *s, size_t len)
{
  size_t o = 0;

  for (size_t i = 0; i < len && o + 1 < outlen; i++) {
    unsigned char c = (unsigned char) s[i];
    out[o++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
  }
  out[o] = '\0';
}

/* Take the request id and the error type from response headers (kms.h). */
size_t
cv_kms_header_line (char *data, size_t size, size_t nmemb, void *opaque)
{
  struct cv_kms_result *res = opaque;
  size_t n = size * nmemb, len = n;
  static const char rid[] = "x-amzn-requestid:", etype[] = "x-amzn-errortype:";
  const char *v, *end;

  /* data is not NUL-terminated (curl's header callback): every scan stops
   * at end. */
  while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
    len--;
  end = data + len;
  if (len > sizeof rid - 1 && strncasecmp (data, rid, sizeof rid - 1) == 0) {
    for (v = data + sizeof rid - 1; v < end && *v == ' '; v++)
      ;
    cv_http_sanitise (res->request_id, sizeof res->request_id, v,
                      (size_t) (end - v));
  } else if (len > sizeof etype - 1
             && strncasecmp (data, etype, sizeof etype - 1) == 0
             && !res->type[0]) {
    size_t tl = 0;
    for (v = data + sizeof etype - 1; v < end && *v == ' '; v++)
      ;
    /* "Type:http://...": the type ends at a colon (or a NUL or line end,
     * as before). */
    while (v + tl < end && v[tl] && !strchr (":\r\n", v[tl]))
      tl++;
    cv_http_sanitise (res->type, sizeof res->type, v, tl);
  }
  return n;
}

/* Fill res->type and res->message from an error body. The type may come as
 * "namespace#Type"; only Type is kept. */
static void
parse_error (const struct cv_http_buf *b, struct cv_kms_result *res)
{
  json_auto_t *j = b->len ? json_loadb (b->p, b->len, 0, NULL) : NULL;
  const char *type = json_string_value (json_object_get (j, "__type"));
  const char *msg = json_string_value (json_object_get (j, "message"));

  if (!msg)
    msg = json_string_value (json_object_get (j, "Message"));
  if (type) {
    const char *hash = strrchr (type, '#');
    type = hash ? hash + 1 : type;
    cv_http_sanitise (res->type, sizeof res->type, type, strcspn (type, ":"));
  }
  if (msg)
    cv_http_sanitise (res->message, sizeof res->message, msg, strlen (msg));
  if (!res->type[0])
    snprintf (res->type, sizeof res->type, "HTTP %ld", res->status);
}

/* What attempt_once does with an answer that came (kms.h). */
int
cv_kms_answer_read (long status, const char *body, size_t len,
                    struct cv_kms_result *res)
{
  const struct cv_http_buf b = { (char *) body, len, len };

  res->status = status;
  if (status >= 200 && status < 300) {
    json_error_t err;
    res->type[0] = '\0';
    /* Operations with no result (RevokeGrant, RetireGrant) may answer
     * with an empty body. */
    res->body = len == 0 ? json_object ()
                         : json_loadb (body, len, JSON_REJECT_DUPLICATES, &err);
    if (json_is_object (res->body))
      return 0;
    json_decref (res->body);
    res->body = NULL;
    snprintf (res->message, sizeof res->message,
              "the answer (HTTP %ld) is not a JSON object", status);
  } else
    parse_error (&b, res);
  return -EIO;
}

/* One attempt on handle e (already set up for the call). Returns the retry
 * class of its outcome; res->body is set on success. */
static enum cv_kms_retry
attempt_once (CURL *e, const struct cv_kms_call *c, struct cv_kms_result *res,
              int *rc)
{
  struct curl_slist *hdrs = NULL;
  struct cv_http_buf b = { 0 };
  char errbuf[CURL_ERROR_SIZE] = "";
  enum cv_kms_retry how;

  res->status = 0;
  res->type[0] = res->message[0] = res->request_id[0] = '\0';
  *rc = cv_kms_sign_request (c->host, c->region, c->op, c->body, c->body_len,
                             c->creds, time (NULL), &hdrs);
  if (*rc < 0)
    return CV_KMS_NO_RETRY;
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, res);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, errbuf);
  res->curl_code = (int) curl_easy_perform (e);
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, NULL);
  cv_kms_headers_free (hdrs);
  *rc = -EIO;
  if (res->curl_code != CURLE_OK) {
    const char *m = errbuf[0] ? errbuf : curl_easy_strerror (res->curl_code);
    cv_http_sanitise (res->message, sizeof res->message, m, strlen (m));
    res->type[0] = '\0';
  } else {
    long status;
    curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &status);
    *rc = cv_kms_answer_read (status, b.p, b.len, res);
  }
  cv_http_buf_wipe (&b);
  how = cv_kms_classify (res->curl_code, res->status, res->type);
  return *rc == 0 ? CV_KMS_NO_RETRY : how;
}

/* What failed, for the debug line of an attempt. */
static const char *
attempt_error (const struct cv_kms_result *res)
{
  return res->type[0] ? res->type : res->message;
}

int
cv_aws_retried (const char *svc, const char *op, int max, bool adaptive,
                int (*attempt) (void *arg, struct cv_aws_attempt *a), void *arg,
                int *attempts, bool *quota_exhausted)
{
  long base = cv_kms_knob_ms ("CV_KMS_RETRY_BASE_MS", RETRY_BASE_MS);
  int acquired = 0, rc = -EIO;

  if (base < 0) /* a bad knob, reported */
    return -EINVAL;
  if (max <= 0)
    max = CV_KMS_MAX_ATTEMPTS;
  for (int n = 1; n <= max; n++) {
    struct cv_aws_attempt a = { CV_KMS_NO_RETRY, "", 0, "", false };
    if (adaptive) {
      long wait = (long) (cv_kms_rate_acquire (mono_s ()) * 1000);
      if (wait > 0) {
        cv_debug ("%s: %s attempt %d waits %ld ms for the adaptive retry "
                  "mode's rate limit",
                  svc, op, n, wait);
        cv_kms_sleep_ms (wait);
      }
    }
    rc = attempt (arg, &a);
    if (adaptive && (rc == 0 || rc == -EIO)) /* an answer or none */
      cv_kms_rate_update (a.throttled, mono_s ());
    const char *rid = a.request_id[0] ? a.request_id : "none";
    int cost = a.how == CV_KMS_RETRY_TIMEOUT ? CV_KMS_TIMEOUT_RETRY_COST
                                             : CV_KMS_RETRY_COST;
    *attempts = n;
    if (rc == 0) {
      cv_kms_quota_release (acquired);
      cv_debug ("%s: %s succeeded on attempt %d of %d (request id %s)", svc, op,
                n, max, rid);
      return 0;
    }
    if (rc != -EIO) /* a local failure: nothing was sent */
      return rc;
    const char *why
        = cv_kms_no_retry_why (a.how, n, max, cost, quota_exhausted);
    if (why) {
      cv_debug ("%s: %s attempt %d of %d failed: %s (HTTP %ld, request id "
                "%s); %s",
                svc, op, n, max, a.what, a.status, rid, why);
      return rc;
    }
    acquired = cost;
    long ms = cv_kms_backoff_ms (n, base, cv_kms_jitter ());
    cv_debug ("%s: %s attempt %d of %d failed: %s (HTTP %ld, request id %s); "
              "retrying in %ld ms",
              svc, op, n, max, a.what, a.status, rid, ms);
    cv_kms_sleep_ms (ms);
  }
  return rc;
}

/* One KMS attempt, for cv_aws_retried. */
struct kms_attempt {
  CURL *e;
  const struct cv_kms_call *c;
  struct cv_kms_result *res;
};

static int
kms_attempt (void *arg, struct cv_aws_attempt *a)
{
  struct kms_attempt *k = arg;
  int rc;

  a->how = attempt_once (k->e, k->c, k->res, &rc);
  if (k->res->request_id[0])
    cv_reqlog_add ("kms", k->c->op, k->res->request_id);
  a->what = attempt_error (k->res);
  a->status = k->res->status;
  a->request_id = k->res->request_id;
  a->throttled = cv_kms_throttling (k->res->type);
  return rc;
}

int
cv_kms_call (const struct cv_kms_call *c, struct cv_kms_result *res)
{
  long connect_ms
      = cv_kms_knob_ms ("CV_KMS_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS);
  long total_ms = cv_kms_knob_ms ("CV_KMS_TIMEOUT_MS", TIMEOUT_MS);
  const char *ca = c->ca_bundle ? c->ca_bundle : getenv ("AWS_CA_BUNDLE");
  int rc;
  CURL *e;

  *res = (struct cv_kms_result){ 0 };
  if (connect_ms < 0 || total_ms < 0)
    return -EINVAL;
  cv_kms_json_wipe_init ();
  if ((rc = cv_http_init ()) < 0)
    return rc;
  if (!(e = curl_easy_init ()))
    return -ENOMEM;
  curl_easy_setopt (e, CURLOPT_URL, c->url);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt (e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
  if (ca && *ca)
    curl_easy_setopt (e, CURLOPT_CAINFO, ca);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt (e, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt (e, CURLOPT_POST, 1L);
  curl_easy_setopt (e, CURLOPT_POSTFIELDS, c->body);
  curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) c->body_len);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, cv_http_buf_write);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, cv_kms_header_line);

  struct kms_attempt ka = { e, c, res };
  rc = cv_aws_retried ("kms", c->op, c->max_attempts, c->adaptive, kms_attempt,
                       &ka, &res->attempts, &res->quota_exhausted);
  curl_easy_cleanup (e);
  return rc;
}

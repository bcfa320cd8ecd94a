/* The KMS provider's retries, as the AWS SDKs' standard mode: which outcomes
 * are retried, the full-jitter backoff, the retry quota, and the retry loop
 * itself against local sockets that refuse or never answer (3 attempts, or
 * as many as configured, every retry in the debug output, bounded time).
 * The adaptive mode's rate limiter on a clock of the test's own (CUBIC cut
 * and recovery, the token bucket's waits) and in the loop. Also the wiping
 * JSON allocator. */
#include <arpa/inet.h>
#include <math.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/kms.h"

#define SECRET "retry-test-secret-AAAAAAAAAAAAAAAAAAAAAAAAA"

static void
check_classify (void)
{
  static const char *const never[] = {
    "AccessDeniedException",      "DisabledException",
    "KMSInvalidStateException",   "NotFoundException",
    "InvalidCiphertextException", "IncorrectKeyException",
    "InvalidSignatureException",  "UnrecognizedClientException",
    "ValidationException",
  };
  static const char *const retry[] = {
    "ThrottlingException",        "KMSInternalException",
    "DependencyTimeoutException", "KeyUnavailableException",
    "TooManyRequestsException",
  };

  for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
    CHECK (cv_kms_classify (CURLE_OK, 400, never[i]) == CV_KMS_NO_RETRY,
           "%s is not retried", never[i]);
    CHECK (cv_kms_classify (CURLE_OK, 500, never[i]) == CV_KMS_NO_RETRY,
           "%s is not retried even with a 5xx", never[i]);
  }
  for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
    CHECK (cv_kms_classify (CURLE_OK, 400, retry[i]) == CV_KMS_RETRY,
           "%s is retried", retry[i]);
  CHECK (cv_kms_classify (CURLE_OK, 500, "HTTP 500") == CV_KMS_RETRY, "500");
  CHECK (cv_kms_classify (CURLE_OK, 502, "") == CV_KMS_RETRY, "502");
  CHECK (cv_kms_classify (CURLE_OK, 503, "") == CV_KMS_RETRY, "503");
  CHECK (cv_kms_classify (CURLE_OK, 504, "") == CV_KMS_RETRY, "504");
  CHECK (cv_kms_classify (CURLE_OK, 429, "") == CV_KMS_RETRY, "429");
  CHECK (cv_kms_classify (CURLE_OK, 400, "SomethingElse") == CV_KMS_NO_RETRY,
         "an unknown 4xx is not retried");
  CHECK (cv_kms_classify (CURLE_OK, 200, "") == CV_KMS_NO_RETRY, "200");
  CHECK (cv_kms_classify (CURLE_OPERATION_TIMEDOUT, 0, "")
             == CV_KMS_RETRY_TIMEOUT,
         "timeouts are retried at the timeout cost");
  CHECK (cv_kms_classify (CURLE_COULDNT_CONNECT, 0, "") == CV_KMS_RETRY,
         "connection refused");
  CHECK (cv_kms_classify (CURLE_GOT_NOTHING, 0, "") == CV_KMS_RETRY,
         "connection dropped without an answer");
  CHECK (cv_kms_classify (CURLE_RECV_ERROR, 0, "") == CV_KMS_RETRY,
         "connection reset");
  CHECK (cv_kms_classify (CURLE_COULDNT_RESOLVE_HOST, 0, "") == CV_KMS_RETRY,
         "DNS failure");
  CHECK (cv_kms_classify (CURLE_PEER_FAILED_VERIFICATION, 0, "")
             == CV_KMS_NO_RETRY,
         "an untrusted certificate is not retried");
  CHECK (cv_kms_classify (CURLE_WRITE_ERROR, 0, "") == CV_KMS_NO_RETRY,
         "an oversized answer is not retried");
}

static void
check_backoff (void)
{
  static const long cap[] = { 0, 1000, 2000, 4000, 8000, 16000, 20000, 20000 };

  for (int n = 1; n < 8; n++) {
    CHECK (cv_kms_backoff_ms (n, 1000, 0.0) == 0, "r = 0 waits 0");
    long hi = cv_kms_backoff_ms (n, 1000, 0.999999);
    CHECK (hi <= cap[n] && hi >= cap[n] - 1, "attempt %d: max %ld, want %ld", n,
           hi, cap[n]);
    CHECK (cv_kms_backoff_ms (n, 1000, 0.5) == cap[n] / 2, "attempt %d: half",
           n);
  }
  CHECK (cv_kms_backoff_ms (40, 1000, 0.999) <= CV_KMS_MAX_BACKOFF_MS,
         "never above 20 s");
  CHECK (cv_kms_backoff_ms (2, 10, 0.999) <= 20, "the base scales it");
}

static void
check_quota (void)
{
  int n = 0;

  cv_kms_quota_reset ();
  CHECK (cv_kms_quota_available () == 500, "capacity 500");
  while (cv_kms_quota_acquire (CV_KMS_RETRY_COST))
    n++;
  CHECK (n == 100, "500 / 5 = 100 retries, got %d", n);
  CHECK (!cv_kms_quota_acquire (CV_KMS_RETRY_COST), "then refused");
  cv_kms_quota_release (0);
  CHECK (cv_kms_quota_available () == 1, "a success without retry gives 1");
  cv_kms_quota_release (CV_KMS_TIMEOUT_RETRY_COST);
  CHECK (cv_kms_quota_available () == 11, "a retried success gives back 10");
  CHECK (cv_kms_quota_acquire (CV_KMS_TIMEOUT_RETRY_COST)
             && cv_kms_quota_available () == 1,
         "a timeout retry costs 10");
  cv_kms_quota_reset ();
  cv_kms_quota_release (5);
  CHECK (cv_kms_quota_available () == 500, "never above capacity");
}

/* A loopback TCP socket: listening (silent: the handshake completes in the
 * kernel, nothing ever answers) or closed (connections refused). */
static int
loopback (bool listening, int *port)
{
  struct sockaddr_in sa
      = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0
      || getsockname (fd, (struct sockaddr *) &sa, &sl) < 0
      || (listening && listen (fd, 8) < 0))
    return -1;
  *port = ntohs (sa.sin_port);
  if (!listening) {
    close (fd);
    return 0;
  }
  return fd;
}

static double
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Count the lines of the log containing s. */
static int
count_logged (const char *s)
{
  int n = 0;

  for (const char *p = harness_logged (); (p = strstr (p, s)); p++)
    n++;
  return n;
}

static int
call_port_with (int port, int max_attempts, bool adaptive,
                struct cv_kms_result *res)
{
  CLEANUP_KEY struct cv_key *secret = NULL;
  char url[64], host[64];

  cv_key_from (SECRET, strlen (SECRET), &secret);
  snprintf (url, sizeof url, "https://127.0.0.1:%d/", port);
  snprintf (host, sizeof host, "127.0.0.1:%d", port);
  struct cv_aws_creds cr = { .access_key_id = (char *) "AKIATEST",
                             .secret = secret,
                             .source = (char *) "test" };
  struct cv_kms_call c = { .op = "DescribeKey",
                           .url = url,
                           .host = host,
                           .region = "us-east-1",
                           .creds = &cr,
                           .body = "{}",
                           .body_len = 2,
                           .max_attempts = max_attempts,
                           .adaptive = adaptive };
  return cv_kms_call (&c, res);
}

static int
call_port (int port, struct cv_kms_result *res)
{
  return call_port_with (port, 0, false, res);
}

static void
check_loop (void)
{
  struct cv_kms_result res;
  int port, fd;
  double t0;

  cv_log_set_debug (true);
  setenv ("CV_KMS_RETRY_BASE_MS", "20", 1);

  /* Refused: retried twice (quota 5 each), then given up. */
  cv_kms_quota_reset ();
  harness_log_clear ();
  CHECK (loopback (false, &port) == 0, "closed port");
  t0 = now_s ();
  CHECK (call_port (port, &res) == -EIO, "refused call fails");
  CHECK (res.attempts == 3, "3 attempts, got %d", res.attempts);
  CHECK (res.curl_code == CURLE_COULDNT_CONNECT && res.status == 0, "curl %d",
         res.curl_code);
  CHECK (count_logged ("kms: DescribeKey attempt") == 3
             && count_logged ("retrying in") == 2
             && strstr (harness_logged (), "attempt 3 of 3 failed")
             && strstr (harness_logged (), "no attempts left"),
         "every attempt in the debug log:\n%s", harness_logged ());
  CHECK (cv_kms_quota_available () == 490, "two retries cost 10, left %d",
         cv_kms_quota_available ());
  CHECK (now_s () - t0 < 5, "bounded time");

  /* Silent: each attempt times out; timeout retries cost 10. */
  setenv ("CV_KMS_TIMEOUT_MS", "200", 1);
  cv_kms_quota_reset ();
  harness_log_clear ();
  fd = loopback (true, &port);
  CHECK (fd >= 0, "listening socket");
  t0 = now_s ();
  CHECK (call_port (port, &res) == -EIO, "silent server fails");
  double took = now_s () - t0;
  CHECK (res.attempts == 3 && res.curl_code == CURLE_OPERATION_TIMEDOUT,
         "3 timed-out attempts: %d, curl %d", res.attempts, res.curl_code);
  CHECK (took >= 0.6 && took < 5, "3 x 200 ms timeouts took %.2f s", took);
  CHECK (cv_kms_quota_available () == 480, "two timeout retries cost 20");
  close (fd);
  unsetenv ("CV_KMS_TIMEOUT_MS");

  /* An exhausted quota stops retries at once. */
  while (cv_kms_quota_acquire (CV_KMS_RETRY_COST))
    ;
  harness_log_clear ();
  CHECK (loopback (false, &port) == 0, "closed port");
  CHECK (call_port (port, &res) == -EIO && res.attempts == 1
             && res.quota_exhausted,
         "no retry without quota: %d attempts", res.attempts);
  CHECK (strstr (harness_logged (), "retry quota is exhausted"), "said: %s",
         harness_logged ());
  cv_kms_quota_reset ();

  /* As many attempts as configured (AWS_MAX_ATTEMPTS, max_attempts). */
  cv_kms_quota_reset ();
  harness_log_clear ();
  CHECK (call_port_with (port, 5, false, &res) == -EIO && res.attempts == 5,
         "5 attempts: %d", res.attempts);
  CHECK (count_logged ("retrying in") == 4
             && strstr (harness_logged (), "attempt 5 of 5 failed")
             && strstr (harness_logged (), "no attempts left"),
         "5 attempts logged:\n%s", harness_logged ());
  harness_log_clear ();
  CHECK (call_port_with (port, 1, false, &res) == -EIO && res.attempts == 1,
         "1 attempt: %d", res.attempts);
  CHECK (strstr (harness_logged (), "attempt 1 of 1 failed")
             && !strstr (harness_logged (), "retrying in"),
         "no retry:\n%s", harness_logged ());

  /* Adaptive: no wait until throttled; then the limiter makes the
   * attempts wait. The limiter runs on the monotonic clock, as now_s. */
  double now = now_s ();
  cv_kms_rate_reset (now - 2);
  harness_log_clear ();
  CHECK (call_port_with (port, 2, true, &res) == -EIO && res.attempts == 2,
         "adaptive: 2 attempts");
  CHECK (!strstr (harness_logged (), "rate limit"),
         "no wait before a "
         "throttle:\n%s",
         harness_logged ());
  now = now_s ();
  cv_kms_rate_reset (now - 2);
  for (int i = 0; i < 100; i++) /* 50 answers a second */
    cv_kms_rate_update (false, now - 2 + i * 0.02);
  cv_kms_rate_update (true, now);
  while (cv_kms_rate_acquire (now) == 0) /* use the tokens up */
    ;
  harness_log_clear ();
  t0 = now_s ();
  CHECK (call_port_with (port, 1, true, &res) == -EIO, "adaptive, throttled");
  CHECK (strstr (harness_logged (), "attempt 1 waits")
             && strstr (harness_logged (),
                        "for the adaptive retry mode's rate limit"),
         "the wait is logged:\n%s", harness_logged ());
  CHECK (now_s () - t0 < 2, "a short wait at ~35 requests a second: %.2f s",
         now_s () - t0);
  cv_kms_rate_reset (now_s ());

  /* A bad knob is refused, not ignored. */
  setenv ("CV_KMS_RETRY_BASE_MS", "soon", 1);
  harness_log_clear ();
  CHECK (call_port (port, &res) == -EINVAL, "bad knob");
  CHECK (strstr (harness_logged (), "CV_KMS_RETRY_BASE_MS"), "named: %s",
         harness_logged ());
  unsetenv ("CV_KMS_RETRY_BASE_MS");
  CHECK (!strstr (harness_logged (), SECRET), "secret logged");
}

/* Tell n answers at rate a second from t on to the limiter, the last
 * throttled when throttle is set; the time after them. */
static double
answers (double t, int n, double per_s, bool throttle)
{
  for (int i = 0; i < n; i++) {
    t += 1 / per_s;
    cv_kms_rate_update (throttle && i == n - 1, t);
  }
  return t;
}

static void
check_limiter (void)
{
  static const char *const th[]
      = { "ThrottlingException", "Throttling", "TooManyRequestsException",
          "SlowDown", "RequestLimitExceeded" };
  static const char *const not_th[]
      = { "KMSInternalException", "ServiceUnavailable", "", "HTTP 429" };
  bool on;
  double t = 1000, fill, w_max;

  for (size_t i = 0; i < sizeof th / sizeof th[0]; i++)
    CHECK (cv_kms_throttling (th[i]), "%s throttles", th[i]);
  for (size_t i = 0; i < sizeof not_th / sizeof not_th[0]; i++)
    CHECK (!cv_kms_throttling (not_th[i]), "%s does not throttle", not_th[i]);

  /* Off until a throttling error: no waits at any rate. */
  cv_kms_rate_reset (t);
  t = answers (t, 30, 10, false);
  fill = cv_kms_rate_fill (&on);
  CHECK (!on, "off before a throttle");
  for (int i = 0; i < 100; i++)
    CHECK (cv_kms_rate_acquire (t) == 0, "no wait while off");

  /* A throttle at ~10 requests a second: 0.7 of that. */
  t = answers (t, 10, 10, true);
  fill = cv_kms_rate_fill (&on);
  CHECK (on && fill > 0.7 * 9 && fill < 0.7 * 11,
         "fill %.2f after a throttle at 10/s", fill);
  w_max = fill / 0.7;

  /* The bucket holds at most fill tokens: then each waits 1/fill more. */
  double w = 0, prev = 0;
  int free_ = 0;
  for (int i = 0; i < 20; i++) {
    prev = w;
    w = cv_kms_rate_acquire (t);
    free_ += w == 0;
  }
  CHECK (free_ <= (int) fill + 1, "%d tokens at once, fill %.2f", free_, fill);
  CHECK (fabs (w - prev - 1 / fill) < 1e-9 && w > 1,
         "waits grow by 1/fill: %.3f then %.3f", prev, w);

  /* CUBIC: at 10/s the rate climbs back to w_max at k seconds after the
   * throttle, slowly near it, then beyond it up to twice the measured
   * rate. */
  double k = cbrt (w_max * (1 - 0.7) / 0.4), fail = t;
  t = answers (t, (int) (k / 2 * 10), 10, false);
  fill = cv_kms_rate_fill (&on);
  CHECK (fill > 0.7 * w_max && fill < w_max, "half way: %.2f < %.2f", fill,
         w_max);
  while (t + 0.1 < fail + k)
    t = answers (t, 1, 10, false);
  cv_kms_rate_update (false, fail + k);
  fill = cv_kms_rate_fill (&on);
  CHECK (fabs (fill - w_max) < 1e-6, "back at w_max at k: %.4f, %.4f", fill,
         w_max);
  t = answers (fail + k, 100, 10, false);
  fill = cv_kms_rate_fill (&on);
  CHECK (fill > 1.5 * w_max && fill < 2 * 11, "beyond: %.2f", fill);

  /* Throttled again while on: the least of the measured and the fill
   * rate; never below 0.5 a second. */
  for (int i = 0; i < 20; i++)
    t = answers (t, 1, 0.2, true);
  fill = cv_kms_rate_fill (&on);
  CHECK (fill == 0.5, "at least 0.5 a second: %.3f", fill);
  CHECK (fabs (cv_kms_rate_acquire (t + 100) - 0) < 1e-9
             && fabs (cv_kms_rate_acquire (t + 100) - 2) < 1e-9,
         "one token in the bucket at 0.5/s, then a 2 s wait");
  cv_kms_rate_reset (t);
  cv_kms_rate_fill (&on);
  CHECK (!on, "reset turns it off");
}

static void
check_wipe_alloc (void)
{
  json_malloc_t m;
  json_free_t f;
  json_t *before = json_string ("allocated before the wiping free");

  cv_kms_json_wipe_init ();
  json_get_alloc_funcs (&m, &f);
  CHECK (f != NULL && f != free, "jansson frees through the wiping free");
  json_decref (before); /* a block from before is freed correctly */
  json_t *j = json_pack ("{s:s}", "Plaintext", "c2VjcmV0");
  char *s = json_dumps (j, JSON_COMPACT);
  CHECK (s && strcmp (s, "{\"Plaintext\":\"c2VjcmV0\"}") == 0, "dump");
  free (s);
  json_decref (j);
}

int
main (void)
{
  harness_init ();
  check_classify ();
  check_backoff ();
  check_quota ();
  check_limiter ();
  check_loop ();
  check_wipe_alloc ();
  return harness_done ("test-keys-kms-retry");
}

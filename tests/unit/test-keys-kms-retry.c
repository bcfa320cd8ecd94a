/* The KMS provider's retries, as the AWS SDKs' standard mode: which outcomes
 * are retried, the full-jitter backoff, the retry quota, and the retry loop
 * itself against local sockets that refuse or never answer (3 attempts,
 * every retry in the debug output, bounded time). Also the wiping JSON
 * allocator. */
#include <arpa/inet.h>
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
call_port (int port, struct cv_kms_result *res)
{
  CLEANUP_KEY struct cv_key *secret = NULL;
  char url[64], host[64];

  cv_key_from (SECRET, strlen (SECRET), &secret);
  snprintf (url, sizeof url, "https://127.0.0.1:%d/", port);
  snprintf (host, sizeof host, "127.0.0.1:%d", port);
  struct cv_aws_creds cr = { .access_key_id = (char *) "AKIATEST",
                             .secret = secret,
                             .source = (char *) "test" };
  struct cv_kms_call c
      = { "DescribeKey", url, host, "us-east-1", NULL, &cr, "{}", 2 };
  return cv_kms_call (&c, res);
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

  /* A bad knob is refused, not ignored. */
  setenv ("CV_KMS_RETRY_BASE_MS", "soon", 1);
  harness_log_clear ();
  CHECK (call_port (port, &res) == -EINVAL, "bad knob");
  CHECK (strstr (harness_logged (), "CV_KMS_RETRY_BASE_MS"), "named: %s",
         harness_logged ());
  unsetenv ("CV_KMS_RETRY_BASE_MS");
  CHECK (!strstr (harness_logged (), SECRET), "secret logged");
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
  check_loop ();
  check_wipe_alloc ();
  return harness_done ("test-keys-kms-retry");
}

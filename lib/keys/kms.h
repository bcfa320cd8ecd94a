/* The pieces of the AWS KMS provider, internal to lib/keys and exposed for
 * the unit tests:
 *   kms.c        the provider's operations, key references, error messages,
 *                where a call goes and how its failure is reported
 *   kms-grants.c grants on a volume's key (kms-grants.h)
 *   kms-creds.c  the AWS credential chain (environment, shared credentials
 *                file)
 *   kms-http.c   signed HTTPS calls (AWS JSON 1.1) with the AWS SDKs'
 *                standard and adaptive retry modes, and the wiping JSON
 *                allocator
 *   sigv4.c      the request signer (sigv4.h)
 * doc/kms.md describes the behaviour for operators. */
#ifndef CV_KMS_H
#define CV_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

struct cv_key;
struct cv_creds;

/* --- Credentials (kms-creds.c) ------------------------------------------ */

struct cv_aws_creds {
  char *access_key_id;
  struct cv_key *secret; /* secret access key (no NUL) */
  struct cv_key *token;  /* session token followed by a NUL (len counts it),
                            or NULL */
  char *source;          /* where they came from, for messages */
  time_t expires;        /* when temporary credentials expire; 0: never */
};

/* A copy of the process's AWS credentials (lib/keys/aws.h: the SDKs'
 * default chain), taken from a cache and resolved again ahead of their
 * expiry. Returns 0 (free with cv_aws_creds_free), -ENOKEY when no source
 * gives any (every source and why is logged), -EKEYEXPIRED when a source
 * is configured but failed (logged: what and why), -ENOMEM. Both are
 * transient for the key watch: they are about the operator's credentials,
 * not the customer's key. */
int cv_aws_creds_load (struct cv_aws_creds *out);
/* Drop the cache and the process's AWS settings (tests; a new environment
 * is read on the next call). */
void cv_aws_creds_reset (void);
/* Test knob: the clock the cache judges freshness by (NULL: time()). */
void cv_aws_creds_clock_for_tests (time_t (*now) (void));
void cv_aws_creds_free (struct cv_aws_creds *c);

/* --- Key references (kms.c) --------------------------------------------- */

#define CV_KMS_ID_MAX 300

/* A key reference: key ARN, alias ARN, alias/NAME, key id, or mrk- id. */
struct cv_kms_ref {
  bool arn;   /* an ARN (of a key or an alias) */
  bool alias; /* alias/NAME or an alias ARN */
  bool mrk;   /* a multi-Region key id (mrk-...) */
  char partition[32], region[32], account[16]; /* from an ARN */
  char id[CV_KMS_ID_MAX];                      /* key id, or alias/NAME */
};

/* Parse ref. Returns 0 or -EINVAL (logged, with the forms accepted). */
int cv_kms_ref_parse (const char *ref, struct cv_kms_ref *out);
/* The region of calls about r: an ARN's region, except that a multi-Region
 * key goes to kms_region when given (its replica there); without an ARN,
 * kms_region, else AWS_REGION, else AWS_DEFAULT_REGION. Returns 0 or -EINVAL
 * (no region, or not a region name; logged). */
int cv_kms_ref_region (const struct cv_kms_ref *r, const struct cv_creds *c,
                       const char *ref, char *region, size_t len);
/* The KeyId to send for ref in region: ref itself, or for a multi-Region key
 * ARN the ARN of its replica in region. *out is malloc'd. 0 or -ENOMEM. */
int cv_kms_ref_key_id (const char *ref, const struct cv_kms_ref *r,
                       const char *region, char **out);

/* --- Calls about a key (kms.c), shared with kms-grants.c ---------------- */

/* Where the calls about one key go. */
/* The retry settings of AWS calls (cv_aws_retry_settings in aws.h). */
enum cv_aws_retry_mode { CV_AWS_RETRY_STANDARD, CV_AWS_RETRY_ADAPTIVE };
struct cv_aws_retry {
  enum cv_aws_retry_mode mode;
  int max_attempts;
};

struct cv_kms_target {
  char region[32];
  char *key_id; /* KeyId to send */
  char *url, *host;
  struct cv_aws_creds cr;
  struct cv_aws_retry retry;
};

/* Resolve ref (a reference or a stored key ARN) into a target (free with
 * cv_kms_target_free). Returns 0, -ENOKEY (no credentials; not logged) or
 * -EINVAL (logged). */
int cv_kms_target_open (const char *ref, const struct cv_creds *c,
                        struct cv_kms_target *t);
void cv_kms_target_free (struct cv_kms_target *t);

/* Make call op with request req to t; label says what it is for ("wrap 0
 * (kms ARN)"), key the key it names, both for messages. When c holds a
 * grant token and op takes grant tokens, it is added to req as
 * GrantTokens. Returns 0 with *resp (the answer, caller decrefs) or -errno
 * (logged: what failed, on which key, what to do). */
int cv_kms_op (const char *op, const char *label, const char *key,
               const struct cv_kms_target *t, const struct cv_creds *c,
               json_t *req, json_t **resp);

/* Add c's grant token to req as GrantTokens when op takes grant tokens
 * (Decrypt, Encrypt, GenerateDataKey, ReEncrypt, DescribeKey, CreateGrant;
 * not ListGrants, RevokeGrant, RetireGrant). 0 or -ENOMEM. */
int cv_kms_add_grant_token (const char *op, const struct cv_creds *c,
                            json_t *req);

/* --- A wrap's own encryption context pair (kms.c) ------------------------ */

#define CV_KMS_WRAP_DIGEST_SIZE 36 /* "v1:" + 32 hex digits + NUL */

/* The "cryptvol:wrap" value of wrap w's encryption context: "v1:" and the
 * lower-case hex of the first 16 bytes of SHA-256 over the canonical JSON
 * (json_dumps JSON_COMPACT | JSON_SORT_KEYS) of an object of exactly w's
 * members "id", "type", "ref", "created" and "region" (null for one w
 * lacks). Returns 0 or -ENOMEM; logs nothing. */
int cv_kms_wrap_digest (const json_t *w, char out[CV_KMS_WRAP_DIGEST_SIZE]);

/* True if w is a self-bound kms wrap: its metadata is in its encryption
 * context, which its "ctx" member shows with a "cryptvol:wrap" member. Not
 * authenticated, and need not be: opening w with the context it was not
 * made with is refused by KMS (see wrap_ctx in kms.c). Every kms wrap made
 * now is; older ones are not. */
bool cv_kms_wrap_self_bound (const json_t *w);

/* --- HTTPS calls (kms-http.c) ------------------------------------------- */

#define CV_KMS_MAX_ATTEMPTS 3 /* unless the call says otherwise */
#define CV_KMS_MAX_BACKOFF_MS 20000
#define CV_KMS_QUOTA_CAPACITY 500
#define CV_KMS_RETRY_COST 5
#define CV_KMS_TIMEOUT_RETRY_COST 10

/* The headers of one POST / to service (SigV4, signed at time now):
 * Content-Type, Host, X-Amz-Date, [X-Amz-Security-Token,] [X-Amz-Target
 * when target is not NULL,] Authorization, in that order, then lines that
 * stop curl adding Accept and Expect. Free with cv_kms_headers_free (it
 * wipes: the list holds the session token). 0, -EINVAL or -ENOMEM; logs
 * nothing. */
int cv_aws_sign_headers (const char *service, const char *content_type,
                         const char *target, const char *host,
                         const char *region, const void *body, size_t len,
                         const struct cv_aws_creds *cr, time_t now,
                         struct curl_slist **headers);
/* The headers of one KMS request, signed at time now: Content-Type, Host,
 * X-Amz-Date, [X-Amz-Security-Token,] X-Amz-Target, Authorization (in that
 * order), then lines that stop curl adding Accept and Expect. Free with
 * cv_kms_headers_free (it wipes: the list holds the session token). Returns
 * 0, -EINVAL or -ENOMEM; logs nothing. */
int cv_kms_sign_request (const char *host, const char *region, const char *op,
                         const void *body, size_t len,
                         const struct cv_aws_creds *cr, time_t now,
                         struct curl_slist **headers);
void cv_kms_headers_free (struct curl_slist *l);

/* Whether an attempt's outcome is retried, and at what quota cost. */
enum cv_kms_retry {
  CV_KMS_NO_RETRY,
  CV_KMS_RETRY,         /* throttling, 5xx, transient service errors */
  CV_KMS_RETRY_TIMEOUT, /* timeouts: cost CV_KMS_TIMEOUT_RETRY_COST */
};
/* Classify an attempt: curl_code (CURLE_OK when a response came), the HTTP
 * status and the error type (short name, "" if none). */
enum cv_kms_retry cv_kms_classify (int curl_code, long status,
                                   const char *type);
/* Full-jitter backoff before retry number attempt (1 = after the first
 * attempt): r * min(base_ms * 2^(attempt-1), CV_KMS_MAX_BACKOFF_MS), with r
 * in [0, 1). */
long cv_kms_backoff_ms (int attempt, long base_ms, double r);

/* The retry quota (a token bucket shared by all calls of the process, as in
 * the SDKs): a retry takes cost tokens or is not made; a success gives back
 * what its last retry took, or 1 if it needed no retry. */
bool cv_kms_quota_acquire (int cost);
void cv_kms_quota_release (int acquired);
int cv_kms_quota_available (void);
void cv_kms_quota_reset (void);

/* Whether an error type is a throttling error (the SDKs' list): what the
 * adaptive retry mode slows down for. */
bool cv_kms_throttling (const char *type);

/* The adaptive retry mode's client-side rate limiter, shared by all calls of
 * the process, as the SDKs' (botocore's adaptive mode): off until the first
 * throttling error; then a token bucket whose fill rate follows CUBIC,
 * cut to 0.7 of the measured sending rate on every throttling error and
 * growing back along a cubic curve on successes, never above twice the
 * measured rate nor below 0.5 requests a second. Times are seconds on a
 * monotonic clock, given by the caller (the tests give their own). */
/* Take a token for a request sent at now: the seconds to wait before
 * sending (0 while the limiter is off or a token is there). */
double cv_kms_rate_acquire (double now);
/* Record the answer of an attempt at now: throttled or not. */
void cv_kms_rate_update (bool throttled, double now);
/* The bucket's fill rate (requests a second) and whether it is on. */
double cv_kms_rate_fill (bool *on);
/* Back to the start (off), as of now. */
void cv_kms_rate_reset (double now);

/* One KMS operation. */
struct cv_kms_call {
  const char *op;                  /* "Decrypt": X-Amz-Target TrentService.op */
  const char *url, *host, *region; /* from cv_aws_endpoint */
  const char *ca_bundle;           /* CA file, or NULL (AWS_CA_BUNDLE, or the
                                      system's) */
  const struct cv_aws_creds *creds;
  const char *body; /* the JSON request, body_len bytes */
  size_t body_len;
  int max_attempts; /* 0: CV_KMS_MAX_ATTEMPTS */
  bool adaptive;    /* the adaptive retry mode: through the rate limiter */
};

/* What the last attempt of a call got. */
struct cv_kms_result {
  long status;          /* HTTP status, 0 when no response came */
  int curl_code;        /* CURLE_OK when a response came */
  char type[96];        /* error type, e.g. "DisabledException", or "" */
  char message[256];    /* the service's or curl's message (sanitised) */
  char request_id[96];  /* x-amzn-RequestId, or "" */
  int attempts;         /* attempts made */
  bool quota_exhausted; /* a retry was refused by the retry quota */
  json_t *body;         /* the JSON object answered, on success */
};

/* Make the call, with up to max_attempts attempts as the SDKs' standard
 * retry mode does (and, when adaptive, each attempt waits for the rate
 * limiter first); every failed attempt is a debug message (op,
 * attempt, error, backoff, request id). Returns 0 with res->body (the
 * caller owns it), or -EIO when the call failed (res says how;
 * nothing but debug logged: the caller knows the key and reports), -ENOMEM,
 * or -EINVAL (bad timeout knob; logged). */
int cv_kms_call (const struct cv_kms_call *c, struct cv_kms_result *res);

/* Pieces shared with the credential sources' requests (aws-fetch.c). */
/* curl_global_init once; 0 or -EIO (logged). */
int cv_http_init (void);
/* A growing response buffer, at most 1 MiB; every block it drops is wiped
 * first. cv_http_buf_write is a CURLOPT_WRITEFUNCTION taking one. */
struct cv_http_buf {
  char *p;
  size_t len, cap;
};
size_t cv_http_buf_write (char *data, size_t size, size_t nmemb, void *buf);
void cv_http_buf_wipe (struct cv_http_buf *b);
/* Copy s (len bytes) into out (size outlen) keeping printable ASCII only,
 * so a message from the network is safe to log. */
void cv_http_sanitise (char *out, size_t outlen, const char *s, size_t len);

/* What cv_kms_call does with an answer curl received, exposed for the fuzz
 * target tests/fuzz/fuzz-kms.c. cv_kms_header_line is its
 * CURLOPT_HEADERFUNCTION (opaque: a struct cv_kms_result): it takes the
 * request id and the error type from a response header line.
 * cv_kms_answer_read reads the HTTP status and the body (len bytes; not
 * NUL-terminated) into res: 0 with res->body, a JSON object, for a 2xx
 * status with a JSON object or empty body; else -EIO with res->type and
 * res->message saying why (sanitised: printable ASCII). */
size_t cv_kms_header_line (char *data, size_t size, size_t nmemb, void *opaque);
int cv_kms_answer_read (long status, const char *body, size_t len,
                        struct cv_kms_result *res);

/* What the provider makes of a call's outcome (rc and res as cv_kms_call
 * left them), for the fuzz target: a failed call (-EIO) is reported and
 * mapped to -errno as for a wrap of key_id; an answer to op is read as the
 * provider reads it (Decrypt and GenerateDataKey: the DEK of CV_DEK_LEN
 * bytes into *dek; Encrypt, GenerateDataKey and ReEncrypt: the wrap's
 * members into w; DescribeKey: the key's state into *state). Returns 0 or
 * -errno (logged). */
int cv_kms_answer_use (const char *op, int rc, const struct cv_kms_result *res,
                       json_t *w, struct cv_key **dek, char **state);

/* A string member key of a KMS answer to op, or NULL (logged, *r =
 * -EPROTO). */
const char *cv_kms_answer_string (const json_t *resp, const char *key,
                                  const char *op, int *r);
/* Why a failed attempt n of max is not retried ("not a retryable error",
 * "no attempts left", "the retry quota is exhausted": then
 * *quota_exhausted), or NULL when it is: then the retry's cost has been
 * taken from the quota. */
const char *cv_kms_no_retry_why (enum cv_kms_retry how, int n, int max,
                                 int cost, bool *quota_exhausted);

/* What one attempt of a retried call says to cv_aws_retried. */
struct cv_aws_attempt {
  enum cv_kms_retry how;  /* whether a failure may be retried */
  const char *what;       /* what failed (error type or message) */
  long status;            /* HTTP status, 0 when none came */
  const char *request_id; /* or "" */
  bool throttled;         /* a throttling error (the adaptive mode) */
};
/* A call to service svc ("kms", "sts", "sso") operation op with up to max
 * attempts (0: CV_KMS_MAX_ATTEMPTS), as the SDKs' retry modes make them:
 * attempt (arg, a) returns 0 (done), -EIO (failed: a says whether it may
 * be retried) or another -errno (a local failure: not retried). Between
 * attempts the full-jitter backoff and the process's retry quota; with
 * adaptive, every attempt waits for the client-side rate limiter and
 * updates it. A debug line per attempt. Returns the last attempt's return
 * (*attempts made; *quota_exhausted when the quota refused a retry), or
 * -EINVAL for a bad CV_KMS_RETRY_BASE_MS (logged). */
int cv_aws_retried (const char *svc, const char *op, int max, bool adaptive,
                    int (*attempt) (void *arg, struct cv_aws_attempt *a),
                    void *arg, int *attempts, bool *quota_exhausted);

/* A number of milliseconds from the environment variable name (a tuning
 * and test knob, doc/kms.md), else def; -1 if it is set but not a number in
 * 1..600000 (logged). */
long cv_kms_knob_ms (const char *name, long def);
/* A uniform random number in [0, 1), for backoff jitter. */
double cv_kms_jitter (void);
/* Sleep ms milliseconds (again after a signal). */
void cv_kms_sleep_ms (long ms);

/* Install jansson allocation functions that wipe every block on free, so the
 * plaintext DEK in request and response JSON (and in jansson's parse
 * buffers) does not outlive its use. Safe to call at any time and more than
 * once: the wiping free sizes blocks with malloc_usable_size, so blocks
 * allocated before it was installed are freed correctly too. */
void cv_kms_json_wipe_init (void);

#endif

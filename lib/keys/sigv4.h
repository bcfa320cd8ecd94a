/* AWS Signature Version 4 (AWS4-HMAC-SHA256) on OpenSSL HMAC: the signer the
 * KMS provider ships. Header-signed requests only (no presigned URLs).
 *
 * Why not libcurl's CURLOPT_AWS_SIGV4: libcurl 7.88 takes the date from the
 * clock, and a request given its own X-Amz-Date (the only way to fix the date
 * for the known-answer vectors) goes out with that header twice, which AWS
 * and our test KMS join into one value and reject. Signing here lets the
 * vectors run through the code that signs real requests. See doc/kms.md. */
#ifndef CV_SIGV4_H
#define CV_SIGV4_H

#include <stddef.h>
#include <time.h>

struct cv_key;

#define CV_SIGV4_DATE_LEN 16 /* "YYYYMMDDTHHMMSSZ" */

/* One request header, as sent. Names are matched case-insensitively. */
struct cv_sigv4_header {
  const char *name;
  const char *value;
};

/* What is signed: every header listed here is signed (give exactly those
 * that are sent and must be covered; Host and X-Amz-Date among them). */
struct cv_sigv4_request {
  const char *method;                    /* "POST" */
  const char *path;                      /* "/" (as sent, already encoded) */
  const char *query;                     /* raw query without '?', or NULL */
  const struct cv_sigv4_header *headers; /* nheaders entries */
  size_t nheaders;
  const void *body; /* body_len bytes, may be NULL when 0 */
  size_t body_len;
};

/* Who signs, where and when. */
struct cv_sigv4_scope {
  const char *access_key_id;
  const struct cv_key *secret; /* the secret access key */
  const char *region;          /* "us-east-1" */
  const char *service;         /* "kms" */
  const char *amz_date;        /* the X-Amz-Date value, YYYYMMDDTHHMMSSZ */
};

/* Sign r: *authz gets the Authorization header value (malloc'd). creq and
 * sts, when not NULL, get the canonical request and the string to sign
 * (malloc'd; for tests). Returns 0, -EINVAL (a date that is not
 * YYYYMMDDTHHMMSSZ, a header without a name) or -ENOMEM. Logs nothing: the
 * inputs hold a secret and the caller knows the context. */
int cv_sigv4_sign (const struct cv_sigv4_request *r,
                   const struct cv_sigv4_scope *s, char **authz, char **creq,
                   char **sts);

/* t as an X-Amz-Date value into out (CV_SIGV4_DATE_LEN + 1 bytes). */
void cv_sigv4_date (time_t t, char *out);

#endif

/* AWS credentials as values: made from strings or from the JSON documents
 * the credential sources answer, copied, freed. The secret access key and
 * the session token only ever live in locked memory (cv_key). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

void
cv_aws_creds_free (struct cv_aws_creds *c)
{
  free (c->access_key_id);
  cv_key_free (c->secret);
  cv_key_free (c->token);
  free (c->source);
  *c = (struct cv_aws_creds){ 0 };
}

/* A token as a cv_key holding the string and its NUL. */
static int
token_key (const char *s, size_t len, struct cv_key **out)
{
  int r = cv_key_new (len + 1, out);

  if (r == 0)
    memcpy ((*out)->b, s, len); /* the last byte stays 0 */
  return r;
}

int
cv_aws_creds_set (struct cv_aws_creds *c, const char *akid, size_t akid_len,
                  const char *secret, size_t secret_len, const char *token,
                  size_t token_len, const char *source)
{
  int r;

  *c = (struct cv_aws_creds){ 0 };
  if (!(c->access_key_id = strndup (akid, akid_len))
      || !(c->source = strdup (source)))
    r = -ENOMEM;
  else if ((r = cv_key_from (secret, secret_len, &c->secret)) == 0 && token
           && token_len)
    r = token_key (token, token_len, &c->token);
  if (r < 0)
    cv_aws_creds_free (c);
  return r;
}

int
cv_aws_creds_copy (const struct cv_aws_creds *from, struct cv_aws_creds *to)
{
  const struct cv_key *t = from->token;
  int r = cv_aws_creds_set (
      to, from->access_key_id, strlen (from->access_key_id),
      (const char *) from->secret->b, from->secret->len,
      t ? (const char *) t->b : NULL, t ? t->len - 1 : 0, from->source);

  if (r == 0)
    to->expires = from->expires;
  return r;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without the
 * timezone games of mktime. */
static long
days_from_civil (long y, unsigned m, unsigned d)
{
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned) (y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (long) doe - 719468;
}

int
cv_aws_parse_time (const char *s, time_t *out)
{
  int y, mo, d, h, mi, se, n = 0;
  long off = 0;

  if (sscanf (s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n)
          != 6
      || n != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59
      || se > 60 || y < 1970)
    return -EINVAL;
  s += n;
  if (*s == '.') /* fractions of a second are dropped */
    for (s++; *s >= '0' && *s <= '9'; s++)
      ;
  if (*s == 'Z' || *s == 'z')
    s++;
  else if (*s == '+' || *s == '-') {
    int oh, om, m = 0;
    if (sscanf (s + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh > 23
        || om > 59)
      return -EINVAL;
    off = (*s == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    s += 6;
  } else
    return -EINVAL;
  if (*s)
    return -EINVAL;
  *out = (time_t) (days_from_civil (y, (unsigned) mo, (unsigned) d) * 86400L
                   + h * 3600L + mi * 60L + se - off);
  return 0;
}

/* The string member name of j, or NULL. */
static const char *
member (const json_t *j, const char *name)
{
  return name ? json_string_value (json_object_get (j, name)) : NULL;
}

int
cv_aws_creds_from_json (const json_t *j, const struct cv_aws_json_names *n,
                        const char *what, const char *source,
                        struct cv_aws_creds *out)
{
  const char *akid = member (j, n->akid), *sec = member (j, n->secret);
  const char *tok = member (j, n->token);
  const json_t *exp = n->expiration ? json_object_get (j, n->expiration) : NULL;
  time_t expires = 0;
  int r;

  *out = (struct cv_aws_creds){ 0 };
  if (!json_is_object (j) || !akid || !*akid || !sec || !*sec) {
    cv_err ("%s: the answer has no %s", what,
            !json_is_object (j) ? "JSON object"
            : !akid || !*akid   ? n->akid
                                : n->secret);
    return -EPROTO;
  }
  if (strlen (akid) > 128
      || strspn (akid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
             != strlen (akid)) {
    cv_err ("%s: the answer's %s is not an AWS access key id", what, n->akid);
    return -EPROTO;
  }
  if (json_is_string (exp)) {
    if (cv_aws_parse_time (json_string_value (exp), &expires) < 0) {
      cv_err ("%s: the answer's %s is not an RFC 3339 time", what,
              n->expiration);
      return -EPROTO;
    }
  } else if (json_is_integer (exp)) /* milliseconds (the SSO portal) */
    expires = (time_t) (json_integer_value (exp) / 1000);
  else if (exp && !json_is_null (exp)) {
    cv_err ("%s: the answer's %s is not a time", what, n->expiration);
    return -EPROTO;
  }
  r = cv_aws_creds_set (out, akid, strlen (akid), sec, strlen (sec), tok,
                        tok ? strlen (tok) : 0, source);
  if (r == 0)
    out->expires = expires;
  return r;
}

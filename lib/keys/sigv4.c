/* AWS Signature Version 4: canonical request, string to sign, signing key
 * chain and Authorization value, as the SigV4 specification and botocore
 * define them for every service but S3 (the path is normalised and encoded
 * once more). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

void
cv_sigv4_date (time_t t, char *out)
{
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (out, CV_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* True if d is YYYYMMDDTHHMMSSZ. */
static bool
valid_date (const char *d)
{
  if (strlen (d) != CV_SIGV4_DATE_LEN || d[8] != 'T' || d[15] != 'Z')
    return false;
  for (int i = 0; i < 15; i++)
    if (i != 8 && !isdigit ((unsigned char) d[i]))
      return false;
  return true;
}

static bool
unreserved (unsigned char c)
{
  return isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Percent-encode len bytes of s onto f (upper-case hex); '/' is kept when
 * keep_slash. */
static void
put_encoded (FILE *f, const char *s, size_t len, bool keep_slash)
{
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) s[i];
    if (unreserved (c) || (keep_slash && c == '/'))
      fputc (c, f);
    else
      fprintf (f, "%%%02X", c);
  }
}

/* The first len bytes of s with %XX decoded, as a new string (NULL: no
 * memory). A '%' not followed by two hex digits stays as it is. */
static char *
pct_decode (const char *s, size_t len)
{
  char *out = malloc (len + 1), *o = out;

  if (!out)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    int hi, lo;
    if (s[i] == '%' && i + 2 < len && (hi = cv_hex_digit (s[i + 1])) >= 0
        && (lo = cv_hex_digit (s[i + 2])) >= 0) {
      *o++ = (char) (hi << 4 | lo);
      i += 2;
    } else
      *o++ = s[i];
  }
  *o = '\0';
  return out;
}

/* The canonical URI of path onto f: dot segments removed, then encoded
 * (a path as sent is already encoded, so this is its second encoding). */
static int
put_canonical_uri (FILE *f, const char *path)
{
  CLEANUP_FREE char *copy = strdup (path && *path ? path : "/");
  CLEANUP_FREE const char **seg = NULL;
  size_t nseg = 0;
  char *save = NULL;

  if (!copy || !(seg = calloc (strlen (copy) + 1, sizeof *seg)))
    return -ENOMEM;
  bool lead = copy[0] == '/', trail = copy[strlen (copy) - 1] == '/';
  for (char *t = strtok_r (copy, "/", &save); t;
       t = strtok_r (NULL, "/", &save))
    if (strcmp (t, "..") == 0) {
      if (nseg)
        nseg--;
    } else if (strcmp (t, ".") != 0)
      seg[nseg++] = t;
  if (lead)
    fputc ('/', f);
  for (size_t i = 0; i < nseg; i++) {
    if (i)
      fputc ('/', f);
    put_encoded (f, seg[i], strlen (seg[i]), false);
  }
  if (trail && nseg)
    fputc ('/', f);
  if (!lead && nseg == 0)
    fputc ('/', f);
  return 0;
}

struct qparam {
  char *key, *value; /* encoded */
};

static int
cmp_qparam (const void *a, const void *b)
{
  const struct qparam *x = a, *y = b;
  int c = strcmp (x->key, y->key);

  return c ? c : strcmp (x->value, y->value);
}

/* s (len bytes) decoded and encoded again in the canonical form, as a new
 * string (NULL: no memory). */
static char *
reencode (const char *s, size_t len)
{
  CLEANUP_FREE char *dec = pct_decode (s, len);
  char *out = NULL;
  size_t outlen = 0;
  FILE *f;

  if (!dec || !(f = open_memstream (&out, &outlen)))
    return NULL;
  put_encoded (f, dec, strlen (dec), false);
  if (fclose (f) != 0) {
    free (out);
    return NULL;
  }
  return out;
}

/* The canonical query of q onto f: parameters decoded, encoded again, sorted
 * by name then value. */
static int
put_canonical_query (FILE *f, const char *q)
{
  size_t n = 0, cap = 1, i;
  struct qparam *p;
  int r = 0;

  if (!q || !*q)
    return 0;
  for (const char *c = q; *c; c++)
    cap += *c == '&';
  p = calloc (cap, sizeof *p);
  if (!p)
    return -ENOMEM;
  for (const char *item = q; r == 0 && item;) {
    const char *amp = strchr (item, '&');
    size_t len = amp ? (size_t) (amp - item) : strlen (item);
    const char *eq = memchr (item, '=', len);
    if (len) {
      size_t klen = eq ? (size_t) (eq - item) : len;
      p[n].key = reencode (item, klen);
      p[n].value = eq ? reencode (eq + 1, len - klen - 1) : strdup ("");
      if (!p[n].key || !p[n].value)
        r = -ENOMEM;
      n++;
    }
    item = amp ? amp + 1 : NULL;
  }
  if (r == 0) {
    qsort (p, n, sizeof *p, cmp_qparam);
    for (i = 0; i < n; i++)
      fprintf (f, "%s%s=%s", i ? "&" : "", p[i].key, p[i].value);
  }
  for (i = 0; i < n; i++) {
    free (p[i].key);
    free (p[i].value);
  }
  free (p);
  return r;
}

struct chdr {
  char *name;        /* lower case */
  const char *value; /* as given */
  size_t order;      /* position in the request, keeps repeats in order */
};

static int
cmp_chdr (const void *a, const void *b)
{
  const struct chdr *x = a, *y = b;
  int c = strcmp (x->name, y->name);

  return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* v onto f with leading and trailing blanks removed and inner runs of
 * blanks collapsed into one space. */
static void
put_trimmed (FILE *f, const char *v)
{
  bool space = false, any = false;

  for (; *v; v++) {
    if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
      space = any;
      continue;
    }
    if (space)
      fputc (' ', f);
    fputc (*v, f);
    space = false;
    any = true;
  }
}

/* The canonical headers (each "name:value\n", repeats joined with ',') onto
 * f and the signed header list onto g. */
static int
put_canonical_headers (FILE *f, FILE *g, const struct cv_sigv4_request *r)
{
  struct chdr *h = calloc (r->nheaders ? r->nheaders : 1, sizeof *h);
  size_t i;
  int rc = 0;

  if (!h)
    return -ENOMEM;
  for (i = 0; i < r->nheaders && rc == 0; i++) {
    const char *name = r->headers[i].name;
    if (!name || !*name || !r->headers[i].value) {
      rc = -EINVAL;
      break;
    }
    if (!(h[i].name = strdup (name)))
      rc = -ENOMEM;
    else
      for (char *c = h[i].name; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
    h[i].value = r->headers[i].value;
    h[i].order = i;
  }
  if (rc == 0) {
    qsort (h, r->nheaders, sizeof *h, cmp_chdr);
    for (i = 0; i < r->nheaders; i++) {
      bool first = i == 0 || strcmp (h[i].name, h[i - 1].name) != 0;
      bool last
          = i + 1 == r->nheaders || strcmp (h[i].name, h[i + 1].name) != 0;
      if (first) {
        fprintf (f, "%s:", h[i].name);
        fprintf (g, "%s%s", i ? ";" : "", h[i].name);
      } else
        fputc (',', f);
      put_trimmed (f, h[i].value);
      if (last)
        fputc ('\n', f);
    }
  }
  for (i = 0; i < r->nheaders; i++)
    free (h[i].name);
  free (h);
  return rc;
}

/* Hex SHA-256 of len bytes at p into out (65 bytes). */
static int
sha256_hex (const void *p, size_t len, char out[65])
{
  uint8_t d[32];
  CLEANUP_FREE char *hex = NULL;
  int r = cv_sha256 (p ? p : "", len, d);

  if (r == 0 && (r = cv_hex_encode (d, sizeof d, &hex)) == 0)
    memcpy (out, hex, 65);
  return r;
}

/* Build the canonical request and the signed header list. */
static int
canonical_request (const struct cv_sigv4_request *r, char **creq,
                   char **signed_headers)
{
  char *c = NULL, *sh = NULL, hash[65];
  size_t clen = 0, shlen = 0;
  FILE *f = open_memstream (&c, &clen), *g = NULL;
  int rc = f ? 0 : -ENOMEM;

  if (rc == 0 && !(g = open_memstream (&sh, &shlen)))
    rc = -ENOMEM;
  if (rc == 0) {
    fprintf (f, "%s\n", r->method);
    rc = put_canonical_uri (f, r->path);
  }
  if (rc == 0) {
    fputc ('\n', f);
    rc = put_canonical_query (f, r->query);
  }
  if (rc == 0) {
    fputc ('\n', f);
    rc = put_canonical_headers (f, g, r);
  }
  if (rc == 0)
    rc = sha256_hex (r->body, r->body_len, hash);
  if (g && fclose (g) != 0 && rc == 0)
    rc = -ENOMEM;
  if (rc == 0)
    fprintf (f, "\n%s\n%s", sh, hash);
  if (f && fclose (f) != 0 && rc == 0)
    rc = -ENOMEM;
  if (rc < 0) {
    free (c);
    free (sh);
    return rc;
  }
  *creq = c;
  *signed_headers = sh;
  return 0;
}

/* The signing key: HMAC chain from "AWS4" + secret over date, region,
 * service and "aws4_request". */
static int
signing_key (const struct cv_sigv4_scope *s, uint8_t key[32])
{
  CLEANUP_KEY struct cv_key *k = NULL;
  const char *parts[] = { NULL, s->region, s->service, "aws4_request" };
  char date[9];
  int r = cv_key_new (4 + s->secret->len, &k);

  if (r < 0)
    return r;
  memcpy (k->b, "AWS4", 4);
  memcpy (k->b + 4, s->secret->b, s->secret->len);
  memcpy (date, s->amz_date, 8);
  date[8] = '\0';
  parts[0] = date;
  r = cv_hmac_sha256 (k->b, k->len, parts[0], strlen (parts[0]), key);
  for (size_t i = 1; r == 0 && i < 4; i++)
    r = cv_hmac_sha256 (key, 32, parts[i], strlen (parts[i]), key);
  return r;
}

int
cv_sigv4_sign (const struct cv_sigv4_request *r, const struct cv_sigv4_scope *s,
               char **authz, char **creq_out, char **sts_out)
{
  CLEANUP_FREE char *creq = NULL, *sh = NULL, *sts = NULL, *sig = NULL;
  char hash[65], scope[256];
  uint8_t key[32], mac[32];
  int rc;

  if (!valid_date (s->amz_date))
    return -EINVAL;
  if ((rc = canonical_request (r, &creq, &sh)) < 0)
    return rc;
  if ((rc = sha256_hex (creq, strlen (creq), hash)) < 0)
    return rc;
  if ((size_t) snprintf (scope, sizeof scope, "%.8s/%s/%s/aws4_request",
                         s->amz_date, s->region, s->service)
      >= sizeof scope)
    return -EINVAL;
  if (asprintf (&sts, ALGORITHM "\n%s\n%s\n%s", s->amz_date, scope, hash) < 0) {
    sts = NULL;
    return -ENOMEM;
  }
  rc = signing_key (s, key);
  if (rc == 0)
    rc = cv_hmac_sha256 (key, sizeof key, sts, strlen (sts), mac);
  cv_wipe (key, sizeof key);
  if (rc == 0)
    rc = cv_hex_encode (mac, sizeof mac, &sig);
  if (rc < 0)
    return rc;
  if (asprintf (authz,
                ALGORITHM " Credential=%s/%s, SignedHeaders=%s, "
                          "Signature=%s",
                s->access_key_id, scope, sh, sig)
      < 0)
    return -ENOMEM;
  if (creq_out)
    *creq_out = STEAL (creq);
  if (sts_out)
    *sts_out = STEAL (sts);
  return 0;
}

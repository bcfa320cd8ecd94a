/* AWS STS for the credential chain: AssumeRole and GetCallerIdentity
 * (signed, SigV4 service "sts"), AssumeRoleWithWebIdentity (unsigned), on
 * the Query protocol (form-encoded POST, XML answers), with the AWS SDKs'
 * standard retries. The answers are read by a small strict XML reader that
 * knows exactly these documents; the secrets in them are decoded straight
 * into locked memory. The web identity token is read from its file on every
 * call into locked memory and wiped after it. doc/kms.md is the operator's
 * side. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/text.h"
#include "common/reqlog.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define STS_VERSION "2011-06-15"
#define FORM_CT "application/x-www-form-urlencoded; charset=utf-8"
#define CONNECT_TIMEOUT_MS 5000
#define TIMEOUT_MS 20000
#define XML_MAX (64 * 1024) /* an answer with a session token is ~2 KiB */
#define XML_DEPTH 8
#define XML_NAME_MAX 64
#define XML_PATH_MAX 256
#define TOKEN_FILE_MAX 20000 /* STS takes a WebIdentityToken of 4..20000 */

/* --- the XML reader ------------------------------------------------------ */

/* A leaf element wanted from an answer: its path from the root, and where
 * its raw text is (entities not yet decoded). */
struct field {
  const char *path;
  size_t max; /* longest raw text taken */
  const char *s, *e;
  bool seen;
};

/* The reader's state: the input, the path of open elements, the fields. */
struct xml {
  const char *start, *p, *end;
  char path[XML_PATH_MAX];
  size_t plen[XML_DEPTH + 1]; /* path length at each depth */
  bool has_child[XML_DEPTH + 1];
  int depth;
  char root[XML_NAME_MAX + 1];
  struct field *f;
  size_t nf;
};

static bool
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
all_space (const char *s, const char *e)
{
  for (; s < e; s++)
    if (!is_space (*s))
      return false;
  return true;
}

/* Why the answer is not read, as a debug line (where, never a value). */
static int
bad (const struct xml *x, const char *why)
{
  cv_debug ("sts: answer not read: %s at byte %zu", why,
            (size_t) (x->p - x->start));
  return -EPROTO;
}

/* Append code point cp as UTF-8 at o (when o is not NULL); its length. */
static size_t
put_utf8 (uint32_t cp, char *o)
{
  char b[4];
  size_t n;

  if (cp < 0x80) {
    b[0] = (char) cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char) (0xc0 | cp >> 6);
    b[1] = (char) (0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char) (0xe0 | cp >> 12);
    b[1] = (char) (0x80 | (cp >> 6 & 0x3f));
    b[2] = (char) (0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (char) (0xf0 | cp >> 18);
    b[1] = (char) (0x80 | (cp >> 12 & 0x3f));
    b[2] = (char) (0x80 | (cp >> 6 & 0x3f));
    b[3] = (char) (0x80 | (cp & 0x3f));
    n = 4;
  }
  if (o)
    memcpy (o, b, n);
  return n;
}

/* The character reference &#N; or &#xH; in [s, e) (s after "&#", e at
 * ';'): its code point, or -1 if it is not an XML character. */
static int32_t
char_ref (const char *s, const char *e)
{
  bool hex = s < e && *s == 'x';
  uint32_t v = 0;

  if (hex)
    s++;
  if (s == e || e - s > 8)
    return -1;
  for (; s < e; s++) {
    int d;
    if (*s >= '0' && *s <= '9')
      d = *s - '0';
    else if (hex && *s >= 'a' && *s <= 'f')
      d = *s - 'a' + 10;
    else if (hex && *s >= 'A' && *s <= 'F')
      d = *s - 'A' + 10;
    else
      return -1;
    v = v * (hex ? 16 : 10) + (uint32_t) d;
  }
  if (v == 0x9 || v == 0xa || v == 0xd || (v >= 0x20 && v <= 0xd7ff)
      || (v >= 0xe000 && v <= 0xfffd) || (v >= 0x10000 && v <= 0x10ffff))
    return (int32_t) v;
  return -1;
}

/* Decode the text [s, e): the five predefined entities and character
 * references; a bare '&', '<' or a control character is an error. Writes
 * into o when not NULL (room for e - s bytes: decoding never grows text).
 * Returns the decoded length, or -1. */
static ssize_t
decode (const char *s, const char *e, char *o)
{
  static const struct {
    const char *name;
    char c;
  } ents[] = { { "amp", '&' },
               { "lt", '<' },
               { "gt", '>' },
               { "quot", '"' },
               { "apos", '\'' } };
  size_t n = 0;

  while (s < e) {
    unsigned char c = (unsigned char) *s;
    if (c == '<' || (c < 0x20 && !is_space ((char) c)) || c == 0x7f)
      return -1;
    if (c != '&') {
      if (o)
        o[n] = (char) c;
      n++;
      s++;
      continue;
    }
    size_t room = (size_t) (e - s);
    const char *semi = memchr (s, ';', room < 12 ? room : 12);
    if (!semi)
      return -1;
    size_t len = (size_t) (semi - s - 1);
    bool found = false;
    if (s[1] == '#') {
      int32_t cp = char_ref (s + 2, semi);
      if (cp < 0)
        return -1;
      n += put_utf8 ((uint32_t) cp, o ? o + n : NULL);
      found = true;
    } else
      for (size_t i = 0; i < ARRAY_SIZE (ents) && !found; i++)
        if (strlen (ents[i].name) == len
            && memcmp (ents[i].name, s + 1, len) == 0) {
          if (o)
            o[n] = ents[i].c;
          n++;
          found = true;
        }
    if (!found)
      return -1;
    s = semi + 1;
  }
  return (ssize_t) n;
}

/* Read a name at x->p into name (NUL-terminated). */
static int
read_name (struct xml *x, char name[XML_NAME_MAX + 1])
{
  const char *s = x->p;
  size_t n = 0;

  if (s >= x->end
      || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
    return bad (x, "not a name");
  while (s < x->end
         && ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')
             || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'
             || *s == ':')) {
    if (n == XML_NAME_MAX)
      return bad (x, "name too long");
    name[n++] = *s++;
  }
  name[n] = '\0';
  x->p = s;
  return 0;
}

static void
skip_space (struct xml *x)
{
  while (x->p < x->end && is_space (*x->p))
    x->p++;
}

/* The attributes of a start tag, up to (not over) its '>' or "/>": checked
 * for form, then ignored (xmlns). */
static int
skip_attributes (struct xml *x)
{
  char name[XML_NAME_MAX + 1];

  for (;;) {
    const char *before = x->p;
    skip_space (x);
    if (x->p >= x->end)
      return bad (x, "unterminated tag");
    if (*x->p == '>' || *x->p == '/')
      return 0;
    if (x->p == before)
      return bad (x, "no space before an attribute");
    if (read_name (x, name) < 0)
      return -EPROTO;
    skip_space (x);
    if (x->p >= x->end || *x->p != '=')
      return bad (x, "attribute without a value");
    x->p++;
    skip_space (x);
    if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
      return bad (x, "attribute value not quoted");
    const char *v = x->p + 1;
    const char *q = memchr (v, *x->p, (size_t) (x->end - v));
    if (!q || decode (v, q, NULL) < 0)
      return bad (x, "bad attribute value");
    x->p = q + 1;
  }
}

/* An element closes with text [s, e) and no child: record it if wanted,
 * without the white space around it (no value of these answers has any). */
static int
leaf (struct xml *x, const char *s, const char *e)
{
  while (s < e && is_space (*s))
    s++;
  while (e > s && is_space (e[-1]))
    e--;
  for (size_t i = 0; i < x->nf; i++) {
    struct field *f = &x->f[i];
    if (strcmp (f->path, x->path) != 0)
      continue;
    if (f->seen)
      return bad (x, "an element given twice");
    if ((size_t) (e - s) > f->max)
      return bad (x, "a value too long");
    f->seen = true;
    f->s = s;
    f->e = e;
  }
  return 0;
}

/* Open element name: push it onto the path. */
static int
push (struct xml *x, const char *name)
{
  size_t len = strlen (x->path);

  if (x->depth == XML_DEPTH)
    return bad (x, "nested too deep");
  if (x->depth > 0)
    x->has_child[x->depth] = true;
  else
    strcpy (x->root, name);
  if (len + 1 + strlen (name) >= sizeof x->path)
    return bad (x, "path too long");
  snprintf (x->path + len, sizeof x->path - len, "%s%s", len ? "/" : "", name);
  x->depth++;
  x->plen[x->depth] = len;
  x->has_child[x->depth] = false;
  return 0;
}

/* Close the innermost element, whose text is [s, e). */
static int
pop (struct xml *x, const char *s, const char *e)
{
  if (!x->has_child[x->depth] && leaf (x, s, e) < 0)
    return -EPROTO;
  x->path[x->plen[x->depth]] = '\0';
  x->depth--;
  return 0;
}

/* Read the whole document: one root element, an optional XML declaration
 * before it, white space around; no DTD, comment, CDATA or processing
 * instruction; text only in leaf elements. Fills the fields found. */
static int
xml_read (struct xml *x)
{
  char name[XML_NAME_MAX + 1];
  const char *text = NULL; /* text since the last tag */
  bool done = false;

  if (x->end - x->p >= 6 && memcmp (x->p, "<?xml", 5) == 0
      && is_space (x->p[5])) {
    const char *q = memmem (x->p, (size_t) (x->end - x->p), "?>", 2);
    if (!q || memchr (x->p + 1, '<', (size_t) (q - x->p - 1)))
      return bad (x, "bad XML declaration");
    x->p = q + 2;
  }
  while (x->p < x->end) {
    if (*x->p != '<') {
      const char *lt = memchr (x->p, '<', (size_t) (x->end - x->p));
      const char *e = lt ? lt : x->end;
      if ((x->depth == 0 && !all_space (x->p, e)) || decode (x->p, e, NULL) < 0)
        return bad (x, "bad text");
      text = x->p;
      x->p = e;
      continue;
    }
    const char *ts = text ? text : x->p, *te = x->p;
    text = NULL;
    x->p++;
    if (x->p < x->end && *x->p == '/') { /* an end tag */
      x->p++;
      if (x->depth == 0 || read_name (x, name) < 0)
        return bad (x, "an end tag without a start");
      const char *open
          = x->path + x->plen[x->depth] + (x->plen[x->depth] ? 1 : 0);
      if (strcmp (open, name) != 0)
        return bad (x, "mismatched end tag");
      skip_space (x);
      if (x->p >= x->end || *x->p != '>')
        return bad (x, "unterminated end tag");
      x->p++;
      if (x->has_child[x->depth] && !all_space (ts, te))
        return bad (x, "text next to elements");
      if (pop (x, ts, te) < 0)
        return -EPROTO;
      done = x->depth == 0;
      continue;
    }
    if (done)
      return bad (x, "a second root element");
    if (x->depth > 0 && !all_space (ts, te))
      return bad (x, "text next to elements");
    if (read_name (x, name) < 0 || skip_attributes (x) < 0)
      return -EPROTO; /* also <!DOCTYPE, <!--, <![CDATA[, <?pi */
    if (push (x, name) < 0)
      return -EPROTO;
    if (*x->p == '/') {
      if (x->p + 1 >= x->end || x->p[1] != '>')
        return bad (x, "bad empty-element tag");
      x->p += 2;
      if (pop (x, x->p, x->p) < 0)
        return -EPROTO;
      done = x->depth == 0;
    } else
      x->p++;
  }
  if (!done)
    return bad (x, "unterminated document");
  return 0;
}

/* --- the answers -------------------------------------------------------- */

enum {
  F_AKID,
  F_SECRET,
  F_TOKEN,
  F_EXPIRATION,
  F_ARN,
  F_CODE,
  F_MESSAGE,
  F_COUNT
};

/* The decoded text of f as a new string: printable ASCII (no space) only
 * when strict, else sanitised for messages. NULL on -ENOMEM or when not
 * strict-printable (*err says which). */
static char *
field_string (const struct field *f, bool strict, int *err)
{
  size_t raw = (size_t) (f->e - f->s);
  CLEANUP_FREE char *o = malloc (raw + 1);
  ssize_t n;

  *err = -ENOMEM;
  if (!o)
    return NULL;
  n = decode (f->s, f->e, o); /* checked by xml_read */
  o[n] = '\0';
  for (ssize_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char) o[i];
    if (c > 0x20 && c < 0x7f)
      continue;
    if (strict) {
      *err = -EPROTO;
      return NULL;
    }
    o[i] = c == ' ' ? ' ' : '?';
  }
  if (strict && n == 0) {
    *err = -EPROTO;
    return NULL;
  }
  return STEAL (o);
}

/* The decoded text of f into new locked memory, with a NUL after it when
 * nul (counted in len). Printable ASCII without spaces only: a secret goes
 * into a request header. 0, -EPROTO, -ENOMEM. */
static int
field_key (const struct field *f, bool nul, struct cv_key **out)
{
  size_t raw = (size_t) (f->e - f->s);
  CLEANUP_KEY struct cv_key *tmp = NULL;
  ssize_t n;
  int r;

  if (raw == 0)
    return -EPROTO;
  if ((r = cv_key_new (raw, &tmp)) < 0)
    return r;
  n = decode (f->s, f->e, (char *) tmp->b);
  for (ssize_t i = 0; i < n; i++)
    if (tmp->b[i] <= 0x20 || tmp->b[i] >= 0x7f)
      return -EPROTO;
  if ((r = cv_key_new ((size_t) n + (nul ? 1 : 0), out)) < 0)
    return r;
  memcpy ((*out)->b, tmp->b, (size_t) n);
  return 0;
}

/* Copy src into dst (size len) truncated; "" for NULL. */
static void
copy_out (char *dst, size_t len, const char *src)
{
  if (dst && len)
    snprintf (dst, len, "%s", src ? src : "");
}

/* Credentials from the fields of a successful answer. */
static int
take_creds (const struct field *f, const char *source, struct cv_aws_creds *out)
{
  struct cv_aws_creds c = { 0 };
  CLEANUP_FREE char *exp = NULL;
  int r = -EPROTO;

  for (int i = F_AKID; i <= F_EXPIRATION; i++)
    if (!f[i].seen) {
      cv_debug ("sts: answer not read: no %s", f[i].path);
      return -EPROTO;
    }
  if (!(c.access_key_id = field_string (&f[F_AKID], true, &r))
      || !(exp = field_string (&f[F_EXPIRATION], true, &r)))
    goto fail;
  if (cv_aws_parse_time (exp, &c.expires) < 0) {
    cv_debug ("sts: answer not read: Expiration is not a time");
    r = -EPROTO;
    goto fail;
  }
  if ((r = field_key (&f[F_SECRET], false, &c.secret)) < 0
      || (r = field_key (&f[F_TOKEN], true, &c.token)) < 0)
    goto fail;
  if (!(c.source = strdup (source ? source : "STS"))) {
    r = -ENOMEM;
    goto fail;
  }
  *out = c;
  return 0;
fail:
  if (r == -EPROTO)
    cv_debug ("sts: answer not read: a credential member is malformed");
  cv_aws_creds_free (&c);
  return r;
}

int
cv_aws_sts_parse (const char *xml, size_t len, const char *op,
                  const char *source, struct cv_aws_creds *out, char **arn,
                  char *code, size_t code_len, char *msg, size_t msg_len)
{
  char creds[96], user[96], ok_root[48], paths[F_COUNT][XML_PATH_MAX];
  bool caller = strcmp (op, "GetCallerIdentity") == 0;
  struct field f[F_COUNT];
  struct xml x
      = { .start = xml, .p = xml, .end = xml + len, .f = f, .nf = F_COUNT };
  int r;

  copy_out (code, code_len, "");
  copy_out (msg, msg_len, "");
  if (len > XML_MAX)
    return bad (&x, "answer too long");
  snprintf (ok_root, sizeof ok_root, "%sResponse", op);
  snprintf (creds, sizeof creds, "%s/%sResult/Credentials", ok_root, op);
  snprintf (user, sizeof user, "%s/%sResult%s", ok_root, op,
            caller ? "" : "/AssumedRoleUser");
  snprintf (paths[F_AKID], XML_PATH_MAX, "%s/AccessKeyId", creds);
  snprintf (paths[F_SECRET], XML_PATH_MAX, "%s/SecretAccessKey", creds);
  snprintf (paths[F_TOKEN], XML_PATH_MAX, "%s/SessionToken", creds);
  snprintf (paths[F_EXPIRATION], XML_PATH_MAX, "%s/Expiration", creds);
  snprintf (paths[F_ARN], XML_PATH_MAX, "%s/Arn", user);
  snprintf (paths[F_CODE], XML_PATH_MAX, "ErrorResponse/Error/Code");
  snprintf (paths[F_MESSAGE], XML_PATH_MAX, "ErrorResponse/Error/Message");
  static const size_t max[F_COUNT] = { 128, 1024, 32768, 64, 2048, 256, 4096 };
  for (int i = 0; i < F_COUNT; i++)
    f[i] = (struct field){ .path = paths[i], .max = max[i] };

  if ((r = xml_read (&x)) < 0)
    return r;
  if (strcmp (x.root, "ErrorResponse") == 0) {
    CLEANUP_FREE char *c = NULL, *m = NULL;
    if (!code || !f[F_CODE].seen)
      return bad (&x, "an error answer without Error/Code");
    if (!(c = field_string (&f[F_CODE], true, &r)))
      return r == -ENOMEM ? r : bad (&x, "a malformed Error/Code");
    if (f[F_MESSAGE].seen && !(m = field_string (&f[F_MESSAGE], false, &r)))
      return r;
    copy_out (code, code_len, c);
    copy_out (msg, msg_len, m);
    return 0;
  }
  if (strcmp (x.root, ok_root) != 0)
    return bad (&x, "not the answer of this operation");
  if (arn) {
    CLEANUP_FREE char *a = NULL;
    if (!f[F_ARN].seen)
      return bad (&x, "no Arn");
    if (!(a = field_string (&f[F_ARN], true, &r)))
      return r == -ENOMEM ? r : bad (&x, "a malformed Arn");
    *arn = STEAL (a);
  }
  if (out && !caller && (r = take_creds (f, source, out)) < 0) {
    if (arn) {
      free (*arn);
      *arn = NULL;
    }
    return r;
  }
  return 0;
}

/* --- requests ----------------------------------------------------------- */

/* The length of v percent-encoded as the Query protocol does (RFC 3986:
 * all but unreserved characters), and the encoding at o when not NULL. */
static size_t
form_encode (const char *v, size_t len, char *o)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;

  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) v[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
        || c == '~') {
      if (o)
        o[n] = (char) c;
      n++;
    } else {
      if (o) {
        o[n] = '%';
        o[n + 1] = hex[c >> 4];
        o[n + 2] = hex[c & 15];
      }
      n += 3;
    }
  }
  return n;
}

/* One parameter of a request: name=value, value len bytes (may be a
 * secret). A NULL value is left out. */
struct param {
  const char *name;
  const char *value;
  size_t len;
};

/* The form body of params into new locked memory (it may hold the web
 * identity token). 0 or -ENOMEM. */
static int
form_body (const struct param *p, size_t n, struct cv_key **out)
{
  size_t total = 0, o = 0;
  int r;

  for (size_t i = 0; i < n; i++)
    if (p[i].value)
      total
          += strlen (p[i].name) + 2 + form_encode (p[i].value, p[i].len, NULL);
  if ((r = cv_key_new (total, out)) < 0)
    return r;
  char *b = (char *) (*out)->b;
  for (size_t i = 0; i < n; i++) {
    if (!p[i].value)
      continue;
    if (o)
      b[o++] = '&';
    memcpy (b + o, p[i].name, strlen (p[i].name));
    o += strlen (p[i].name);
    b[o++] = '=';
    o += form_encode (p[i].value, p[i].len, b + o);
  }
  (*out)->len = o; /* total counted one '&' too many */
  return 0;
}

/* One STS call. */
struct sts_call {
  const struct cv_aws_sts *sts;
  const char *op;
  const struct cv_key *body;
  const struct cv_aws_creds *signer; /* NULL: unsigned */
};

/* What the last attempt of a call got. */
struct sts_result {
  struct cv_aws_fetched got;
  char code[96];     /* the error's Code, or "" */
  char message[512]; /* its Message (sanitised), or curl's */
  int attempts;
  bool quota_exhausted;
};

/* The headers of one attempt, signed at now when c->signer (SigV4 for
 * "sts", as botocore signs them), else only the content type. They may hold
 * the session token: free with cv_kms_headers_free. */
static int
make_headers (const struct sts_call *c, time_t now, struct curl_slist **out)
{
  if (c->signer)
    return cv_aws_sign_headers ("sts", FORM_CT, NULL, c->sts->host,
                                c->sts->region, c->body->b, c->body->len,
                                c->signer, now, out);
  *out = curl_slist_append (NULL, "Content-Type: " FORM_CT);
  return *out ? 0 : -ENOMEM;
}

/* One attempt: its retry class; 0 in *rc with res->got.body on success,
 * -EIO when STS failed (res says how), another -errno for a local
 * failure. */
static enum cv_kms_retry
attempt (const struct sts_call *c, struct sts_result *res, int *rc)
{
  struct curl_slist *signed_hdrs = NULL;
  const char *hdrs[10] = { 0 };
  long connect_ms
      = cv_kms_knob_ms ("CV_KMS_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS);
  long total_ms = cv_kms_knob_ms ("CV_KMS_TIMEOUT_MS", TIMEOUT_MS);

  cv_aws_fetched_free (&res->got);
  res->code[0] = res->message[0] = '\0';
  if (connect_ms < 0 || total_ms < 0) { /* a bad knob, reported */
    *rc = -EINVAL;
    return CV_KMS_NO_RETRY;
  }
  if ((*rc = make_headers (c, time (NULL), &signed_hdrs)) < 0)
    return CV_KMS_NO_RETRY;
  size_t k = 0;
  for (struct curl_slist *l = signed_hdrs; l && k + 1 < ARRAY_SIZE (hdrs);
       l = l->next)
    hdrs[k++] = l->data;
  struct cv_aws_fetch req = { .method = "POST",
                              .url = c->sts->url,
                              .headers = hdrs,
                              .body = (const char *) c->body->b,
                              .body_len = c->body->len,
                              .ca_bundle = c->sts->ca_bundle,
                              .connect_timeout_ms = connect_ms,
                              .timeout_ms = total_ms };
  *rc = cv_aws_fetch (&req, &res->got);
  cv_kms_headers_free (signed_hdrs);
  if (res->got.request_id[0])
    cv_reqlog_add ("sts", c->op, res->got.request_id);
  if (*rc == -EIO) {
    snprintf (res->message, sizeof res->message, "%s", res->got.message);
    return cv_kms_classify (res->got.curl_code, 0, "");
  }
  if (*rc < 0)
    return CV_KMS_NO_RETRY;
  long st = res->got.status;
  if (st >= 200 && st < 300)
    return CV_KMS_NO_RETRY;
  *rc = -EIO;
  const char *b = res->got.body ? (const char *) res->got.body->b : "";
  size_t blen = res->got.body ? res->got.body->len - 1 : 0;
  if (cv_aws_sts_parse (b, blen, c->op, NULL, NULL, NULL, res->code,
                        sizeof res->code, res->message, sizeof res->message)
          < 0
      || !res->code[0])
    snprintf (res->code, sizeof res->code, "HTTP %ld", st);
  /* STS's transient error of web identity (the SDKs retry it). */
  if (strcmp (res->code, "IDPCommunicationError") == 0)
    return CV_KMS_RETRY;
  return cv_kms_classify (CURLE_OK, st, res->code);
}

/* One attempt of a call, for cv_aws_retried. */
struct sts_attempt {
  const struct sts_call *c;
  struct sts_result *res;
};

static int
sts_attempt (void *arg, struct cv_aws_attempt *a)
{
  struct sts_attempt *t = arg;
  int rc;

  a->how = attempt (t->c, t->res, &rc);
  a->what = t->res->code[0] ? t->res->code : t->res->message;
  a->status = t->res->got.status;
  a->request_id = t->res->got.request_id;
  return rc;
}

/* Make the call with the retries of c->sts->retry (adaptive mode retries as
 * standard: a credential call is made once an hour, there is no rate to
 * adapt). 0 with res->got.body on success; -EIO when STS failed (res says
 * how; debug lines only); another -errno for a local failure. */
static int
sts_call (const struct sts_call *c, struct sts_result *res)
{
  struct sts_attempt t = { c, res };

  *res = (struct sts_result){ 0 };
  return cv_aws_retried ("sts", c->op, c->sts->retry.max_attempts, false,
                         sts_attempt, &t, &res->attempts,
                         &res->quota_exhausted);
}

/* --- errors -------------------------------------------------------------- */

/* What an STS error means for an operation, and what to do. */
struct sts_error {
  const char *code;
  int err;
  const char *todo;
};

static const char creds_todo[]
    = "check the access key id, secret and session token of these "
      "credentials, and the system clock";

static const struct sts_error assume_errors[] = {
  { "AccessDenied", -EACCES,
    "check that the role's trust policy allows sts:AssumeRole for this "
    "principal (and its sts:ExternalId condition: external_id in the "
    "profile), and that the principal's own policies allow sts:AssumeRole on "
    "the role" },
  { "ExpiredToken", -EKEYEXPIRED,
    "the source credentials have expired: refresh them" },
  { "ExpiredTokenException", -EKEYEXPIRED,
    "the source credentials have expired: refresh them" },
  { "InvalidClientTokenId", -EKEYEXPIRED, creds_todo },
  { "SignatureDoesNotMatch", -EKEYEXPIRED, creds_todo },
  { "IncompleteSignature", -EKEYEXPIRED, creds_todo },
  { "MissingAuthenticationToken", -EKEYEXPIRED, creds_todo },
  { "RegionDisabledException", -EACCES,
    "activate STS in this region (IAM account settings) or use another STS "
    "endpoint (AWS_ENDPOINT_URL_STS)" },
  { "ValidationError", -EINVAL,
    "check role_arn, role_session_name (2 to 64 of A-Z a-z 0-9 +=,.@_-), "
    "external_id and duration_seconds (900 up to the role's maximum session "
    "duration, and 3600 at most when the source is itself an assumed role)" },
  { "MalformedPolicyDocument", -EINVAL, "check the role's policies" },
  { "PackedPolicyTooLarge", -EINVAL, "check the role's session tags" },
};

static const struct sts_error web_errors[] = {
  { "ExpiredTokenException", -EKEYEXPIRED,
    "the token file must be kept fresh by its issuer: on EKS check that the "
    "pod's projected service-account token is mounted there (the kubelet "
    "rotates it); elsewhere write a new token to the file" },
  { "InvalidIdentityToken", -EACCES,
    "check that an IAM OIDC identity provider exists for the token's issuer "
    "(iss), that its audiences hold the token's aud (sts.amazonaws.com on "
    "EKS), and that the token is signed by the issuer's keys" },
  { "AccessDenied", -EACCES,
    "check the role's trust policy: an sts:AssumeRoleWithWebIdentity "
    "statement for the Federated principal of the OIDC provider, with the "
    "token's aud and sub in its conditions (EKS: "
    "system:serviceaccount:NAMESPACE:NAME)" },
  { "IDPRejectedClaim", -EACCES,
    "the identity provider rejected the token: check its claims" },
  { "IDPCommunicationError", -EAGAIN,
    "STS could not reach the identity provider: try again later" },
  { "RegionDisabledException", -EACCES,
    "activate STS in this region (IAM account settings) or use another STS "
    "endpoint (AWS_ENDPOINT_URL_STS)" },
  { "ValidationError", -EINVAL,
    "check role_arn, role_session_name (2 to 64 of A-Z a-z 0-9 +=,.@_-) and "
    "duration_seconds (900 up to the role's maximum session duration)" },
};

static const struct sts_error caller_errors[] = {
  { "AccessDenied", -EACCES, "the caller may not call sts:GetCallerIdentity" },
  { "ExpiredToken", -EKEYEXPIRED,
    "the credentials have expired: refresh them" },
  { "ExpiredTokenException", -EKEYEXPIRED,
    "the credentials have expired: refresh them" },
  { "InvalidClientTokenId", -EKEYEXPIRED, creds_todo },
  { "SignatureDoesNotMatch", -EKEYEXPIRED, creds_todo },
  { "IncompleteSignature", -EKEYEXPIRED, creds_todo },
  { "MissingAuthenticationToken", -EKEYEXPIRED, creds_todo },
};

/* Log a failed call once (what: "AssumeRole of role R with the credentials
 * from S") and return its -errno. */
static int
sts_failed (const struct sts_call *c, const char *what,
            const struct sts_result *res, const struct sts_error *errs,
            size_t nerrs)
{
  char extra[64] = "";
  const struct cv_aws_fetched *g = &res->got;
  const char *rid = g->request_id[0] ? g->request_id : "none";
  const char *sep = res->message[0] ? ": " : "";

  if (res->attempts > 1)
    snprintf (extra, sizeof extra, ", %d attempts%s", res->attempts,
              res->quota_exhausted ? ", retry quota exhausted" : "");
  if (g->status == 0) {
    if (g->curl_code == CURLE_PEER_FAILED_VERIFICATION
        || g->curl_code == CURLE_SSL_CACERT_BADFILE) {
      cv_err ("sts %s: the TLS certificate of %s is not trusted (%s); give "
              "its CA with AWS_CA_BUNDLE or the profile's ca_bundle "
              "(verification is never turned off)",
              what, c->sts->url, res->message);
      return -ECONNREFUSED;
    }
    cv_err ("sts %s: cannot reach AWS STS at %s (region %s): %s%s; check the "
            "network and the STS endpoint (AWS_ENDPOINT_URL_STS, the "
            "profile's sts endpoint, AWS_REGION)",
            what, c->sts->url, c->sts->region, res->message, extra);
    return g->curl_code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                                                    : -ECONNREFUSED;
  }
  for (size_t i = 0; i < nerrs; i++)
    if (strcmp (errs[i].code, res->code) == 0) {
      cv_err ("sts %s: refused (%s%s%s; request id %s%s); %s", what, res->code,
              sep, res->message, rid, extra, errs[i].todo);
      return errs[i].err;
    }
  char status[24] = ""; /* when the code is not already "HTTP N" */
  if (strncmp (res->code, "HTTP ", 5) != 0)
    snprintf (status, sizeof status, "; HTTP %ld", g->status);
  if (g->status >= 500 || g->status == 429 || strstr (res->code, "Throttl")) {
    cv_err ("sts %s: AWS STS failed (%s%s%s%s, request id %s%s); it is "
            "unavailable or throttling: try again later",
            what, res->code, sep, res->message, status, rid, extra);
    return -EAGAIN;
  }
  cv_err ("sts %s: refused (%s%s%s%s, request id %s%s)", what, res->code, sep,
          res->message, status, rid, extra);
  return -EIO;
}

/* Make call c and parse its answer into out / arn; what and errs are for
 * messages. */
static int
sts_run (const struct sts_call *c, const char *what,
         const struct sts_error *errs, size_t nerrs, const char *source,
         struct cv_aws_creds *out, char **arn)
{
  struct sts_result res;
  int r = sts_call (c, &res);

  if (r == -EIO)
    r = sts_failed (c, what, &res, errs, nerrs);
  else if (r == 0) {
    const struct cv_key *b = res.got.body;
    r = cv_aws_sts_parse (b ? (const char *) b->b : "", b ? b->len - 1 : 0,
                          c->op, source, out, arn, NULL, 0, NULL, 0);
    if (r == -EPROTO)
      cv_err ("sts %s: the answer of %s (HTTP %ld, request id %s) is not "
              "the XML answer of %s (nothing was taken from it); check the "
              "STS endpoint (AWS_ENDPOINT_URL_STS)",
              what, c->sts->url, res.got.status,
              res.got.request_id[0] ? res.got.request_id : "none", c->op);
  }
  cv_aws_fetched_free (&res.got);
  return r;
}

/* DurationSeconds as STS takes it: 0 (not sent: STS's default, 3600) or
 * 900..43200 (the role's maximum session duration is checked by STS). */
static int
check_duration (const char *what, int duration_s)
{
  if (duration_s == 0 || (duration_s >= 900 && duration_s <= 43200))
    return 0;
  cv_err ("sts %s: duration_seconds %d is out of range: STS takes 900 to "
          "43200 seconds, at most the role's maximum session duration",
          what, duration_s);
  return -EINVAL;
}

/* The session name: session, or "cryptvol-<unix time>" as botocore names
 * its sessions "botocore-session-<unix time>". */
static const char *
session_name (const char *session, char buf[32])
{
  if (session && *session)
    return session;
  snprintf (buf, 32, "cryptvol-%lld", (long long) time (NULL));
  return buf;
}

int
cv_aws_sts_assume_role (const struct cv_aws_sts *sts,
                        const struct cv_aws_creds *src, const char *role_arn,
                        const char *session, const char *external_id,
                        int duration_s, const char *source,
                        struct cv_aws_creds *out)
{
  char sname[32], dur[16];
  CLEANUP_FREE char *what = NULL, *from = NULL;
  CLEANUP_KEY struct cv_key *body = NULL;
  const char *name = session_name (session, sname);
  const char *via = source ? source : src->source;
  int r;

  if (!(what = cv_strf ("AssumeRole of role %s with the credentials from %s",
                        role_arn, via))
      || !(from = cv_strf ("role %s via %s", role_arn, via)))
    return -ENOMEM;
  if ((r = check_duration (what, duration_s)) < 0)
    return r;
  snprintf (dur, sizeof dur, "%d", duration_s);
  struct param p[] = {
    { "Action", "AssumeRole", 10 },
    { "Version", STS_VERSION, sizeof STS_VERSION - 1 },
    { "RoleArn", role_arn, strlen (role_arn) },
    { "RoleSessionName", name, strlen (name) },
    { "ExternalId", external_id, external_id ? strlen (external_id) : 0 },
    { "DurationSeconds", duration_s ? dur : NULL, strlen (dur) },
  };
  if ((r = form_body (p, ARRAY_SIZE (p), &body)) < 0)
    return r;
  struct sts_call c
      = { .sts = sts, .op = "AssumeRole", .body = body, .signer = src };
  return sts_run (&c, what, assume_errors, ARRAY_SIZE (assume_errors), from,
                  out, NULL);
}

int
cv_aws_read_token_file (const char *path, const char *what, const char *todo,
                        size_t max, struct cv_key **out)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  CLEANUP_KEY struct cv_key *k = NULL;
  struct stat st;
  size_t got = 0, n;
  int r;

  if (fd < 0 || fstat (fd, &st) < 0) {
    r = -errno;
    cv_err ("%s: cannot read the token file %s: %s; %s", what, path,
            strerror (-r), todo);
    return r == -ENOENT ? -ENOENT : -EACCES;
  }
  if (!S_ISREG (st.st_mode)) {
    cv_err ("%s: the token file %s is not a regular file; %s", what, path,
            todo);
    return -EINVAL;
  }
  if ((r = cv_key_new (max + 1, &k)) < 0)
    return r;
  if ((r = cv_read_all (fd, k->b, max + 1, &got)) < 0) {
    cv_err ("%s: cannot read the token file %s: %s; %s", what, path,
            strerror (-r), todo);
    return r;
  }
  n = got;
  while (n
         && (k->b[n - 1] == '\n' || k->b[n - 1] == '\r' || k->b[n - 1] == ' '
             || k->b[n - 1] == '\t'))
    n--;
  if (got > max || n == 0) {
    cv_err ("%s: the token file %s is %s; %s", what, path,
            n ? "too large for a token" : "empty", todo);
    return -EINVAL;
  }
  if ((r = cv_key_new (n + 1, out)) < 0)
    return r;
  memcpy ((*out)->b, k->b, n);
  return 0;
}

int
cv_aws_sts_web_identity (const struct cv_aws_sts *sts, const char *role_arn,
                         const char *session, const char *token_file,
                         int duration_s, const char *source,
                         struct cv_aws_creds *out)
{
  char sname[32], dur[16];
  CLEANUP_FREE char *what = NULL, *from = NULL, *todo = NULL;
  CLEANUP_KEY struct cv_key *token = NULL, *body = NULL;
  const char *name = session_name (session, sname);
  const char *via = source ? source : "web identity";
  int r;

  if (!(what = cv_strf ("AssumeRoleWithWebIdentity of role %s with the token "
                        "file %s (%s)",
                        role_arn, token_file, via))
      || !(from = cv_strf ("role %s via %s", role_arn, via))
      || !(todo
           = cv_strf ("check %s, which names it; on EKS check the pod's "
                      "service account (annotation "
                      "eks.amazonaws.com/role-arn) and its projected token "
                      "volume",
                      via)))
    return -ENOMEM;
  if ((r = check_duration (what, duration_s)) < 0
      || (r = cv_aws_read_token_file (token_file, "sts web identity", todo,
                                      TOKEN_FILE_MAX, &token))
             < 0)
    return r;
  snprintf (dur, sizeof dur, "%d", duration_s);
  struct param p[] = {
    { "Action", "AssumeRoleWithWebIdentity", 25 },
    { "Version", STS_VERSION, sizeof STS_VERSION - 1 },
    { "RoleArn", role_arn, strlen (role_arn) },
    { "RoleSessionName", name, strlen (name) },
    { "WebIdentityToken", (const char *) token->b, token->len - 1 },
    { "DurationSeconds", duration_s ? dur : NULL, strlen (dur) },
  };
  if ((r = form_body (p, ARRAY_SIZE (p), &body)) < 0)
    return r;
  struct sts_call c = {
    .sts = sts, .op = "AssumeRoleWithWebIdentity", .body = body, .signer = NULL
  };
  return sts_run (&c, what, web_errors, ARRAY_SIZE (web_errors), from, out,
                  NULL);
}

int
cv_aws_sts_caller_identity (const struct cv_aws_sts *sts,
                            const struct cv_aws_creds *c, char **arn)
{
  static const char form[] = "Action=GetCallerIdentity&Version=" STS_VERSION;
  CLEANUP_FREE char *what = NULL;
  CLEANUP_KEY struct cv_key *body = NULL;
  int r;

  if (!(what = cv_strf ("GetCallerIdentity with the credentials from %s",
                        c->source ? c->source : "the chain")))
    return -ENOMEM;
  if ((r = cv_key_from (form, sizeof form - 1, &body)) < 0)
    return r;
  struct sts_call call
      = { .sts = sts, .op = "GetCallerIdentity", .body = body, .signer = c };
  return sts_run (&call, what, caller_errors, ARRAY_SIZE (caller_errors), NULL,
                  NULL, arn);
}

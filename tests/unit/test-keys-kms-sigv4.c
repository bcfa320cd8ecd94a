/* SigV4 known answers through the signer the KMS provider ships:
 *  - every POST case of AWS's suites in ../shared/vectors/sigv4
 *    (aws4_testsuite/, aws-c-auth-v4/ header variants) through cv_sigv4_sign:
 *    canonical request, string to sign and signature;
 *  - the KMS-shaped cases (tests/kms/vectors/kms-generated) through
 *    cv_kms_sign_request, the function that makes the headers of every real
 *    KMS request: every header line and the Authorization value, as in the
 *    signed request (.sreq). */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/kms.h"
#include "keys/sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_DATE "20150830T123600Z"

static struct cv_key *secret;

/* The whole file at path as a string (caller frees), or NULL. */
static char *
slurp (const char *path)
{
  FILE *f = fopen (path, "rb");
  char *buf = NULL;
  size_t len = 0;

  if (!f)
    return NULL;
  FILE *m = open_memstream (&buf, &len);
  int c;
  while ((c = fgetc (f)) != EOF)
    fputc (c, m);
  fclose (m);
  fclose (f);
  return buf;
}

/* slurp of the path made from fmt. */
static char *__attribute__ ((format (printf, 1, 2)))
slurpf (const char *fmt, ...)
{
  CLEANUP_FREE char *path = NULL;
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&path, fmt, ap);
  va_end (ap);
  if (n < 0) {
    path = NULL;
    return NULL;
  }
  return slurp (path);
}

/* s without trailing newlines (in place). */
static char *
chomp (char *s)
{
  size_t n = s ? strlen (s) : 0;

  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

#define MAX_HEADERS 32

/* A request as the suites write it: request line, headers, blank line,
 * body. Pointers point into text (modified in place). */
struct req {
  char *method, *path, *query, *body;
  struct cv_sigv4_header h[MAX_HEADERS];
  size_t nh;
};

static bool
parse_req (char *text, struct req *r)
{
  char *line, *save = NULL, *body = strstr (text, "\n\n");

  memset (r, 0, sizeof *r);
  if (body) {
    *body = '\0';
    r->body = body + 2;
  } else
    r->body = text + strlen (text);
  line = strtok_r (text, "\n", &save);
  if (!line)
    return false;
  /* "METHOD TARGET HTTP/1.1" */
  char *sp1 = strchr (line, ' '), *sp2 = strrchr (line, ' ');
  if (!sp1 || sp2 == sp1)
    return false;
  *sp1 = *sp2 = '\0';
  r->method = line;
  r->path = sp1 + 1;
  if ((r->query = strchr (r->path, '?')))
    *r->query++ = '\0';
  while ((line = strtok_r (NULL, "\n", &save))) {
    char *colon = strchr (line, ':');
    if (!colon || r->nh == MAX_HEADERS)
      return false;
    *colon = '\0';
    r->h[r->nh++] = (struct cv_sigv4_header){ line, colon + 1 };
  }
  return true;
}

/* The value of header name in r, or NULL. */
static const char *
req_header (const struct req *r, const char *name)
{
  for (size_t i = 0; i < r->nh; i++)
    if (strcasecmp (r->h[i].name, name) == 0)
      return r->h[i].value;
  return NULL;
}

/* Sign r and compare with the expected canonical request, string to sign
 * and Authorization (or bare signature). */
static void
check_signed (const char *name, const struct req *r, const char *region,
              const char *service, const char *date, const char *want_creq,
              const char *want_sts, const char *want_authz,
              const char *want_sig)
{
  struct cv_sigv4_request sr = {
    .method = r->method,
    .path = r->path,
    .query = r->query,
    .headers = r->h,
    .nheaders = r->nh,
    .body = r->body,
    .body_len = strlen (r->body),
  };
  struct cv_sigv4_scope sc = { AKID, secret, region, service, date };
  CLEANUP_FREE char *authz = NULL, *creq = NULL, *sts = NULL;
  int rc = cv_sigv4_sign (&sr, &sc, &authz, &creq, &sts);

  CHECK (rc == 0, "%s: cv_sigv4_sign: %d", name, rc);
  if (rc < 0)
    return;
  if (want_creq)
    CHECK (strcmp (creq, want_creq) == 0,
           "%s: canonical request\n--- got\n%s\n--- want\n%s", name, creq,
           want_creq);
  if (want_sts)
    CHECK (strcmp (sts, want_sts) == 0,
           "%s: string to sign\n--- got\n%s\n--- want\n%s", name, sts,
           want_sts);
  if (want_authz)
    CHECK (strcmp (authz, want_authz) == 0,
           "%s: Authorization\n got:  %s\n want: %s", name, authz, want_authz);
  if (want_sig) {
    const char *sig = strstr (authz, "Signature=");
    CHECK (sig && strcmp (sig + 10, want_sig) == 0, "%s: signature %s, want %s",
           name, sig ? sig + 10 : "none", want_sig);
  }
}

/* One case of the classic layout: DIR/NAME.{req,creq,sts,authz}. */
static bool
classic_case (const char *dir, const char *name)
{
  struct req r;

  CLEANUP_FREE char *req = slurpf ("%s/%s.req", dir, name);
  if (!req || strncmp (req, "POST ", 5) != 0)
    return false; /* not a POST case: does not apply */
  CLEANUP_FREE char *creq = slurpf ("%s/%s.creq", dir, name);
  CLEANUP_FREE char *sts = slurpf ("%s/%s.sts", dir, name);
  CLEANUP_FREE char *authz = slurpf ("%s/%s.authz", dir, name);
  CHECK (creq && sts && authz, "%s: vector files missing", name);
  if (!creq || !sts || !authz)
    return true;
  CHECK (parse_req (req, &r), "%s: cannot parse the request", name);
  const char *date = req_header (&r, "X-Amz-Date");
  CHECK (date != NULL, "%s: no X-Amz-Date", name);
  const char *service = strstr (authz, "/kms/") ? "kms" : "service";
  check_signed (name, &r, "us-east-1", service, date ? date : SUITE_DATE,
                chomp (creq), chomp (sts), chomp (authz), NULL);
  return true;
}

/* The POST cases of aws4_testsuite (one level of sub-suites). */
static int
run_classic (const char *root)
{
  DIR *d = opendir (root);
  struct dirent *e;
  int n = 0;

  if (!d)
    return -1;
  while ((e = readdir (d))) {
    CLEANUP_FREE char *sub = NULL, *file = NULL;
    struct stat st;
    if (e->d_name[0] == '.')
      continue;
    if (asprintf (&sub, "%s/%s", root, e->d_name) < 0
        || asprintf (&file, "%s/%s.req", sub, e->d_name) < 0)
      break;
    if (stat (sub, &st) < 0 || !S_ISDIR (st.st_mode))
      continue;
    if (access (file, R_OK) == 0)
      n += classic_case (sub, e->d_name);
    else {
      int m = run_classic (sub);
      n += m > 0 ? m : 0;
    }
  }
  closedir (d);
  return n;
}

/* One aws-c-auth case: context.json, request.txt, header-*.txt. The signer
 * there adds X-Amz-Date, x-amz-content-sha256 (sign_body) and the session
 * token (unless omit_session_token) before signing. */
static bool
cauth_case (const char *dir, const char *name)
{
  struct req r;
  json_error_t err;

  CLEANUP_FREE char *req = slurpf ("%s/request.txt", dir);
  if (!req || strncmp (req, "POST ", 5) != 0)
    return false;
  CLEANUP_FREE char *ctxpath = NULL;
  json_auto_t *ctx = asprintf (&ctxpath, "%s/context.json", dir) < 0
                         ? NULL
                         : json_load_file (ctxpath, 0, &err);
  CLEANUP_FREE char *creq = slurpf ("%s/header-canonical-request.txt", dir);
  CLEANUP_FREE char *sts = slurpf ("%s/header-string-to-sign.txt", dir);
  CLEANUP_FREE char *sig = slurpf ("%s/header-signature.txt", dir);
  CHECK (ctx && creq && sts && sig, "%s: vector files missing", name);
  if (!ctx || !creq || !sts || !sig)
    return true;
  CHECK (parse_req (req, &r), "%s: cannot parse request.txt", name);

  const char *token = json_string_value (
      json_object_get (json_object_get (ctx, "credentials"), "token"));
  const char *ts = json_string_value (json_object_get (ctx, "timestamp"));
  char date[CV_SIGV4_DATE_LEN + 1], hash[65];
  struct tm tm = { 0 };
  CHECK (ts && strptime (ts, "%Y-%m-%dT%H:%M:%SZ", &tm), "%s: timestamp", name);
  strftime (date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
  r.h[r.nh++] = (struct cv_sigv4_header){ "X-Amz-Date", date };
  if (json_is_true (json_object_get (ctx, "sign_body"))) {
    uint8_t d[32];
    cv_sha256 (r.body, strlen (r.body), d);
    for (int i = 0; i < 32; i++)
      sprintf (hash + 2 * i, "%02x", d[i]);
    r.h[r.nh++] = (struct cv_sigv4_header){ "x-amz-content-sha256", hash };
  }
  if (token && !json_is_true (json_object_get (ctx, "omit_session_token")))
    r.h[r.nh++] = (struct cv_sigv4_header){ "X-Amz-Security-Token", token };
  check_signed (name, &r, json_string_value (json_object_get (ctx, "region")),
                json_string_value (json_object_get (ctx, "service")), date,
                chomp (creq), chomp (sts), NULL, chomp (sig));
  return true;
}

static int
run_cauth (const char *root)
{
  DIR *d = opendir (root);
  struct dirent *e;
  int n = 0;

  if (!d)
    return -1;
  while ((e = readdir (d))) {
    CLEANUP_FREE char *sub = NULL;
    if (e->d_name[0] == '.')
      continue;
    if (asprintf (&sub, "%s/%s", root, e->d_name) < 0)
      break;
    n += cauth_case (sub, e->d_name);
  }
  closedir (d);
  return n;
}

/* One KMS case through cv_kms_sign_request: the headers it makes must be
 * exactly the signed request's, in order. */
static bool
kms_case (const char *dir, const char *name)
{
  struct req r;

  CLEANUP_FREE char *req = slurpf ("%s/%s.req", dir, name);
  CLEANUP_FREE char *sreq = slurpf ("%s/%s.sreq", dir, name);
  CLEANUP_FREE char *authz = slurpf ("%s/%s.authz", dir, name);
  if (!req)
    return false;
  CHECK (sreq && authz, "%s: vector files missing", name);
  if (!sreq || !authz)
    return true;
  chomp (authz);
  CHECK (parse_req (req, &r), "%s: cannot parse the request", name);

  /* The generic signer agrees with the expected canonical request too. */
  CLEANUP_FREE char *creq = slurpf ("%s/%s.creq", dir, name);
  CLEANUP_FREE char *sts = slurpf ("%s/%s.sts", dir, name);
  check_signed (name, &r, "us-east-1", "kms", SUITE_DATE, chomp (creq),
                chomp (sts), authz, NULL);

  const char *target = req_header (&r, "X-Amz-Target");
  const char *host = req_header (&r, "Host");
  const char *token = req_header (&r, "X-Amz-Security-Token");
  CHECK (target && strncmp (target, "TrentService.", 13) == 0 && host,
         "%s: not a KMS request", name);
  if (!target || !host)
    return true;
  struct cv_aws_creds cr = { .access_key_id = (char *) AKID, .secret = secret };
  if (token)
    cv_key_from (token, strlen (token) + 1, &cr.token);
  struct tm tm = { 0 };
  strptime (SUITE_DATE, "%Y%m%dT%H%M%SZ", &tm);
  struct curl_slist *l = NULL;
  int rc = cv_kms_sign_request (host, "us-east-1", target + 13, r.body,
                                strlen (r.body), &cr, timegm (&tm), &l);
  CHECK (rc == 0, "%s: cv_kms_sign_request: %d", name, rc);

  /* Compare header lines: .sreq has "Name:value", curl lines "Name: value";
   * the lines that only remove curl's Accept/Expect are not sent. */
  char *save = NULL, *line = strtok_r (sreq, "\n", &save); /* request line */
  struct curl_slist *i = l;
  int lines = 0;
  while ((line = strtok_r (NULL, "\n", &save)) && *line && line[0] != '{') {
    while (i && i->data[strlen (i->data) - 1] == ':')
      i = i->next;
    char *colon = strchr (line, ':');
    const char *v = colon ? colon + 1 : "";
    while (*v == ' ')
      v++;
    CHECK (i != NULL, "%s: header %s not made", name, line);
    if (!i || !colon)
      break;
    char *icolon = strchr (i->data, ':');
    const char *iv = icolon + 1;
    while (*iv == ' ')
      iv++;
    CHECK ((size_t) (icolon - i->data) == (size_t) (colon - line)
               && strncasecmp (i->data, line, colon - line) == 0
               && strcmp (iv, v) == 0,
           "%s: header line %d\n got:  %s\n want: %s", name, lines, i->data,
           line);
    i = i->next;
    lines++;
  }
  while (i && i->data[strlen (i->data) - 1] == ':')
    i = i->next;
  CHECK (i == NULL, "%s: extra header %s", name, i ? i->data : "");
  CHECK (lines >= 5, "%s: only %d header lines compared", name, lines);
  cv_kms_headers_free (l);
  cv_key_free (cr.token);
  return true;
}

static int
run_kms (const char *root)
{
  DIR *d = opendir (root);
  struct dirent *e;
  int n = 0;

  if (!d)
    return -1;
  while ((e = readdir (d))) {
    CLEANUP_FREE char *sub = NULL;
    if (e->d_name[0] == '.')
      continue;
    if (asprintf (&sub, "%s/%s", root, e->d_name) < 0)
      break;
    n += kms_case (sub, e->d_name);
  }
  closedir (d);
  return n;
}

/* What the signer must not do: ignore the secret, the body or a header. */
static void
check_sensitivity (void)
{
  struct cv_sigv4_header h[] = { { "Host", "example.amazonaws.com" },
                                 { "X-Amz-Date", SUITE_DATE },
                                 { "My-Header1", "  a   b  " } };
  struct cv_sigv4_header h2[] = { { "Host", "example.amazonaws.com" },
                                  { "X-Amz-Date", SUITE_DATE },
                                  { "my-header1", "a b" } };
  struct cv_sigv4_request r = { "POST", "/", NULL, h, 3, "{}", 2 };
  struct cv_sigv4_scope s = { AKID, secret, "us-east-1", "kms", SUITE_DATE };
  CLEANUP_FREE char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;
  CLEANUP_KEY struct cv_key *other = NULL;

  cv_key_from (SECRET "x", strlen (SECRET) + 1, &other);
  CHECK (cv_sigv4_sign (&r, &s, &a, NULL, NULL) == 0, "sign");
  r.headers = h2;
  CHECK (cv_sigv4_sign (&r, &s, &b, NULL, NULL) == 0, "sign");
  CHECK (a && b && strcmp (a, b) == 0,
         "header names are case-insensitive and values trimmed");
  r.body = "{} ";
  r.body_len = 3;
  CHECK (cv_sigv4_sign (&r, &s, &c, NULL, NULL) == 0 && strcmp (c, b) != 0,
         "an altered body changes the signature");
  r.body_len = 2;
  s.secret = other;
  CHECK (cv_sigv4_sign (&r, &s, &d, NULL, NULL) == 0 && strcmp (d, b) != 0,
         "another secret changes the signature");
  s.amz_date = "2015-08-30T12:36:00Z";
  CHECK (cv_sigv4_sign (&r, &s, &e, NULL, NULL) == -EINVAL,
         "a date not in the basic format is refused");
  CHECK (!strstr (harness_logged (), SECRET), "the secret was logged");
}

int
main (void)
{
  harness_init ();
  cv_key_from (SECRET, strlen (SECRET), &secret);

  int classic = run_classic (harness_srcpath ("../shared/vectors/sigv4/"
                                              "aws4_testsuite"));
  int cauth = run_cauth (harness_srcpath ("../shared/vectors/sigv4/"
                                          "aws-c-auth-v4"));
  int kms = run_kms (harness_srcpath ("tests/kms/vectors/kms-generated"));
  int kms_shared = run_kms (harness_srcpath ("../shared/vectors/sigv4/"
                                             "kms-generated"));
  printf ("POST cases: aws4_testsuite %d, aws-c-auth-v4 %d, kms-generated %d "
          "(+%d from ../shared)\n",
          classic, cauth, kms, kms_shared);
  /* The shared folder is optional (absent outside this workspace); the KMS
   * cases are in the tree and must all run. */
  CHECK (classic < 0 || classic >= 10, "only %d aws4_testsuite POST cases",
         classic);
  CHECK (cauth < 0 || cauth >= 10, "only %d aws-c-auth-v4 POST cases", cauth);
  CHECK (kms == 4, "%d kms-generated cases, want 4", kms);
  if (classic < 0 || cauth < 0)
    printf ("note: ../shared/vectors/sigv4 not found; only the in-tree KMS "
            "cases ran\n");
  check_sensitivity ();
  cv_key_free (secret);
  return harness_done ("test-keys-kms-sigv4");
}

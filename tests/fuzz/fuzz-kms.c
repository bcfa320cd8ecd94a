/* libFuzzer target: how the KMS provider reads AWS KMS answers. The input
 * is one HTTP answer to one operation:
 *   byte 0   the operation: Decrypt, Encrypt, GenerateDataKey, ReEncrypt
 *            or DescribeKey (modulo 5)
 *   byte 1   the HTTP status, from a table (low 4 bits)
 *   then     response header lines, each ending in \n, up to an empty line
 *   then     the body
 * The header lines go through cv_kms_header_line (curl's header callback),
 * the status and body through cv_kms_answer_read (the JSON answer or the
 * error body), and the outcome through cv_kms_answer_use: the error
 * mapping and its messages, or the provider's reading of the answer
 * (Plaintext, CiphertextBlob, KeyId, KeyMetadata). Everything taken from
 * the answer must be printable, bounded and NUL-terminated; nothing may
 * crash, leak or read out of bounds. make fuzz builds and runs it
 * (build-fuzz/fuzz-kms); test-fuzz.sh runs it for 30 s from
 * tests/fuzz/corpus-kms. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "keys/kms.h"

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  cv_log_set_debug (true); /* format every message, debug ones too */
  cv_kms_json_wipe_init ();
  return 0;
}

static void
check (bool ok)
{
  if (!ok)
    abort ();
}

/* A field of cv_kms_result: NUL-terminated within n bytes, printable. */
static void
field_ok (const char *s, size_t n)
{
  size_t len = strnlen (s, n);

  check (len < n);
  for (size_t i = 0; i < len; i++)
    check (s[i] >= 0x20 && s[i] < 0x7f);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const ops[]
      = { "Decrypt", "Encrypt", "GenerateDataKey", "ReEncrypt", "DescribeKey" };
  static const long statuses[] = { 200, 201, 204, 299, 300, 400, 401, 403,
                                   404, 408, 413, 429, 500, 502, 503, 504 };
  struct cv_kms_result res = { 0 };
  struct cv_key *dek = NULL;
  char *state = NULL;
  int r;

  if (size < 2)
    return 0;
  const char *op = ops[data[0] % 5];
  long status = statuses[data[1] & 15];
  const char *p = (const char *) data + 2, *end = (const char *) data + size;

  /* Header lines, each in a buffer of its own size as curl hands them. */
  while (p < end) {
    const char *nl = memchr (p, '\n', (size_t) (end - p));
    size_t len = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);
    if (len == 1 || (len == 2 && p[0] == '\r')) { /* the empty line */
      p += len;
      break;
    }
    char *line = malloc (len);
    check (line != NULL);
    memcpy (line, p, len);
    check (cv_kms_header_line (line, 1, len, &res) == len);
    free (line);
    p += len;
  }

  /* The body ends where the input ends: reading past it is caught. */
  r = cv_kms_answer_read (status, p, (size_t) (end - p), &res);
  check (r == 0 || r == -EIO);
  check ((r == 0) == json_is_object (res.body));
  check (r == -EIO || (status >= 200 && status < 300));
  check (r == 0 || status < 200 || status >= 300 || res.message[0]);
  check (r == 0 || (status >= 200 && status < 300) || res.type[0]);
  field_ok (res.type, sizeof res.type);
  field_ok (res.message, sizeof res.message);
  field_ok (res.request_id, sizeof res.request_id);
  (void) cv_kms_classify (0, res.status, res.type);
  (void) cv_kms_throttling (res.type);

  json_t *w = json_object ();
  check (w != NULL);
  r = cv_kms_answer_use (op, r, &res, w, &dek, &state);
  check (r <= 0);
  if (r == 0 && dek)
    check (dek->len == CV_DEK_LEN);
  if (r == 0 && strcmp (op, "DescribeKey") && strcmp (op, "Decrypt"))
    check (json_string_length (json_object_get (w, "key_arn")) > 0
           && json_string_length (json_object_get (w, "blob")) > 0);
  if (r == 0 && strcmp (op, "DescribeKey") == 0)
    check (state && strlen (state) > 0);
  json_decref (w);
  json_decref (res.body);
  cv_key_free (dek);
  free (state);
  return 0;
}

/* cv_kw_* (RFC 3394) and cv_kwp_* (RFC 5649) against the 55 key-wrap vectors
 * (tests/data/vectors/README.md): 256-bit-KEK RFC and NIST CAVP vectors and
 * the RFC 5649 examples, whose KEK is 192 bits. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "crypto/prim.h"
#include "harness.h"

#define NVECTORS 55
#define NFAIL 10

typedef int (*wrap_fn) (const uint8_t *, size_t, const uint8_t *, size_t,
                        uint8_t *, size_t *);

/* A new buffer (at least one byte) holding the hex field name of v; *len
 * receives its length. NULL if the field is missing or bad. */

/* Returns 1 if v is an expected failure, 0 otherwise. */
static int
test_vector (json_t *v)
{
  const char *id = json_string_value (json_object_get (v, "id"));
  const char *alg = json_string_value (json_object_get (v, "algorithm"));
  const char *expect = json_string_value (json_object_get (v, "expect"));
  size_t keklen = 0, len = 0, ctlen = 0, outlen = 0;
  CLEANUP_FREE uint8_t *kek = harness_hex_field (v, "kek", &keklen);
  CLEANUP_FREE uint8_t *ct = harness_hex_field (v, "ciphertext", &ctlen);
  CLEANUP_FREE uint8_t *pt = NULL;
  CLEANUP_FREE uint8_t *out = NULL;
  int kwp, fail, r;
  wrap_fn wrap, unwrap;

  if (!id || !alg || !expect || !kek || !ct || ctlen < 16) {
    CHECK (0, "malformed vector %s", id ? id : "(no id)");
    return 0;
  }
  kwp = strcmp (alg, "KWP") == 0;
  fail = strcmp (expect, "fail") == 0;
  wrap = kwp ? cv_kwp_wrap : cv_kw_wrap;
  unwrap = kwp ? cv_kwp_unwrap : cv_kw_unwrap;
  /* The unwrapped key is at most the wrapped length less the 8-byte IV. */
  out = calloc (1, ctlen);
  if (!out) {
    CHECK (0, "out of memory");
    return 0;
  }

  if (fail) {
    r = unwrap (kek, keklen, ct, ctlen, out, &outlen);
    CHECK (r == -EBADMSG, "%s: unwrap of a corrupt blob: %d, expected -EBADMSG",
           id, r);
    return 1;
  }

  pt = harness_hex_field (v, "plaintext", &len);
  if (!pt) {
    CHECK (0, "%s: no plaintext", id);
    return 0;
  }
  r = wrap (kek, keklen, pt, len, out, &outlen);
  CHECK (r == 0 && outlen == ctlen && memcmp (out, ct, ctlen) == 0,
         "%s: wrap: %d, %zu bytes (expected %zu)", id, r, outlen, ctlen);

  memset (out, 0, ctlen);
  outlen = 0;
  r = unwrap (kek, keklen, ct, ctlen, out, &outlen);
  CHECK (r == 0 && outlen == len && memcmp (out, pt, len) == 0,
         "%s: unwrap: %d, %zu bytes (expected %zu)", id, r, outlen, len);

  /* The same blob with one bit flipped, or under another KEK, is refused. */
  ct[ctlen - 1] ^= 0x01;
  r = unwrap (kek, keklen, ct, ctlen, out, &outlen);
  CHECK (r == -EBADMSG, "%s: unwrap of a flipped blob: %d", id, r);
  ct[ctlen - 1] ^= 0x01;
  kek[0] ^= 0x01;
  r = unwrap (kek, keklen, ct, ctlen, out, &outlen);
  CHECK (r == -EBADMSG, "%s: unwrap under a wrong KEK: %d", id, r);
  return 0;
}

int
main (void)
{
  const char *path = harness_srcpath ("tests/data/vectors/aes256_keywrap.json");
  json_error_t err;
  json_auto_t *all = NULL;
  json_t *v;
  size_t i;
  int nfail = 0;

  harness_init ();
  all = json_load_file (path, 0, &err);
  CHECK (json_is_array (all), "%s: %s (line %d)", path, err.text, err.line);
  if (json_is_array (all)) {
    CHECK (json_array_size (all) == NVECTORS, "%zu vectors, expected %d",
           json_array_size (all), NVECTORS);
    json_array_foreach (all, i, v) nfail += test_vector (v);
  }
  CHECK (nfail == NFAIL, "%d must-fail vectors, expected %d", nfail, NFAIL);
  return harness_done ("test-crypto-keywrap-vectors");
}

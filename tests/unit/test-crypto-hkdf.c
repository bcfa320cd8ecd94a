/* HKDF-SHA256 and HMAC-SHA256 against their RFCs' published known answers,
 * and the basic contract of secure key memory. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "harness.h"

/* RFC 5869 Appendix A, test cases 1-3 (HKDF with SHA-256): public
 * known-answer values, as hex (IKM, salt, info, OKM). info is passed as a C
 * string, which these values allow (no zero byte). */
static const struct {
  const char *name, *ikm, *salt, *info, *okm;
} hkdf_cases[] = {
  { "RFC 5869 A.1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208"
    "d5b887185865" },
  { "RFC 5869 A.2",
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
    "2425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f4041424344454647"
    "48494a4b4c4d4e4f",
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283"
    "8485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7"
    "a8a9aaabacadaeaf",
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3"
    "d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7"
    "f8f9fafbfcfdfeff",
    "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99"
    "cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87"
    "c14c01d5c1f3434f1d87" },
  { "RFC 5869 A.3", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395"
    "faa4b61a96c8" },
};

/* The hex string s decoded into buf (at most cap bytes); its length. */
static size_t
unhex (const char *s, uint8_t *buf, size_t cap)
{
  size_t n = strlen (s) / 2;
  int r = n <= cap ? cv_hex_decode (s, buf, n) : -EINVAL;

  CHECK (r == 0, "bad hex in the test table: %s", s);
  return r == 0 ? n : 0;
}

static void
test_hkdf (void)
{
  for (size_t c = 0; c < ARRAY_SIZE (hkdf_cases); c++) {
    const char *name = hkdf_cases[c].name;
    uint8_t ikm[80], salt[80], info[81] = { 0 }, expect[82], out[83];
    size_t ikmlen = unhex (hkdf_cases[c].ikm, ikm, sizeof ikm);
    size_t saltlen = unhex (hkdf_cases[c].salt, salt, sizeof salt);
    size_t okmlen = unhex (hkdf_cases[c].okm, expect, sizeof expect);
    int r;

    unhex (hkdf_cases[c].info, info, sizeof info - 1);
    memset (out, 0, sizeof out);
    r = cv_hkdf_sha256 (ikm, ikmlen, saltlen ? salt : NULL, saltlen,
                        (const char *) info, out, okmlen);
    CHECK (r == 0 && memcmp (out, expect, okmlen) == 0 && out[okmlen] == 0,
           "%s: %d", name, r);
    if (saltlen == 0) {
      /* An empty but non-NULL salt is the same as no salt. */
      memset (out, 0, sizeof out);
      r = cv_hkdf_sha256 (ikm, ikmlen, salt, 0, (const char *) info, out,
                          okmlen);
      CHECK (r == 0 && memcmp (out, expect, okmlen) == 0,
             "%s with an empty salt: %d", name, r);
    }
    /* A shorter output is a prefix of the longer one. */
    memset (out, 0, sizeof out);
    r = cv_hkdf_sha256 (ikm, ikmlen, saltlen ? salt : NULL, saltlen,
                        (const char *) info, out, 32);
    CHECK (r == 0 && memcmp (out, expect, 32) == 0 && out[32] == 0,
           "%s, 32 bytes: %d", name, r);
  }
}

/* RFC 4231 section 4.2 and 4.3, HMAC-SHA-256 test cases 1 and 2. */
static void
test_hmac (void)
{
  uint8_t key1[20], out[32], expect[32];
  int r;

  memset (key1, 0x0b, sizeof key1);
  r = cv_hmac_sha256 (key1, sizeof key1, "Hi There", 8, out);
  cv_hex_decode (
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      expect, 32);
  CHECK (r == 0 && memcmp (out, expect, 32) == 0, "RFC 4231 case 1: %d", r);

  r = cv_hmac_sha256 ((const uint8_t *) "Jefe", 4,
                      "what do ya want for nothing?", 28, out);
  cv_hex_decode (
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      expect, 32);
  CHECK (r == 0 && memcmp (out, expect, 32) == 0, "RFC 4231 case 2: %d", r);
}

/* cv_key_new gives zeroed memory of the asked length, cv_key_from a copy
 * that does not alias its source, cv_key_free accepts NULL. */
static void
test_secmem (void)
{
  static const uint8_t zero[4096];
  uint8_t src[17];
  struct cv_key *k = NULL, *c = NULL;
  int r;

  r = cv_key_new (64, &k);
  CHECK (r == 0 && k && k->len == 64, "cv_key_new (64): %d", r);
  if (k)
    CHECK (memcmp (k->b, zero, 64) == 0, "cv_key_new: not zeroed");
  cv_key_free (k);
  k = NULL;
  r = cv_key_new (4096, &k);
  CHECK (r == 0 && k && k->len == 4096, "cv_key_new (4096): %d", r);
  if (k)
    CHECK (memcmp (k->b, zero, 4096) == 0, "cv_key_new (4096): not zeroed");
  cv_key_free (k);

  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t) (0xa0 + i);
  r = cv_key_from (src, sizeof src, &c);
  CHECK (r == 0 && c && c->len == sizeof src, "cv_key_from: %d", r);
  if (c) {
    CHECK (memcmp (c->b, src, sizeof src) == 0, "cv_key_from: not a copy");
    CHECK ((void *) c->b != (void *) src, "cv_key_from: aliases its source");
    src[0] ^= 0xff;
    CHECK (c->b[0] == 0xa0, "cv_key_from: follows its source");
  }
  cv_key_free (c);
  cv_key_free (NULL);

  {
    CLEANUP_KEY struct cv_key *scoped = NULL;
    r = cv_key_new (1, &scoped);
    CHECK (r == 0 && scoped && scoped->len == 1 && scoped->b[0] == 0,
           "cv_key_new (1): %d", r);
  }
}

int
main (void)
{
  harness_init ();
  test_hkdf ();
  test_hmac ();
  test_secmem ();
  return harness_done ("test-crypto-hkdf");
}

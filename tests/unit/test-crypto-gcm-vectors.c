/* cv_gcm_seal/cv_gcm_open against the 17 NIST CAVP AES-256-GCM vectors
 * (tests/data/vectors/README.md), and rejection of altered messages. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "crypto/prim.h"
#include "harness.h"

#define NVECTORS 17

/* A new buffer (at least one byte, so never NULL) holding the hex field name
 * of v; *len receives its length. NULL if the field is missing or bad. */

/* Open must fail with -EBADMSG, log nothing and not reveal plaintext. */
static void
check_rejected (const char *id, const char *what, const uint8_t *key,
                const uint8_t *iv, const uint8_t *aad, size_t aadlen,
                const uint8_t *ct, size_t len, const uint8_t *tag)
{
  CLEANUP_FREE uint8_t *pt = calloc (1, len + 1);
  int r;

  harness_log_clear ();
  r = cv_gcm_open (key, iv, aad, aadlen, ct, len, tag, pt);
  CHECK (r == -EBADMSG, "%s: open with %s: %d, expected -EBADMSG", id, what, r);
  CHECK (harness_logged ()[0] == '\0', "%s: open with %s logged: %s", id, what,
         harness_logged ());
}

static int gmac_checked; /* vectors with no plaintext, checked as GMAC */

static void
test_vector (json_t *v)
{
  const char *id = json_string_value (json_object_get (v, "id"));
  json_int_t tag_bits = json_integer_value (json_object_get (v, "tag_bits"));
  size_t keylen = 0, ivlen = 0, aadlen = 0, len = 0, ctlen = 0, taglen = 0;
  CLEANUP_FREE uint8_t *key = harness_hex_field (v, "key", &keylen);
  CLEANUP_FREE uint8_t *iv = harness_hex_field (v, "iv", &ivlen);
  CLEANUP_FREE uint8_t *aad = harness_hex_field (v, "aad", &aadlen);
  CLEANUP_FREE uint8_t *pt = harness_hex_field (v, "plaintext", &len);
  CLEANUP_FREE uint8_t *ct = harness_hex_field (v, "ciphertext", &ctlen);
  CLEANUP_FREE uint8_t *tag = harness_hex_field (v, "tag", &taglen);
  CLEANUP_FREE uint8_t *out = NULL;
  uint8_t mytag[CV_GCM_TAG_LEN];
  int r;

  if (!id || !key || !iv || !aad || !pt || !ct || !tag || keylen != 32
      || ivlen != CV_GCM_IV_LEN || ctlen != len
      || (json_int_t) taglen * 8 != tag_bits || taglen > CV_GCM_TAG_LEN) {
    CHECK (0, "malformed vector %s", id ? id : "(no id)");
    return;
  }
  out = calloc (1, len + 1);
  if (!out) {
    CHECK (0, "out of memory");
    return;
  }

  r = cv_gcm_seal (key, iv, aad, aadlen, pt, len, out, mytag);
  CHECK (r == 0, "%s: seal: %d", id, r);
  CHECK (memcmp (out, ct, len) == 0, "%s: seal: ciphertext differs", id);
  CHECK (memcmp (mytag, tag, taglen) == 0, "%s: seal: tag differs", id);

  /* cv_gcm_open takes a full tag: for a truncated-tag vector, open with the
   * full tag that sealing gave (its prefix was just checked). */
  if (taglen == CV_GCM_TAG_LEN)
    memcpy (mytag, tag, taglen);
  memset (out, 0, len);
  r = cv_gcm_open (key, iv, aad, aadlen, ct, len, mytag, out);
  CHECK (r == 0 && memcmp (out, pt, len) == 0, "%s: open: %d", id, r);

  if (len > 0) {
    ct[len / 2] ^= 0x01;
    check_rejected (id, "a flipped ciphertext bit", key, iv, aad, aadlen, ct,
                    len, mytag);
    ct[len / 2] ^= 0x01;
  }
  mytag[CV_GCM_TAG_LEN - 1] ^= 0x80;
  check_rejected (id, "a flipped tag bit", key, iv, aad, aadlen, ct, len,
                  mytag);
  mytag[CV_GCM_TAG_LEN - 1] ^= 0x80;
  if (aadlen > 0) {
    aad[0] ^= 0x10;
    check_rejected (id, "a flipped AAD bit", key, iv, aad, aadlen, ct, len,
                    mytag);
    aad[0] ^= 0x10;
  } else {
    uint8_t extra = 0;
    check_rejected (id, "AAD added", key, iv, &extra, 1, ct, len, mytag);
  }
  /* With no plaintext, GCM is GMAC over the AAD: cv_gmac must give the tag,
   * on a context keyed once and used twice. */
  if (len == 0) {
    struct cv_gmac *g = NULL;
    uint8_t gtag[CV_GCM_TAG_LEN];
    CHECK (cv_gmac_new (key, &g) == 0, "%s: gmac_new", id);
    for (int round = 0; g && round < 2; round++) {
      CHECK (cv_gmac (g, iv, aad, aadlen, gtag) == 0
                 && memcmp (gtag, tag, taglen) == 0,
             "%s: GMAC tag differs (round %d)", id, round);
      gmac_checked++;
    }
    cv_gmac_free (g);
  }

  key[0] ^= 0x01;
  check_rejected (id, "a wrong key", key, iv, aad, aadlen, ct, len, mytag);
}

int
main (void)
{
  const char *path = harness_srcpath ("tests/data/vectors/aes256_gcm.json");
  json_error_t err;
  json_auto_t *all = NULL;
  json_t *v;
  size_t i;

  harness_init ();
  all = json_load_file (path, 0, &err);
  CHECK (json_is_array (all), "%s: %s (line %d)", path, err.text, err.line);
  if (json_is_array (all)) {
    CHECK (json_array_size (all) == NVECTORS, "%zu vectors, expected %d",
           json_array_size (all), NVECTORS);
    json_array_foreach (all, i, v) test_vector (v);
    CHECK (gmac_checked == 8,
           "GMAC checked %d times, expected 8 (4 vectors, twice)",
           gmac_checked);
  }
  return harness_done ("test-crypto-gcm-vectors");
}

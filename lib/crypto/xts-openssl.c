/* The OpenSSL implementation of the XTS engine: two EVP contexts (one per
 * direction) keyed once, inside a secure-heap scope so that their key
 * schedules are allocated there (secheap.h).
 *
 * Setting the IV with EVP_CipherInit_ex2 costs OpenSSL 3.0 a parameter
 * round trip (EVP_CIPHER_CTX_get_iv_length: OSSL_PARAM_locate, strcmp) per
 * call: 10-25% of the time of a 4096-byte sector, more for 512. The provider
 * hands out a pointer to the IV it encrypts with (OSSL_CIPHER_PARAM_UPDATED_IV
 * as an octet pointer); the tweak is written there instead. Setting
 * OSSL_CIPHER_PARAM_IV through EVP_CIPHER_CTX_set_params is no alternative:
 * 3.0 ignores it and still returns success. Whether the pointer works is
 * checked against EVP_CipherInit_ex2 when the engine is keyed; if it does not
 * (another provider or version), every sector goes through EVP_CipherInit_ex2
 * as before. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secheap.h"
#include "crypto/xts-internal.h"

static void
cipher_freep (EVP_CIPHER **c)
{
  EVP_CIPHER_free (*c);
}

/* A context for AES-256-XTS keyed with key in direction enc. */
static int
keyed_ctx (EVP_CIPHER *cipher, const uint8_t key[CV_DEK_LEN], int enc,
           EVP_CIPHER_CTX **out)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();

  if (!ctx) {
    cv_err ("xts: cannot allocate a cipher context: out of memory");
    return -ENOMEM;
  }
  if (!EVP_CipherInit_ex2 (ctx, cipher, key, NULL, enc, NULL)) {
    EVP_CIPHER_CTX_free (ctx);
    return cv_ossl_fail ("xts: keying AES-256-XTS failed");
  }
  *out = ctx;
  return 0;
}

/* One data unit with tweak through EVP_CipherInit_ex2, the documented way. */
static int
unit_by_init (EVP_CIPHER_CTX *ctx, const uint8_t tweak[16], uint8_t *dst,
              const uint8_t *src, int len)
{
  int outl;

  return EVP_CipherInit_ex2 (ctx, NULL, NULL, tweak, -1, NULL)
         && EVP_CipherUpdate (ctx, dst, &outl, src, len);
}

/* The provider's own IV buffer of ctx, if writing a tweak there gives the
 * same output as EVP_CipherInit_ex2; else NULL. Leaves ctx with an IV set,
 * which EVP_CipherUpdate needs. */
static uint8_t *
provider_iv (EVP_CIPHER_CTX *ctx)
{
  static const uint8_t t1[16] = { 1, 2, 3 }, t2[16] = { 0xfe, 0xed };
  uint8_t in[32] = { 0x11, 0x22 }, want[32], got[32];
  void *iv = NULL;
  OSSL_PARAM p[2]
      = { OSSL_PARAM_octet_ptr (OSSL_CIPHER_PARAM_UPDATED_IV, &iv, 16),
          OSSL_PARAM_END };
  int outl;

  /* want: t1 set the documented way; then t2 is the current IV, and t1
   * written through the pointer must give want again. */
  if (!unit_by_init (ctx, t1, want, in, sizeof in)
      || !unit_by_init (ctx, t2, got, in, sizeof in)
      || !EVP_CIPHER_CTX_get_params (ctx, p) || !iv
      || !OSSL_PARAM_modified (&p[0]) || p[0].return_size != 16) {
    ERR_clear_error ();
    return NULL;
  }
  memcpy (iv, t1, 16);
  if (!EVP_CipherUpdate (ctx, got, &outl, in, sizeof in)
      || memcmp (got, want, sizeof got) != 0) {
    ERR_clear_error ();
    return NULL;
  }
  return iv;
}

static int
ossl_unit (struct cv_xts *x, int enc, const uint8_t tweak[16], uint8_t *dst,
           const uint8_t *src, size_t len)
{
  EVP_CIPHER_CTX *ctx = enc ? x->ossl.enc : x->ossl.dec;
  uint8_t *iv = enc ? x->ossl.enc_iv : x->ossl.dec_iv;
  int outl;

  if (iv)
    memcpy (iv, tweak, 16);
  if ((!iv && !EVP_CipherInit_ex2 (ctx, NULL, NULL, tweak, -1, NULL))
      || !EVP_CipherUpdate (ctx, dst, &outl, src, (int) len))
    return cv_ossl_fail ("xts: %s a data unit failed",
                         enc ? "encrypting" : "decrypting");
  return 0;
}

static void
ossl_release (struct cv_xts *x)
{
  /* OpenSSL wipes the key schedules; our heap wipes the blocks again. */
  EVP_CIPHER_CTX_free (x->ossl.enc);
  EVP_CIPHER_CTX_free (x->ossl.dec);
}

int
cv_xts_ossl_key (struct cv_xts *x, const uint8_t key[CV_DEK_LEN])
{
  __attribute__ ((cleanup (cipher_freep))) EVP_CIPHER *cipher = NULL;
  bool scoped;
  int r;

  /* Fetched outside the scope: the fetch caches method data for good. The
   * contexts keep their own reference to it. */
  cipher = EVP_CIPHER_fetch (NULL, "AES-256-XTS", NULL);
  if (!cipher)
    return cv_ossl_fail ("xts: fetching AES-256-XTS failed");
  scoped = cv_secheap_scope_begin ();
  r = keyed_ctx (cipher, key, 1, &x->ossl.enc);
  if (r == 0)
    r = keyed_ctx (cipher, key, 0, &x->ossl.dec);
  if (scoped)
    cv_secheap_scope_end ();
  x->release = ossl_release;
  if (r < 0)
    return r;
  x->ossl.enc_iv = provider_iv (x->ossl.enc);
  x->ossl.dec_iv = provider_iv (x->ossl.dec);
  if (!x->ossl.enc_iv || !x->ossl.dec_iv)
    cv_debug ("xts: setting tweaks through EVP_CipherInit_ex2 (slower)");
  x->unit = ossl_unit;
  return 0;
}

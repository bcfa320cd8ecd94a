/* The AES-256-XTS sector engine: two EVP contexts keyed once, per sector one
 * tweak store and one update. See xts.h for the tweak numbering.
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
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"

#define HALF (CV_DEK_LEN / 2)

struct cv_xts {
  EVP_CIPHER_CTX *enc;
  EVP_CIPHER_CTX *dec;
  uint8_t *enc_iv; /* the provider's IV for enc, or NULL: set it by init */
  uint8_t *dec_iv;
  size_t sector_size;
  unsigned shift; /* log2 (sector_size / 512): tweaks per sector */
};

static void
cipher_freep (EVP_CIPHER **c)
{
  EVP_CIPHER_free (*c);
}

static void
xts_freep (struct cv_xts **x)
{
  cv_xts_free (*x);
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

/* Key both directions once; refuse what XTS or our format forbids. 0,
 * -EINVAL, -ENOMEM or -EIO, each logged here. */
int
cv_xts_new (enum cv_xts_impl impl, const uint8_t key[CV_DEK_LEN],
            unsigned sector_size, struct cv_xts **out)
{
  __attribute__ ((cleanup (cipher_freep))) EVP_CIPHER *cipher = NULL;
  __attribute__ ((cleanup (xts_freep))) struct cv_xts *x = NULL;
  int r;

  if (sector_size != 512 && sector_size != 4096) {
    cv_err ("xts: sector size %u is not supported; use 512 or 4096",
            sector_size);
    return -EINVAL;
  }
  if (CRYPTO_memcmp (key, key + HALF, HALF) == 0) {
    cv_err ("xts: the two 32-byte halves of the 64-byte key are equal, which "
            "XTS forbids; generate a new key");
    return -EINVAL;
  }

  /* The contexts keep their own reference to the fetched cipher. */
  cipher = EVP_CIPHER_fetch (NULL, "AES-256-XTS", NULL);
  if (!cipher)
    return cv_ossl_fail ("xts: fetching AES-256-XTS failed");
  x = calloc (1, sizeof *x);
  if (!x) {
    cv_err ("xts: cannot allocate the engine: out of memory");
    return -ENOMEM;
  }
  x->sector_size = sector_size;
  x->shift = sector_size == 4096 ? 3 : 0;
  r = keyed_ctx (cipher, key, 1, &x->enc);
  if (r == 0)
    r = keyed_ctx (cipher, key, 0, &x->dec);
  if (r < 0)
    return r;
  x->enc_iv = provider_iv (x->enc);
  x->dec_iv = provider_iv (x->dec);
  if (!x->enc_iv || !x->dec_iv)
    cv_debug ("xts: setting tweaks through EVP_CipherInit_ex2 (slower)");
  *out = STEAL (x);
  return 0;
}

enum cv_xts_impl
cv_xts_impl_of (const struct cv_xts *x)
{
  return CV_XTS_OPENSSL;
}

int
cv_xts_impl_parse (const char *s, enum cv_xts_impl *out)
{
  static const char *const names[] = { "auto", "openssl", "gcrypt" };

  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (s, names[i]) == 0) {
      *out = (enum cv_xts_impl) i;
      return 0;
    }
  return -EINVAL;
}

const char *
cv_xts_impl_name (enum cv_xts_impl impl)
{
  return impl == CV_XTS_OPENSSL  ? "openssl"
         : impl == CV_XTS_GCRYPT ? "gcrypt"
                                 : "auto";
}

int
cv_xts_pick (enum cv_xts_impl want, unsigned sector_size, enum cv_xts_impl *got)
{
  *got = CV_XTS_OPENSSL;
  return 0;
}

/* Free x and its keyed contexts (OpenSSL wipes the key schedules). NULL is
 * allowed. */
void
cv_xts_free (struct cv_xts *x)
{
  if (!x)
    return;
  EVP_CIPHER_CTX_free (x->enc);
  EVP_CIPHER_CTX_free (x->dec);
  free (x);
}

/* The hot path: nsect sectors, each one tweak store and one update on ctx
 * (whose provider IV is iv, or NULL). The tweak is 128 bits wide so that
 * 8 * index cannot wrap. */
static int
crypt_sectors (struct cv_xts *x, EVP_CIPHER_CTX *ctx, uint8_t *iv, uint8_t *dst,
               const uint8_t *src, uint64_t first, size_t nsect)
{
  const int len = (int) x->sector_size;
  unsigned __int128 t = (unsigned __int128) first << x->shift;
  const unsigned __int128 step = (unsigned __int128) 1 << x->shift;
  uint64_t tweak[2];
  int outl;

  for (size_t i = 0; i < nsect; i++, t += step) {
    tweak[0] = htole64 ((uint64_t) t);
    tweak[1] = htole64 ((uint64_t) (t >> 64));
    if (iv)
      memcpy (iv, tweak, sizeof tweak);
    if ((!iv
         && !EVP_CipherInit_ex2 (ctx, NULL, NULL, (const uint8_t *) tweak, -1,
                                 NULL))
        || !EVP_CipherUpdate (ctx, dst + i * x->sector_size, &outl,
                              src + i * x->sector_size, len))
      return cv_ossl_fail ("xts: %s sector %llu failed",
                           ctx == x->enc ? "encrypting" : "decrypting",
                           (unsigned long long) (first + i));
  }
  return 0;
}

/* Encrypt nsect sectors src -> dst (may be equal). 0 or -EIO. */
int
cv_xts_encrypt (struct cv_xts *x, uint8_t *dst, const uint8_t *src,
                uint64_t first, size_t nsect)
{
  return crypt_sectors (x, x->enc, x->enc_iv, dst, src, first, nsect);
}

/* Decrypt nsect sectors src -> dst (may be equal). 0 or -EIO. */
int
cv_xts_decrypt (struct cv_xts *x, uint8_t *dst, const uint8_t *src,
                uint64_t first, size_t nsect)
{
  return crypt_sectors (x, x->dec, x->dec_iv, dst, src, first, nsect);
}

/* One data unit with an explicit tweak. 0, -EINVAL (len < 16 or > INT_MAX)
 * or -EIO. */
int
cv_xts_unit (struct cv_xts *x, const uint8_t tweak[16], uint8_t *dst,
             const uint8_t *src, size_t len, int enc)
{
  EVP_CIPHER_CTX *ctx = enc ? x->enc : x->dec;
  int outl;

  if (len < 16 || len > INT_MAX) {
    cv_err ("xts: data unit of %zu bytes; XTS needs 16 to %d bytes", len,
            INT_MAX);
    return -EINVAL;
  }
  if (!EVP_CipherInit_ex2 (ctx, NULL, NULL, tweak, -1, NULL)
      || !EVP_CipherUpdate (ctx, dst, &outl, src, (int) len))
    return cv_ossl_fail ("xts: %s a data unit failed",
                         enc ? "encrypting" : "decrypting");
  return 0;
}

/* A fresh 64-byte DEK in secure memory with distinct halves; the caller
 * frees it with cv_key_free. 0 or -errno (already logged). */
int
cv_dek_generate (struct cv_key **out)
{
  CLEANUP_KEY struct cv_key *k = NULL;
  int r = cv_key_new (CV_DEK_LEN, &k);

  if (r < 0)
    return r;
  do {
    r = cv_random (k->b, CV_DEK_LEN);
    if (r < 0)
      return r;
  } while (CRYPTO_memcmp (k->b, k->b + HALF, HALF) == 0);
  *out = STEAL (k);
  return 0;
}

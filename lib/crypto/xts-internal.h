/* What the XTS engine (xts.c) and its two implementations (xts-openssl.c,
 * xts-gcrypt.c) share. Internal to lib/crypto; the interface is xts.h. */
#ifndef CV_XTS_INTERNAL_H
#define CV_XTS_INTERNAL_H

#include <gcrypt.h>
#include <openssl/evp.h>

#include "crypto/xts.h"

struct cv_xts {
  enum cv_xts_impl impl;
  size_t sector_size;
  unsigned shift; /* log2 (sector_size / 512): tweaks per sector */
  /* One data unit of len bytes (16 <= len <= INT_MAX) with tweak, src ->
   * dst (may be equal); enc 1 encrypts, 0 decrypts. 0 or -EIO (logged). */
  int (*unit) (struct cv_xts *x, int enc, const uint8_t tweak[16], uint8_t *dst,
               const uint8_t *src, size_t len);
  void (*release) (struct cv_xts *x); /* frees the keyed contexts */
  union {
    struct {
      EVP_CIPHER_CTX *enc, *dec;
      uint8_t *enc_iv, *dec_iv; /* the provider's IVs, or NULL */
    } ossl;
    gcry_cipher_hd_t gc; /* one handle both ways */
  };
};

/* Key x (impl, sizes set) with key, its contexts in the secure heap; set
 * unit and release. 0, -ENOMEM or -EIO (logged). */
int cv_xts_ossl_key (struct cv_xts *x, const uint8_t key[CV_DEK_LEN]);
int cv_xts_gc_key (struct cv_xts *x, const uint8_t key[CV_DEK_LEN]);

/* Tests: the implementation whose known-answer test is made to fail
 * (CV_XTS_AUTO: none). Set before its first use. */
extern enum cv_xts_impl cv_xts_kat_break_for_tests;

#endif

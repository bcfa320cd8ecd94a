/* Cryptographic primitives over OpenSSL 3 and libargon2. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "prim.h"
#include "secmem.h"

int
cv_ossl_fail (const char *fmt, ...)
{
  unsigned long e = ERR_get_error ();
  char what[256], reason[256] = "unknown OpenSSL error";
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  if (e)
    ERR_error_string_n (e, reason, sizeof reason);
  ERR_clear_error ();
  cv_err ("%s: %s", what, reason);
  return -EIO;
}

int
cv_random (void *buf, size_t len)
{
  if (len > INT_MAX || RAND_bytes (buf, (int) len) != 1)
    return cv_ossl_fail ("RAND_bytes failed");
  return 0;
}

int
cv_sha256 (const void *msg, size_t len, uint8_t out[32])
{
  unsigned int outlen = 32;

  if (!EVP_Digest (msg, len, out, &outlen, EVP_sha256 (), NULL))
    return cv_ossl_fail ("SHA-256 failed");
  return 0;
}

int
cv_hmac_sha256 (const uint8_t *key, size_t keylen, const void *msg, size_t len,
                uint8_t out[32])
{
  unsigned int outlen = 32;

  if (keylen > INT_MAX
      || !HMAC (EVP_sha256 (), key, (int) keylen, msg, len, out, &outlen))
    return cv_ossl_fail ("HMAC-SHA256 failed");
  return 0;
}

int
cv_hkdf_sha256 (const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
                size_t saltlen, const char *info, uint8_t *out, size_t outlen)
{
  EVP_KDF *kdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
  EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new (kdf) : NULL;
  OSSL_PARAM params[5], *p = params;
  int rc = 0;

  EVP_KDF_free (kdf);
  if (!ctx)
    return cv_ossl_fail ("HKDF setup failed");
  *p++ = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) ikm,
                                            ikmlen);
  if (salt && saltlen)
    *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT,
                                              (void *) salt, saltlen);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) info,
                                            strlen (info));
  *p = OSSL_PARAM_construct_end ();
  if (EVP_KDF_derive (ctx, out, outlen, params) != 1)
    rc = cv_ossl_fail ("HKDF-SHA256 failed");
  EVP_KDF_CTX_free (ctx);
  return rc;
}

/* One AES-256-GCM operation; enc = 1 seal, 0 open. */
static int
gcm (int enc, const uint8_t key[32], const uint8_t iv[CV_GCM_IV_LEN],
     const void *aad, size_t aadlen, const uint8_t *in, size_t len,
     uint8_t *out, uint8_t tag[CV_GCM_TAG_LEN])
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  int n, rc = 0;

  if (!ctx)
    return -ENOMEM;
  if (len > INT_MAX || aadlen > INT_MAX
      || !EVP_CipherInit_ex2 (ctx, EVP_aes_256_gcm (), key, iv, enc, NULL)
      || (aadlen && !EVP_CipherUpdate (ctx, NULL, &n, aad, (int) aadlen))
      || (len && !EVP_CipherUpdate (ctx, out, &n, in, (int) len))
      || (!enc
          && !EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_SET_TAG, CV_GCM_TAG_LEN,
                                   tag))) {
    rc = cv_ossl_fail ("AES-256-GCM failed");
    goto out;
  }
  if (EVP_CipherFinal_ex (ctx, out + len, &n) != 1) {
    if (enc)
      rc = cv_ossl_fail ("AES-256-GCM failed");
    else {
      ERR_clear_error ();
      cv_wipe (out, len);
      rc = -EBADMSG;
    }
    goto out;
  }
  if (enc
      && !EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_GCM_GET_TAG, CV_GCM_TAG_LEN, tag))
    rc = cv_ossl_fail ("AES-256-GCM tag failed");
out:
  EVP_CIPHER_CTX_free (ctx);
  return rc;
}

int
cv_gcm_seal (const uint8_t key[32], const uint8_t iv[CV_GCM_IV_LEN],
             const void *aad, size_t aadlen, const uint8_t *pt, size_t len,
             uint8_t *ct, uint8_t tag[CV_GCM_TAG_LEN])
{
  return gcm (1, key, iv, aad, aadlen, pt, len, ct, tag);
}

int
cv_gcm_open (const uint8_t key[32], const uint8_t iv[CV_GCM_IV_LEN],
             const void *aad, size_t aadlen, const uint8_t *ct, size_t len,
             const uint8_t tag[CV_GCM_TAG_LEN], uint8_t *pt)
{
  return gcm (0, key, iv, aad, aadlen, ct, len, pt, (uint8_t *) tag);
}

struct cv_gmac {
  EVP_CIPHER_CTX *ctx;
};

int
cv_gmac_new (const uint8_t key[32], struct cv_gmac **out)
{
  struct cv_gmac *g = calloc (1, sizeof *g);

  if (!g || !(g->ctx = EVP_CIPHER_CTX_new ())) {
    free (g);
    return -ENOMEM;
  }
  if (!EVP_EncryptInit_ex2 (g->ctx, EVP_aes_256_gcm (), key, NULL, NULL)) {
    cv_gmac_free (g);
    return cv_ossl_fail ("GMAC setup failed");
  }
  *out = g;
  return 0;
}

int
cv_gmac (struct cv_gmac *g, const uint8_t iv[CV_GCM_IV_LEN], const void *msg,
         size_t len, uint8_t tag[CV_GCM_TAG_LEN])
{
  int n;

  if (len > INT_MAX || !EVP_EncryptInit_ex2 (g->ctx, NULL, NULL, iv, NULL)
      || (len && !EVP_EncryptUpdate (g->ctx, NULL, &n, msg, (int) len))
      || !EVP_EncryptFinal_ex (g->ctx, NULL, &n)
      || !EVP_CIPHER_CTX_ctrl (g->ctx, EVP_CTRL_GCM_GET_TAG, CV_GCM_TAG_LEN,
                               tag))
    return cv_ossl_fail ("GMAC failed");
  return 0;
}

void
cv_gmac_free (struct cv_gmac *g)
{
  if (g) {
    EVP_CIPHER_CTX_free (g->ctx);
    free (g);
  }
}

/* AES key wrap (pad = 0: RFC 3394, 1: RFC 5649) through OpenSSL's wrap
 * ciphers. enc = 1 wraps. Unwrap integrity failure returns -EBADMSG. */
static int
keywrap (int pad, int enc, const uint8_t *kek, size_t keklen, const uint8_t *in,
         size_t len, uint8_t *out, size_t *outlen)
{
  const EVP_CIPHER *c;
  EVP_CIPHER_CTX *ctx;
  int n, fin, rc = 0;

  switch (keklen) {
  case 16:
    c = pad ? EVP_aes_128_wrap_pad () : EVP_aes_128_wrap ();
    break;
  case 24:
    c = pad ? EVP_aes_192_wrap_pad () : EVP_aes_192_wrap ();
    break;
  case 32:
    c = pad ? EVP_aes_256_wrap_pad () : EVP_aes_256_wrap ();
    break;
  default:
    cv_err ("key wrap: KEK of %zu bytes (need 16, 24 or 32)", keklen);
    return -EINVAL;
  }
  if (len == 0 || len > INT_MAX || (!pad && (len % 8 || len < 16))
      || (!enc && (len % 8 || len < 16))) {
    if (!enc)
      return -EBADMSG;
    cv_err ("key wrap: %zu bytes cannot be wrapped", len);
    return -EINVAL;
  }
  ctx = EVP_CIPHER_CTX_new ();
  if (!ctx)
    return -ENOMEM;
  EVP_CIPHER_CTX_set_flags (ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (!EVP_CipherInit_ex2 (ctx, c, kek, NULL, enc, NULL)) {
    rc = cv_ossl_fail ("AES key wrap failed");
    goto out;
  }
  if (!EVP_CipherUpdate (ctx, out, &n, in, (int) len)
      || !EVP_CipherFinal_ex (ctx, out + n, &fin)) {
    if (enc)
      rc = cv_ossl_fail ("AES key wrap failed");
    else {
      ERR_clear_error ();
      rc = -EBADMSG;
    }
    goto out;
  }
  *outlen = (size_t) n + (size_t) fin;
out:
  EVP_CIPHER_CTX_free (ctx);
  return rc;
}

int
cv_kwp_wrap (const uint8_t *kek, size_t keklen, const uint8_t *pt, size_t len,
             uint8_t *out, size_t *outlen)
{
  return keywrap (1, 1, kek, keklen, pt, len, out, outlen);
}

int
cv_kwp_unwrap (const uint8_t *kek, size_t keklen, const uint8_t *in, size_t len,
               uint8_t *pt, size_t *ptlen)
{
  return keywrap (1, 0, kek, keklen, in, len, pt, ptlen);
}

int
cv_kw_wrap (const uint8_t *kek, size_t keklen, const uint8_t *pt, size_t len,
            uint8_t *out, size_t *outlen)
{
  return keywrap (0, 1, kek, keklen, pt, len, out, outlen);
}

int
cv_kw_unwrap (const uint8_t *kek, size_t keklen, const uint8_t *in, size_t len,
              uint8_t *pt, size_t *ptlen)
{
  return keywrap (0, 0, kek, keklen, in, len, pt, ptlen);
}

int
cv_argon2id (const void *pass, size_t passlen, const uint8_t *salt,
             size_t saltlen, uint32_t t_cost, uint32_t m_kib, uint32_t parallel,
             uint8_t *out, size_t outlen)
{
  int r = argon2id_hash_raw (t_cost, m_kib, parallel, pass, passlen, salt,
                             saltlen, out, outlen);
  if (r != ARGON2_OK) {
    cv_err ("argon2id (t=%u, m=%u KiB, p=%u): %s", t_cost, m_kib, parallel,
            argon2_error_message (r));
    return r == ARGON2_MEMORY_ALLOCATION_ERROR ? -ENOMEM : -EINVAL;
  }
  return 0;
}

int
cv_scrypt (const void *pass, size_t passlen, const uint8_t *salt,
           size_t saltlen, uint64_t n, uint32_t r, uint32_t p, uint8_t *out,
           size_t outlen)
{
  /* Allow what the parameters need: 128 * r * (n + p + 2) bytes, plus slack. */
  uint64_t maxmem = 128 * (uint64_t) r * (n + p + 2) + (1 << 20);

  if (EVP_PBE_scrypt (pass, passlen, salt, saltlen, n, r, p, maxmem, out,
                      outlen)
      != 1)
    return cv_ossl_fail ("scrypt failed");
  return 0;
}

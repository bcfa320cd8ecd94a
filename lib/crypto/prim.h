/* Small cryptographic primitives over OpenSSL 3 (and libargon2). Each returns
 * 0 or -errno; a failure inside OpenSSL is logged once here and returned as
 * -EIO. */
#ifndef CV_PRIM_H
#define CV_PRIM_H

#include <stddef.h>
#include <stdint.h>

#define CV_GCM_IV_LEN 12
#define CV_GCM_TAG_LEN 16

/* Log the message fmt with the first reason in OpenSSL's error queue ("fmt:
 * reason"), then clear the queue so it does not leak into a later, unrelated
 * message. Returns -EIO. For lib/crypto's calls into OpenSSL. */
int cv_ossl_fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* len bytes from the CSPRNG (RAND_bytes). */
int cv_random (void *buf, size_t len);

int cv_sha256 (const void *msg, size_t len, uint8_t out[32]);
int cv_hmac_sha256 (const uint8_t *key, size_t keylen, const void *msg,
                    size_t len, uint8_t out[32]);
/* HKDF-SHA256 (RFC 5869): extract with salt (may be NULL/0), expand with the
 * info string. */
int cv_hkdf_sha256 (const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
                    size_t saltlen, const char *info, uint8_t *out,
                    size_t outlen);

/* AES-256-GCM with a 12-byte IV and a 16-byte tag. ct and pt are len bytes.
 * cv_gcm_open returns -EBADMSG when the tag does not verify (wrong key, wrong
 * AAD or altered data); nothing is logged for that case: the caller says why.
 */
int cv_gcm_seal (const uint8_t key[32], const uint8_t iv[CV_GCM_IV_LEN],
                 const void *aad, size_t aadlen, const uint8_t *pt, size_t len,
                 uint8_t *ct, uint8_t tag[CV_GCM_TAG_LEN]);
int cv_gcm_open (const uint8_t key[32], const uint8_t iv[CV_GCM_IV_LEN],
                 const void *aad, size_t aadlen, const uint8_t *ct, size_t len,
                 const uint8_t tag[CV_GCM_TAG_LEN], uint8_t *pt);

/* GMAC (AES-256-GCM authenticating msg only), keyed once, one tag per call
 * with a 12-byte IV that must not repeat for different messages under the
 * key. For many short messages: no allocation or keying per call. */
struct cv_gmac;
int cv_gmac_new (const uint8_t key[32], struct cv_gmac **out);
int cv_gmac (struct cv_gmac *g, const uint8_t iv[CV_GCM_IV_LEN],
             const void *msg, size_t len, uint8_t tag[CV_GCM_TAG_LEN]);
void cv_gmac_free (struct cv_gmac *g);

/* AES key wrap with padding, RFC 5649 (kek of 16, 24 or 32 bytes). The wrapped
 * form is ((len + 7) / 8 + 1) * 8 bytes; an unwrap output buffer needs room
 * for len bytes. cv_kwp_unwrap returns -EBADMSG if
 * the integrity check fails; *ptlen receives the unwrapped length. */
int cv_kwp_wrap (const uint8_t *kek, size_t keklen, const uint8_t *pt,
                 size_t len, uint8_t *out, size_t *outlen);
int cv_kwp_unwrap (const uint8_t *kek, size_t keklen, const uint8_t *in,
                   size_t len, uint8_t *pt, size_t *ptlen);
/* AES key wrap without padding, RFC 3394 (len a multiple of 8, >= 16). */
int cv_kw_wrap (const uint8_t *kek, size_t keklen, const uint8_t *pt,
                size_t len, uint8_t *out, size_t *outlen);
int cv_kw_unwrap (const uint8_t *kek, size_t keklen, const uint8_t *in,
                  size_t len, uint8_t *pt, size_t *ptlen);

/* Password hashing for recovery passphrases. */
int cv_argon2id (const void *pass, size_t passlen, const uint8_t *salt,
                 size_t saltlen, uint32_t t_cost, uint32_t m_kib,
                 uint32_t parallel, uint8_t *out, size_t outlen);
int cv_scrypt (const void *pass, size_t passlen, const uint8_t *salt,
               size_t saltlen, uint64_t n, uint32_t r, uint32_t p, uint8_t *out,
               size_t outlen);

#endif

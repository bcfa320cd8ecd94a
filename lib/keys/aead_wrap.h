/* AES-256-GCM sealing of a DEK into a wrap object, shared by the providers
 * whose KEK is 32 bytes held locally (file, passphrase). The wrap gets
 *   "alg": "A256GCM", "iv": b64 (12 bytes), "ct": b64, "tag": b64 (16 bytes)
 * with the volume's binding string as additional data. */
#ifndef CV_KEYS_AEAD_WRAP_H
#define CV_KEYS_AEAD_WRAP_H

#include <jansson.h>

struct cv_key;

#define CV_AEAD_ALG "A256GCM"

/* Seal dek under kek (32 bytes) with a fresh random IV and AAD = binding; add
 * the members above to w. Returns 0 or -errno (logged). */
int cv_aead_wrap_seal (const struct cv_key *kek, const struct cv_key *dek,
                       const char *binding, json_t *w);

/* Open w's sealed DEK under kek with AAD = binding into a new cv_key (*dek,
 * caller frees; the plaintext is only ever written into that key). Returns 0,
 * -EINVAL (members missing or malformed, logged), -EPROTONOSUPPORT (another
 * "alg", logged), or -EBADMSG when the tag does not verify, NOT logged: only
 * the caller knows whether that means a wrong KEK or an altered wrap. */
int cv_aead_wrap_open (const struct cv_key *kek, const json_t *w,
                       const char *binding, struct cv_key **dek);

#endif

/* AES-256-GCM seal/open of a DEK into a wrap object's members. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/aead_wrap.h"
#include "keys/providers.h"

/* Longest DEK a wrap may carry: anything larger on disk is malformed. */
#define CT_MAX 1024

/* Encode len bytes at p as base64 into w[key]. */
static int
set_b64 (json_t *w, const char *key, const uint8_t *p, size_t len)
{
  CLEANUP_FREE char *s = NULL;
  int r = cv_b64_encode (p, len, &s);

  if (r < 0)
    return r;
  if (json_object_set_new (w, key, json_string (s)) < 0)
    return -ENOMEM;
  return 0;
}

int
cv_aead_wrap_seal (const struct cv_key *kek, const struct cv_key *dek,
                   const char *binding, json_t *w)
{
  uint8_t iv[CV_GCM_IV_LEN], tag[CV_GCM_TAG_LEN];
  CLEANUP_FREE uint8_t *ct = NULL;
  int r;

  assert (kek->len == 32);
  if (dek->len > CT_MAX) {
    cv_err ("cannot wrap a %zu-byte key (at most %d)", dek->len, CT_MAX);
    return -EINVAL;
  }
  ct = malloc (dek->len);
  if (!ct)
    return -ENOMEM;
  r = cv_random (iv, sizeof iv);
  if (r < 0)
    return r;
  r = cv_gcm_seal (kek->b, iv, binding, strlen (binding), dek->b, dek->len, ct,
                   tag);
  if (r < 0)
    return r;
  if (json_object_set_new (w, "alg", json_string (CV_AEAD_ALG)) < 0)
    return -ENOMEM;
  r = set_b64 (w, "iv", iv, sizeof iv);
  if (r == 0)
    r = set_b64 (w, "ct", ct, dek->len);
  if (r == 0)
    r = set_b64 (w, "tag", tag, sizeof tag);
  return r;
}

int
cv_aead_wrap_open (const struct cv_key *kek, const json_t *w,
                   const char *binding, struct cv_key **dek)
{
  char label[CV_WRAP_LABEL_MAX];
  CLEANUP_FREE uint8_t *iv = NULL, *ct = NULL, *tag = NULL;
  CLEANUP_KEY struct cv_key *pt = NULL;
  size_t ivlen, ctlen, taglen;
  int r;
  const char *alg = cv_wrap_get_string (w, "alg", &r);

  assert (kek->len == 32);
  if (!alg)
    return r;
  if (strcmp (alg, CV_AEAD_ALG) != 0) {
    cv_warn ("%s: its \"alg\" is not %s, the only algorithm this build "
             "supports",
             cv_wrap_label (w, label, sizeof label), CV_AEAD_ALG);
    return -EPROTONOSUPPORT;
  }
  if ((r = cv_wrap_get_b64 (w, "iv", CV_GCM_IV_LEN, CV_GCM_IV_LEN, &iv, &ivlen))
          < 0
      || (r = cv_wrap_get_b64 (w, "ct", 1, CT_MAX, &ct, &ctlen)) < 0
      || (r = cv_wrap_get_b64 (w, "tag", CV_GCM_TAG_LEN, CV_GCM_TAG_LEN, &tag,
                               &taglen))
             < 0)
    return r;
  r = cv_key_new (ctlen, &pt);
  if (r < 0)
    return r;
  r = cv_gcm_open (kek->b, iv, binding, strlen (binding), ct, ctlen, tag,
                   pt->b);
  if (r < 0)
    return r;
  *dek = STEAL (pt);
  return 0;
}

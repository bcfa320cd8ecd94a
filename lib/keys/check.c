/* The key watch's view of a wrap: does the wrap that unlocked a volume still
 * open it, and is a failure the customer's decision (revoke) or the key
 * service being out of reach (keep serving for a grace period)? Also the
 * copy of the credentials a server keeps for these checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keys/keys.h"
#include "keys/providers.h"

enum cv_check_class
cv_check_classify (int err)
{
  switch (-err) {
  case 0:
    return CV_CHECK_OK;
  case EKEYREVOKED:  /* KMS: disabled, pending deletion */
  case EACCES:       /* KMS: key policy or grant; PKCS#11: not permitted */
  case ENOENT:       /* KMS key deleted; PKCS#11 object or key file gone */
  case EBADMSG:      /* the wrap no longer authenticates under its key */
  case EKEYREJECTED: /* another key file, token key or DEK */
  case EINVAL:       /* the key file is no longer a key file */
    return CV_CHECK_REVOKED;
  default: /* ETIMEDOUT, ECONNREFUSED, EAGAIN, EIO, EPROTO, EKEYEXPIRED,
            * ENOKEY (no KMS credentials now), ENODEV, ENOMEM... */
    return CV_CHECK_TRANSIENT;
  }
}

const char *
cv_check_reason (const char *type, int err, char *buf, size_t len)
{
  const struct cv_wrap_type *t = cv_wrap_type_find (type);

  if (t)
    return cv_wrap_why (t, err, buf, len);
  snprintf (buf, len, "%s", strerrordesc_np (-err));
  return buf;
}

/* Test knob: CV_KEY_CHECK_FAIL=N makes every check fail with -N before the
 * key service is asked (tests of the grace period on file wraps). */
static int
injected (void)
{
  const char *s = getenv ("CV_KEY_CHECK_FAIL");
  int n = s ? atoi (s) : 0;

  if (n <= 0)
    return 0;
  cv_warn ("key check: failing with %s (CV_KEY_CHECK_FAIL, a test knob)",
           strerrordesc_np (n));
  return -n;
}

int
cv_wrap_check (const struct cv_header *h, int64_t id, const struct cv_creds *c,
               const struct cv_key *dek, struct cv_key **out)
{
  const json_t *wraps = cv_hdr_wraps (h), *w = NULL;
  char label[CV_WRAP_LABEL_MAX], buf[128];
  CLEANUP_KEY struct cv_key *k = NULL;
  const struct cv_wrap_type *t;
  const char *type;
  size_t i;
  int r;

  if ((r = injected ()) < 0)
    return r;
  json_array_foreach (wraps, i, w)
  {
    if (cv_wrap_id (w) == id)
      break;
  }
  type = i < json_array_size (wraps)
             ? json_string_value (json_object_get (w, "type"))
             : NULL;
  t = type ? cv_wrap_type_find (type) : NULL;
  if (!t || !t->p) {
    cv_err ("key check: the volume has no wrap %lld that this build can use "
            "(removed?); reload the server (cryptvol-keymgr reload) so that "
            "it checks a wrap that exists",
            (long long) id);
    return -ENOENT;
  }
  cv_wrap_label (w, label, sizeof label);
  /* Provider failures are logged by the provider (-ENOKEY: here). */
  r = t->p->unwrap (w, c, cv_hdr_binding (h), &k);
  if (r == -ENOKEY)
    cv_err ("key check: %s: %s", label, cv_wrap_why (t, r, buf, sizeof buf));
  if (r < 0)
    return r;
  if (dek) {
    if (k->len != dek->len || CRYPTO_memcmp (k->b, dek->b, k->len) != 0) {
      cv_err ("key check: %s now opens another key than the volume's DEK "
              "(the wrap was replaced by one for another volume or key)",
              label);
      return -EKEYREJECTED;
    }
  } else if ((r = cv_hdr_authenticate (h, k)) < 0) {
    cv_err ("key check: %s: the key it opens %s", label,
            r == -EKEYREJECTED ? "is not this volume's DEK"
                               : "fails the header's MAC (altered header)");
    return r;
  }
  if (out)
    *out = STEAL (k);
  return 0;
}

int
cv_creds_copy (const struct cv_creds *c, struct cv_creds **out)
{
  struct cv_creds *n = calloc (1, sizeof *n);
  int r = n ? 0 : -ENOMEM;

#define DUP(f)                                                                 \
  if (r == 0 && c->f && !(n->f = strdup (c->f)))                               \
  r = -ENOMEM
  DUP (keyfile);
  DUP (pkcs11_module);
  DUP (kms_endpoint);
  DUP (kms_region);
  DUP (ca_bundle);
  DUP (kms_grant_token); /* sent with every check: a grant's own token */
#undef DUP
  if (r == 0 && c->passphrase)
    r = cv_key_from (c->passphrase->b, c->passphrase->len, &n->passphrase);
  if (r == 0 && c->pin)
    r = cv_key_from (c->pin->b, c->pin->len, &n->pin);
  if (r < 0) {
    cv_err ("out of memory for a copy of the credentials");
    cv_creds_free (n);
    return r;
  }
  n->pbkdf = c->pbkdf;
  n->allow_costly_kdf = c->allow_costly_kdf;
  n->pbkdf.type = NULL; /* new passphrase wraps are never made from a copy */
  *out = n;
  return 0;
}

void
cv_creds_free (struct cv_creds *c)
{
  if (!c)
    return;
  free ((char *) c->keyfile);
  free ((char *) c->pkcs11_module);
  free ((char *) c->kms_endpoint);
  free ((char *) c->kms_region);
  free ((char *) c->ca_bundle);
  free ((char *) c->kms_grant_token);
  cv_key_free (c->passphrase);
  cv_key_free (c->pin);
  free (c);
}

/* What the provider files of lib/keys share: the provider symbols that
 * provider.c puts in its table, and helpers for wrap members and messages.
 * Internal to lib/keys; the public interface is keys.h. */
#ifndef CV_KEYS_PROVIDERS_H
#define CV_KEYS_PROVIDERS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keys/keys.h"

/* One per lib/keys/<type>.c. A provider not built here is declared but never
 * referenced: its table entry in provider.c is NULL. */
extern const struct cv_provider cv_provider_file;
extern const struct cv_provider cv_provider_passphrase;
extern const struct cv_provider cv_provider_kms;
extern const struct cv_provider cv_provider_pkcs11;

/* Optional per-provider teardown called by cv_keys_cleanup. */
void cv_kms_cleanup (void);
void cv_pkcs11_cleanup (void);

/* A wrap type the format knows, and what to say when its unwrap fails. p is
 * NULL for a type this build does not have. */
struct cv_wrap_type {
  const char *type;
  const struct cv_provider *p;
  const char *no_cred;  /* why -ENOKEY: what the credentials lack */
  const char *rejected; /* why -EKEYREJECTED */
  void (*cleanup) (void);
};
/* The entry for a type name, or NULL if the format has no such type. */
const struct cv_wrap_type *cv_wrap_type_find (const char *type);

/* Why an unwrap of a wrap of type t failed with r, in a few words for a
 * summary (the provider logged the details); buf (len bytes) holds it when
 * it is not a constant. */
const char *cv_wrap_why (const struct cv_wrap_type *t, int r, char *buf,
                         size_t len);

/* w's "id", or -1 if it has none (or a negative one). */
int64_t cv_wrap_id (const json_t *w);

#define CV_WRAP_LABEL_MAX 512

/* "wrap ID (TYPE REF)" for messages, from w's common members, written into
 * buf (CV_WRAP_LABEL_MAX bytes) and returned. Members read from disk are
 * untrusted: control characters are replaced, long references shortened and
 * a PKCS#11 "pin-value" attribute is redacted, so the label is safe to log. */
const char *cv_wrap_label (const json_t *w, char *buf, size_t len);

/* The string member key of w, or NULL (logged with label, -EINVAL in *r) if it
 * is missing or not a string. */
const char *cv_wrap_get_string (const json_t *w, const char *key, int *r);

/* The member key of w decoded from base64 into a new buffer (*out, caller
 * frees) of *outlen bytes, between min and max. Returns 0, -ENOMEM, or
 * -EINVAL (logged as a warning with w's label) if the member is missing, not
 * base64 or of another length. */
int cv_wrap_get_b64 (const json_t *w, const char *key, size_t min, size_t max,
                     uint8_t **out, size_t *outlen);

#endif

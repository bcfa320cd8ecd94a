/* The provider table, wrap specs and wrap labels. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "keys/keys.h"
#include "keys/providers.h"

/* Every wrap type the format knows. A provider not built here has p = NULL;
 * adding one is a change of its line (&cv_provider_<type>, its cleanup). */
static const struct cv_wrap_type types[] = {
  { "file", &cv_provider_file, "no key file given", "wrong key file", NULL },
  { "passphrase", &cv_provider_passphrase, "no passphrase given",
    "wrong passphrase (or the wrap was altered)", NULL },
  { "kms", &cv_provider_kms, "no AWS credentials found",
    "not this wrap's KMS key", cv_kms_cleanup },
  { "pkcs11", &cv_provider_pkcs11, "no PIN given",
    "wrong PIN, or not this wrap's token key", cv_pkcs11_cleanup },
};

#define SPEC_FORMS "file:PATH, passphrase, kms:KEY-ARN or pkcs11:URI"

/* The table entry for the first len bytes of type, or NULL. */
static const struct cv_wrap_type *
find_type (const char *type, size_t len)
{
  for (size_t i = 0; i < ARRAY_SIZE (types); i++)
    if (strlen (types[i].type) == len && memcmp (types[i].type, type, len) == 0)
      return &types[i];
  return NULL;
}

const struct cv_wrap_type *
cv_wrap_type_find (const char *type)
{
  return find_type (type, strlen (type));
}

const struct cv_provider *
cv_provider_find (const char *type)
{
  const struct cv_wrap_type *t = find_type (type, strlen (type));

  return t ? t->p : NULL;
}

int64_t
cv_wrap_id (const json_t *w)
{
  json_t *id = json_object_get (w, "id");

  if (!json_is_integer (id) || json_integer_value (id) < 0)
    return -1;
  return json_integer_value (id);
}

/* Append at most max bytes of s to the string at buf (size len), replacing
 * control characters and redacting a PKCS#11 pin-value. */
static void
append_clean (char *buf, size_t len, const char *s, size_t max)
{
  static const char pinattr[] = "pin-value=";
  size_t used = strlen (buf), n = 0;

  while (*s && n < max && used + 4 < len) {
    if (strncasecmp (s, pinattr, sizeof pinattr - 1) == 0) {
      used += snprintf (buf + used, len - used, "pin-value=REDACTED");
      if (used >= len)
        used = len - 1;
      s += sizeof pinattr - 1;
      while (*s && *s != '&' && *s != ';' && *s != '?')
        s++;
      continue;
    }
    unsigned char ch = *s++;
    buf[used++] = ch < 0x20 || ch == 0x7f ? '?' : ch;
    n++;
  }
  if (*s && used + 4 < len) {
    memcpy (buf + used, "...", 3);
    used += 3;
  }
  buf[used] = '\0';
}

const char *
cv_wrap_label (const json_t *w, char *buf, size_t len)
{
  int64_t id = cv_wrap_id (w);
  const char *type = json_string_value (json_object_get (w, "type"));
  const char *ref = json_string_value (json_object_get (w, "ref"));

  if (id >= 0)
    snprintf (buf, len, "wrap %lld (", (long long) id);
  else
    snprintf (buf, len, "wrap ? (");
  append_clean (buf, len, type ? type : "no type", 32);
  if (ref) {
    append_clean (buf, len, " ", 1);
    append_clean (buf, len, ref, 256);
  }
  append_clean (buf, len, ")", 1);
  return buf;
}

const char *
cv_wrap_get_string (const json_t *w, const char *key, int *r)
{
  char label[CV_WRAP_LABEL_MAX];
  const char *s = json_string_value (json_object_get (w, key));

  if (!s) {
    cv_warn ("%s: member \"%s\" is missing or not a string; the wrap is "
             "malformed",
             cv_wrap_label (w, label, sizeof label), key);
    *r = -EINVAL;
  }
  return s;
}

int
cv_wrap_get_b64 (const json_t *w, const char *key, size_t min, size_t max,
                 uint8_t **out, size_t *outlen)
{
  char label[CV_WRAP_LABEL_MAX];
  int r;
  const char *s = cv_wrap_get_string (w, key, &r);

  if (!s)
    return r;
  r = cv_b64_decode (s, out, outlen);
  if (r == -ENOMEM)
    return r;
  if (r < 0 || *outlen < min || *outlen > max) {
    if (r == 0) {
      free (*out);
      *out = NULL;
    }
    if (min == max)
      cv_warn ("%s: \"%s\" is not base64 of %zu bytes; the wrap is malformed",
               cv_wrap_label (w, label, sizeof label), key, min);
    else
      cv_warn ("%s: \"%s\" is not base64 of %zu to %zu bytes; the wrap is "
               "malformed",
               cv_wrap_label (w, label, sizeof label), key, min, max);
    return -EINVAL;
  }
  return 0;
}

int
cv_wrap_spec_parse (const char *spec, const struct cv_provider **p,
                    const char **ref)
{
  const char *colon = strchr (spec, ':');
  size_t typelen = colon ? (size_t) (colon - spec) : strlen (spec);
  const struct cv_wrap_type *t = find_type (spec, typelen);

  if (!t) {
    cv_err ("unknown wrap type \"%.*s\": a wrap spec is one of " SPEC_FORMS,
            (int) (typelen > 32 ? 32 : typelen), spec);
    return -EINVAL;
  }
  if (!t->p) {
    cv_err ("wrap type %s is not available in this build", t->type);
    return -EPROTONOSUPPORT;
  }
  if (t->p == &cv_provider_passphrase) {
    if (colon) {
      cv_err ("wrap spec \"passphrase\" takes no reference: the passphrase is "
              "read separately, never from the command line");
      return -EINVAL;
    }
    *ref = NULL;
  } else if (!colon || colon[1] == '\0') {
    cv_err ("wrap spec %s needs a reference after \"%s:\" (forms: " SPEC_FORMS
            ")",
            t->type, t->type);
    return -EINVAL;
  } else if (strcmp (t->type, "pkcs11") == 0) {
    /* The URI is stored in the header in clear: it must not hold the PIN. */
    if (strcasestr (spec, "pin-value=")) {
      cv_err ("the PKCS#11 URI of a wrap must not contain pin-value: it is "
              "stored in the volume header in clear; give the PIN separately");
      return -EINVAL;
    }
    *ref = spec;
  } else
    *ref = colon + 1;
  *p = t->p;
  return 0;
}

void
cv_keys_cleanup (void)
{
  for (size_t i = 0; i < ARRAY_SIZE (types); i++)
    if (types[i].cleanup)
      types[i].cleanup ();
}

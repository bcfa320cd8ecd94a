/* Wrap operations that need a key provider: add a wrap, make a new volume's
 * DEK, move a wrap to another key (KEK rotation), prove a wrap opens the
 * volume, re-make every wrap for a new DEK (DEK rotation) and describe a
 * wrap's key. The header edits themselves are lib/format's (hdr-wraps.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "keys/keys.h"
#include "keys/providers.h"

/* The wrap object of h with that id, or NULL. */
static const json_t *
wrap_json (const struct cv_header *h, int64_t id)
{
  const json_t *wraps = cv_hdr_wraps (h);

  for (size_t i = 0; i < json_array_size (wraps); i++)
    if (cv_wrap_id (json_array_get (wraps, i)) == id)
      return json_array_get (wraps, i);
  return NULL;
}

/* The message for a provider's -ENOKEY when making a wrap of type. */
static void
say_no_cred (const char *type)
{
  cv_err ("cannot add a %s wrap: %s", type, cv_wrap_type_find (type)->no_cred);
}

int
cv_wrap_add (struct cv_header *h, const char *spec, const struct cv_creds *c,
             const struct cv_key *dek, int64_t *id_out)
{
  const struct cv_provider *p = NULL;
  const char *ref = NULL;
  json_auto_t *w = NULL;
  int r = cv_wrap_spec_parse (spec, &p, &ref);

  if (r < 0 || (r = cv_hdr_wrap_new (h, CV_WRAP_ID_NEW, p->type, ref, &w)) < 0)
    return r;
  r = p->wrap (ref, c, dek, cv_hdr_binding (h), w);
  if (r == -ENOKEY)
    say_no_cred (p->type);
  if (r < 0)
    return r;
  int64_t id = cv_wrap_id (w);
  if ((r = cv_hdr_wrap_append (h, STEAL (w))) < 0)
    return r;
  if (id_out)
    *id_out = id;
  return 0;
}

int
cv_wrap_generate (struct cv_header *h, const char *spec,
                  const struct cv_creds *c, struct cv_key **dek,
                  int64_t *id_out)
{
  const struct cv_provider *p = NULL;
  const char *ref = NULL;
  json_auto_t *w = NULL;
  CLEANUP_KEY struct cv_key *k = NULL;
  int r = cv_wrap_spec_parse (spec, &p, &ref);

  *id_out = -1;
  if (r < 0)
    return r;
  if (!p->generate)
    return cv_dek_generate (dek);
  if ((r = cv_hdr_wrap_new (h, CV_WRAP_ID_NEW, p->type, ref, &w)) < 0)
    return r;
  r = p->generate (ref, c, CV_DEK_LEN, cv_hdr_binding (h), w, &k);
  if (r == -ENOKEY)
    say_no_cred (p->type);
  if (r < 0)
    return r;
  int64_t id = cv_wrap_id (w);
  if ((r = cv_hdr_wrap_append (h, STEAL (w))) < 0)
    return r;
  *dek = STEAL (k);
  *id_out = id;
  return 0;
}

int64_t
cv_wrap_same_key (const struct cv_header *h, const char *spec, int64_t except)
{
  const struct cv_provider *p;
  const char *ref;
  struct cv_wrap_info w;

  if (cv_wrap_spec_parse (spec, &p, &ref) < 0 || !ref)
    return -1;
  for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++)
    if (w.id != except && w.type && w.ref && strcmp (w.type, p->type) == 0
        && strcmp (w.ref, ref) == 0)
      return w.id;
  return -1;
}

/* A selection of the one wrap id. */
static struct cv_wrap_sel
only (int64_t id)
{
  return (struct cv_wrap_sel){ .n = 1, .item = { { id, NULL } }, .except = -1 };
}

int
cv_wrap_move (struct cv_header *h, const char *name, int64_t old_id,
              const char *spec, const struct cv_creds *oc,
              const struct cv_creds *nc, struct cv_wrap_moved *out)
{
  const struct cv_provider *p;
  const char *ref;
  struct cv_wrap_info old;
  int r = cv_wrap_spec_parse (spec, &p, &ref);

  if (r < 0)
    return r;
  if (cv_hdr_wrap_find (h, old_id, &old) < 0) {
    cv_err ("%s has no wrap %lld (see list-wraps)", name, (long long) old_id);
    return -ENOENT;
  }
  if (ref && old.ref && strcmp (ref, old.ref) == 0
      && strcmp (p->type, old.type) == 0) {
    cv_err ("wrap %lld already uses %s: a rewrap to the same key changes "
            "nothing",
            (long long) old_id, spec);
    return -EINVAL;
  }
  int64_t done = cv_wrap_same_key (h, spec, old_id);
  if (done >= 0) {
    /* An earlier move added the new wrap and stopped: finish it. */
    *out = (struct cv_wrap_moved){ done, p->rewrap != NULL, true, NULL };
    cv_info ("wrap %lld to %s exists already (an interrupted rewrap); "
             "finishing",
             (long long) done, spec);
    return 0;
  }
  *out = (struct cv_wrap_moved){ -1,
                                 p->rewrap && strcmp (old.type, p->type) == 0,
                                 false, NULL };
  if (!out->in_service) {
    CLEANUP_KEY struct cv_key *dek = NULL;
    struct cv_wrap_sel sel = only (old_id);
    if ((r = cv_unlock (h, name, oc, &sel, &dek, NULL)) < 0
        || (r = cv_wrap_add (h, spec, nc, dek, &out->id)) < 0)
      return r;
    out->dek = STEAL (dek);
    return 0;
  }
  json_auto_t *nw = NULL;
  if ((r = cv_hdr_wrap_new (h, CV_WRAP_ID_NEW, p->type, ref, &nw)) < 0
      || (r
          = p->rewrap (wrap_json (h, old_id), ref, oc, cv_hdr_binding (h), nw))
             < 0)
    return r;
  out->id = cv_wrap_id (nw);
  return cv_hdr_wrap_append (h, STEAL (nw));
}

int
cv_wrap_verify (struct cv_header *h, const char *name, int64_t id,
                const struct cv_creds *c, bool in_service,
                struct cv_key **dek_out)
{
  struct cv_wrap_info w;
  int r;

  if (cv_hdr_wrap_find (h, id, &w) < 0) {
    cv_err ("%s has no wrap %lld (see list-wraps)", name, (long long) id);
    return -ENOENT;
  }
  const struct cv_provider *p = cv_provider_find (w.type);
  if (in_service && p && p->rewrap) {
    json_auto_t *scratch = json_object ();
    if (!scratch)
      return -ENOMEM;
    r = p->rewrap (wrap_json (h, id), w.ref, c, cv_hdr_binding (h), scratch);
    if (r == 0 && cv_hdr_wrap_bound (h, id) == 1)
      return 0; /* bound: changed only by a commit with the key */
  } else {
    CLEANUP_KEY struct cv_key *dek = NULL;
    struct cv_wrap_sel sel = only (id);
    r = cv_unlock (h, name, c, &sel, &dek, NULL);
    if (r == 0 && dek_out && !*dek_out)
      *dek_out = STEAL (dek);
  }
  return r < 0 ? r : cv_hdr_wrap_mark_verified (h, id);
}

/* The KDF parameters recorded in a passphrase wrap, so that its replacement
 * costs the same to attack. */
static void
kdf_of (const json_t *w, struct cv_pbkdf *k)
{
  json_t *kdf = json_object_get (w, "kdf");
  const char *type = json_string_value (json_object_get (kdf, "type"));

  if (!type)
    return;
  if (strcmp (type, "scrypt") == 0) {
    k->type = "scrypt";
    k->scrypt_n = (uint64_t) json_integer_value (json_object_get (kdf, "n"));
  } else {
    k->type = "argon2id";
    k->t_cost = (uint32_t) json_integer_value (json_object_get (kdf, "t"));
    k->m_kib = (uint32_t) json_integer_value (json_object_get (kdf, "m"));
    k->parallel = (uint32_t) json_integer_value (json_object_get (kdf, "p"));
  }
}

/* What to do to supply the key of a wrap of type that failed with rc. */
static const char *
supply (const char *type, int rc)
{
  if (strcmp (type, "passphrase") == 0)
    return rc == -ENOKEY ? "give its passphrase (--passphrase-file FILE, or "
                           "at the prompt on a terminal)"
                         : "give its passphrase (one passphrase per run: "
                           "remove the wraps with other passphrases first)";
  if (strcmp (type, "pkcs11") == 0)
    return rc == -ENOKEY ? "give its token's PIN (--pin-file FILE)"
                         : "give its token's PIN (--pin-file FILE) and key";
  if (strcmp (type, "file") == 0)
    return "give its key file (--keyfile FILE)";
  return "give its key";
}

/* A wrap of new_dek replacing w (same id, type and key). First w is
 * unwrapped with c to prove its key is at hand and holds dek. */
static int
remake (const struct cv_header *h, const char *name, const json_t *w,
        const struct cv_creds *c, const struct cv_key *dek,
        const struct cv_key *new_dek, json_t **out)
{
  char label[CV_WRAP_LABEL_MAX];
  const char *type = json_string_value (json_object_get (w, "type"));
  const char *ref = json_string_value (json_object_get (w, "ref"));
  const struct cv_wrap_type *t = type ? cv_wrap_type_find (type) : NULL;
  int64_t id = cv_wrap_id (w);
  struct cv_creds c2 = *c;
  CLEANUP_KEY struct cv_key *got = NULL;
  int rc;

  cv_wrap_label (w, label, sizeof label);
  if (!t || !t->p) {
    cv_err ("%s: cannot re-make %s for the new DEK: its type is not "
            "available in this build; remove the wrap first (remove-wrap --id "
            "%lld)",
            name, label, (long long) id);
    return -EPROTONOSUPPORT;
  }
  if (strcmp (type, "file") == 0 && ref) {
    /* The key file the wrap names, else the one given (the file moved). */
    c2.keyfile = ref;
    rc = t->p->unwrap (w, &c2, cv_hdr_binding (h), &got);
    if (rc < 0 && c->keyfile) {
      c2.keyfile = c->keyfile;
      rc = t->p->unwrap (w, &c2, cv_hdr_binding (h), &got);
    }
  } else {
    kdf_of (w, &c2.pbkdf);
    rc = t->p->unwrap (w, &c2, cv_hdr_binding (h), &got);
  }
  if (rc < 0) {
    char buf[128];
    cv_err ("%s: cannot re-make %s for the new DEK: %s; every wrap is "
            "replaced, so each one's key is needed: %s, or remove the wrap "
            "(--drop-wrap %lld, or remove-wrap --id %lld) and add it again "
            "after the rotation",
            name, label, cv_wrap_why (t, rc, buf, sizeof buf),
            supply (type, rc), (long long) id, (long long) id);
    return rc;
  }
  if (got->len != dek->len || CRYPTO_memcmp (got->b, dek->b, got->len)) {
    cv_err ("%s: cannot re-make %s for the new DEK: it does not hold the "
            "volume's key (a wrap left from before a DEK rotation); remove it "
            "(remove-wrap --id %lld)",
            name, label, (long long) id);
    return -EKEYREJECTED;
  }
  const char *use = strcmp (type, "file") == 0 ? c2.keyfile : ref;
  json_auto_t *nw = NULL;
  if ((rc = cv_hdr_wrap_new (h, id, type, use, &nw)) < 0)
    return rc;
  if (json_object_set (nw, "verified", json_object_get (nw, "created")) < 0)
    return -ENOMEM;
  if ((rc = t->p->wrap (use, &c2, new_dek, cv_hdr_binding (h), nw)) < 0)
    return rc;
  *out = STEAL (nw);
  return 0;
}

int
cv_wrap_remake_all (struct cv_header *h, const char *name,
                    const struct cv_creds *c, const struct cv_key *dek,
                    const struct cv_key *new_dek)
{
  const json_t *old = cv_hdr_wraps (h);
  json_auto_t *wraps = json_array ();
  int rc;

  if (!wraps)
    return -ENOMEM;
  for (size_t i = 0; i < json_array_size (old); i++) {
    json_t *nw = NULL;
    if ((rc = remake (h, name, json_array_get (old, i), c, dek, new_dek, &nw))
        < 0)
      return rc;
    if (json_array_append_new (wraps, nw) < 0)
      return -ENOMEM;
  }
  return cv_hdr_wraps_replace (h, STEAL (wraps));
}

int
cv_wrap_describe (const struct cv_header *h, int64_t id,
                  const struct cv_creds *c, char **state)
{
  const json_t *w = wrap_json (h, id);
  const char *type = json_string_value (json_object_get (w, "type"));
  const struct cv_provider *p = type ? cv_provider_find (type) : NULL;

  *state = NULL;
  if (!w)
    return -ENOENT;
  if (!p || !p->describe)
    return 0;
  return p->describe (w, c, state);
}

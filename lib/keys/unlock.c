/* The unlock loop: try a volume's wraps, in the order the caller chose, until
 * one yields the volume's DEK. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keys/keys.h"
#include "keys/providers.h"

int
cv_wrap_sel_add (struct cv_wrap_sel *s, const char *arg)
{
  char *end;

  if (s->n == CV_WRAP_SEL_MAX) {
    cv_err ("wrap=%s: at most %d wraps can be chosen", arg, CV_WRAP_SEL_MAX);
    return -EINVAL;
  }
  errno = 0;
  long long id = strtoll (arg, &end, 10);
  if (end != arg && *end == '\0' && errno == 0 && id >= 0) {
    s->item[s->n].id = id;
    s->item[s->n++].type = NULL;
    return 0;
  }
  if (!cv_wrap_type_find (arg)) {
    cv_err ("wrap=%.64s: not a wrap id or type; give a number from "
            "list-wraps, or file, passphrase, kms or pkcs11",
            arg);
    return -EINVAL;
  }
  s->item[s->n].id = -1;
  s->item[s->n++].type = arg;
  return 0;
}

/* How much a failure says about the volume, to choose what cv_unlock returns
 * when no wrap opened: tampering first, then errors of the key services, then
 * a key that was given but rejected, then missing credentials. */
static int
severity (int r)
{
  switch (r) {
  case -EPROTONOSUPPORT:
    return 1;
  case -ENOKEY:
    return 2;
  case -EKEYREJECTED:
    return 3;
  case -EBADMSG:
    return 5;
  default:
    return 4;
  }
}

const char *
cv_wrap_why (const struct cv_wrap_type *t, int r, char *buf, size_t len)
{
  switch (r) {
  case -ENOKEY:
    return t->no_cred;
  case -EKEYREJECTED:
    return t->rejected;
  case -EBADMSG:
    return "the wrap does not authenticate (altered, or copied from another "
           "volume)";
  case -EKEYREVOKED:
    return "the key is disabled or pending deletion";
  case -EACCES:
    return strcmp (t->type, "kms") == 0
               ? "access to the key denied (the key policy denies it, or the "
                 "grant that allowed it was revoked or retired)"
               : "access to the key denied";
  case -EKEYEXPIRED:
    return "the key service did not accept the credentials";
  case -EINVAL:
    return "invalid wrap or credentials (see the message above)";
  case -EPROTONOSUPPORT:
    return "not supported by this build";
  case -EDQUOT:
    return "its KDF parameters are over the unlock limit (see the warning "
           "above; --allow-costly-kdf)";
  default:
    snprintf (buf, len, "failed (%s)", strerrordesc_np (-r));
    return buf;
  }
}

/* Does the DEK k authenticate header h: its MAC, and its wraps as the key
 * sealed them? 0, -EKEYREJECTED (not h's key: the kcv differs), or -EBADMSG
 * with the reason in why (h was altered). */
static int
authentic (const struct cv_header *h, const struct cv_key *k, char *why,
           size_t len)
{
  int r = cv_hdr_authenticate (h, k);

  if (r == -EBADMSG)
    snprintf (why, len, "its MAC does not match");
  else if (r == 0)
    r = cv_hdr_wraps_check (h, why, len);
  return r;
}

/* Try one wrap: 0 with *dek when it unlocks the volume; otherwise -errno and
 * *why (the short reason for the final message). -EBADMSG with *fatal set
 * and the reason in tampered when the header itself fails authentication
 * under the volume's key. */
static int
try_wrap (const struct cv_header *h, const char *name, const json_t *w,
          const struct cv_creds *c, struct cv_key **dek, const char **why,
          char *buf, size_t len, int *fatal, char *tampered, size_t tlen)
{
  char label[CV_WRAP_LABEL_MAX];
  const char *type = json_string_value (json_object_get (w, "type"));
  const struct cv_wrap_type *t = type ? cv_wrap_type_find (type) : NULL;
  CLEANUP_KEY struct cv_key *k = NULL;
  int r;

  cv_wrap_label (w, label, sizeof label);
  if (!json_is_object (w) || cv_wrap_id (w) < 0 || !type) {
    cv_warn ("%s: no \"id\" or \"type\"; the wrap is malformed", label);
    *why = "malformed wrap (no id or type)";
    return -EINVAL;
  }
  if (!t) {
    *why = "unknown wrap type";
    return -EPROTONOSUPPORT;
  }
  if (!t->p) {
    snprintf (buf, len, "wrap type %s is not available in this build", t->type);
    *why = buf;
    return -EPROTONOSUPPORT;
  }
  r = t->p->unwrap (w, c, cv_hdr_binding (h), &k);
  if (r < 0) {
    *why = cv_wrap_why (t, r, buf, len);
    return r;
  }
  r = authentic (h, k, tampered, tlen);
  switch (r) {
  case 0:
    *dek = STEAL (k);
    return 0;
  case -EBADMSG:
    *fatal = 1;
    return r;
  case -EKEYREJECTED:
    cv_warn ("%s: the key unwrapped but is not this volume's key (a wrap "
             "left from before a DEK rotation, or the header's key check "
             "value was altered)",
             label);
    *why = "the key unwrapped but is not this volume's key";
    return r;
  default:
    *why = cv_wrap_why (t, r, buf, len);
    return r;
  }
}

/* True if c holds a credential given for this wrap's type in particular (a
 * key file, a passphrase, a PIN), rather than one found in the environment
 * (AWS credentials). */
static bool
given_for (const json_t *w, const struct cv_creds *c)
{
  const char *type = json_string_value (json_object_get (w, "type"));

  if (!type)
    return false;
  return (strcmp (type, "file") == 0 && c->keyfile)
         || (strcmp (type, "passphrase") == 0 && c->passphrase)
         || (strcmp (type, "pkcs11") == 0 && c->pin);
}

/* Does item i of sel choose w? */
static bool
chooses (const struct cv_wrap_sel *sel, size_t i, const json_t *w)
{
  const char *type = json_string_value (json_object_get (w, "type"));

  if (sel->item[i].type)
    return type && strcmp (type, sel->item[i].type) == 0;
  return cv_wrap_id (w) == sel->item[i].id;
}

/* The order in which to try the wraps of h: indexes into its wraps array in
 * *order (caller frees), *n of them. Without a selection, wraps whose
 * credential was given explicitly go first (so that keyfile= is not kept
 * waiting by a key service found through the environment), then the rest in
 * header order. */
static int
plan (const json_t *wraps, const struct cv_creds *c,
      const struct cv_wrap_sel *sel, size_t **order, size_t *n)
{
  size_t nw = json_array_size (wraps), k = 0;
  size_t *o = calloc (nw ? nw : 1, sizeof *o);
  bool *taken = calloc (nw ? nw : 1, sizeof *taken);
  int64_t except = sel ? sel->except : -1;

  if (!o || !taken) {
    free (o);
    free (taken);
    return -ENOMEM;
  }
  for (size_t w = 0; w < nw; w++)
    taken[w] = except >= 0 && cv_wrap_id (json_array_get (wraps, w)) == except;
  if (sel && sel->n > 0) {
    for (size_t i = 0; i < sel->n; i++)
      for (size_t w = 0; w < nw; w++)
        if (!taken[w] && chooses (sel, i, json_array_get (wraps, w))) {
          taken[w] = true;
          o[k++] = w;
        }
  } else {
    for (int pass = 0; pass < 2; pass++)
      for (size_t w = 0; w < nw; w++)
        if (!taken[w]
            && (pass == 1 || given_for (json_array_get (wraps, w), c))) {
          taken[w] = true;
          o[k++] = w;
        }
  }
  free (taken);
  *order = o;
  *n = k;
  return 0;
}

/* The unlock loop on the copy h holds, with the log held (cv_log_hold).
 * On success the failures of the wraps tried before are released as debug
 * messages. On failure the messages stay held, *sum (caller frees) lists
 * each wrap tried with its reason, and *tampered gets the reason when a key
 * unlocked but h fails authentication under it. */
static int
unlock_copy (const struct cv_header *h, const char *name,
             const struct cv_creds *c, const struct cv_wrap_sel *sel,
             struct cv_key **dek, int64_t *wrap_id, char **sum, char *tampered,
             size_t tlen)
{
  const json_t *wraps = cv_hdr_wraps (h);
  CLEANUP_FREE size_t *order = NULL;
  size_t sumlen = 0, n;
  FILE *f;
  int worst = 0, r;

  if (!json_is_array (wraps) || json_array_size (wraps) == 0) {
    cv_err ("volume %s has no wraps: nothing can unlock it", name);
    return -ENOKEY;
  }
  if ((r = plan (wraps, c, sel, &order, &n)) < 0)
    return r;
  if (n == 0) {
    cv_err ("volume %s: none of its wraps is among those chosen (wrap=); "
            "see list-wraps",
            name);
    return -ENOKEY;
  }
  f = open_memstream (sum, &sumlen);
  if (!f)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const json_t *w = json_array_get (wraps, order[i]);
    char label[CV_WRAP_LABEL_MAX], buf[128];
    const char *why = NULL;
    size_t mark = cv_log_held ();
    int fatal = 0;

    r = try_wrap (h, name, w, c, dek, &why, buf, sizeof buf, &fatal, tampered,
                  tlen);
    if (r == 0) {
      fclose (f);
      cv_log_release (mark);
      if (wrap_id)
        *wrap_id = cv_wrap_id (w);
      cv_debug ("volume %s unlocked with %s", name,
                cv_wrap_label (w, label, sizeof label));
      return 0;
    }
    if (fatal) {
      fclose (f);
      return r;
    }
    cv_log (CV_LOG_DEBUG, "volume %s: %s: %s", name,
            cv_wrap_label (w, label, sizeof label), why);
    fprintf (f, "%s%s: %s", i ? "; " : "", label, why);
    if (worst == 0 || severity (r) > severity (worst))
      worst = r;
  }
  if (fclose (f) != 0)
    return -ENOMEM;
  assert (worst < 0);
  return worst;
}

int
cv_unlock (struct cv_header *h, const char *name, const struct cv_creds *c,
           const struct cv_wrap_sel *sel, struct cv_key **dek, int64_t *wrap_id)
{
  const struct cv_header *o = cv_hdr_other (h);
  CLEANUP_FREE char *sum = NULL, *osum = NULL;
  char why[256] = "", owhy[256] = "";
  int r;

  /* What a failed wrap's provider says is held back: it is only an error if
   * no wrap unlocks the volume. */
  cv_log_hold ();
  r = unlock_copy (h, name, c, sel, dek, wrap_id, &sum, why, sizeof why);
  if (r < 0 && o && (why[0] || r == -EBADMSG)) {
    /* This copy, or its wraps, was altered: the other may be intact. If
     * not, what the first attempt said is the story. */
    size_t mark = cv_log_held ();
    if (unlock_copy (o, name, c, sel, dek, wrap_id, &osum, owhy, sizeof owhy)
        == 0) {
      cv_hdr_use_other (h, name,
                        why[0] ? why : "has no wrap that authenticates");
      return 0;
    }
    cv_log_forget (mark);
  }
  if (r < 0) {
    /* Tampering: the summary below says it; else each wrap's reason. */
    cv_log_release (why[0] ? SIZE_MAX : 0);
    if (r == -EBADMSG && why[0])
      cv_err ("header of volume %s: %s; it was altered (tampered); refusing "
              "(the key that unlocked it is this volume's key); restore the "
              "header from a backup",
              name, why);
    else if (sum)
      cv_err ("cannot unlock volume %s: no wrap could be unlocked: %s", name,
              sum);
    return r;
  }
  /* A twin copy that does not authenticate was altered: say so (the next
   * commit rewrites it). */
  if (o && cv_hdr_seqid (o) == cv_hdr_seqid (h)
      && authentic (o, *dek, owhy, sizeof owhy) < 0)
    cv_warn ("the %s header copy of %s does not authenticate (%s): it was "
             "altered; the %s copy is "
             "used, and the next header update rewrites both",
             cv_hdr_copy_name (o), name,
             owhy[0] ? owhy : "not sealed with this volume's key",
             cv_hdr_copy_name (h));
  return 0;
}

/* Key providers behind one narrow interface, and the unlock loop over a
 * volume's wraps.
 *
 * A wrap is a JSON object in the header's "wraps" array. Common members:
 *   "id"      integer, unique within the volume, never reused
 *   "type"    "file" | "passphrase" | "kms" | "pkcs11"
 *   "ref"     what the KEK is: key file path, KMS key ARN, PKCS#11 URI
 *             (absent for passphrase)
 *   "created" RFC 3339 UTC
 * plus members of the provider's own (algorithm, IV, blob, KDF parameters...).
 * Every wrap is authenticated and bound to its volume through the binding
 * string (AEAD additional data, KMS EncryptionContext, OAEP label).
 *
 * Error codes every provider uses, so callers can report precisely:
 *   -ENOKEY        the credentials do not include what this wrap needs
 *                  (no key file / passphrase / PIN given); try the next wrap
 *   -EKEYREJECTED  the KEK given is not this wrap's KEK (wrong key file,
 *                  wrong passphrase)
 *   -EBADMSG       the wrap does not authenticate under the right KEK: it was
 *                  altered or belongs to another volume
 *   -EKEYREVOKED   the KEK exists but is disabled or pending deletion (KMS)
 *   -EACCES        the credentials are not allowed to use the KEK
 *   -EKEYEXPIRED   the key service did not accept the caller's credentials
 *                  (expired, wrong secret): not a decision about the key
 *   -ETIMEDOUT / -ECONNREFUSED / -EAGAIN  the key service could not be reached
 *   -EINVAL        the wrap object is malformed
 * The provider logs the detailed reason (naming the wrap id and the key
 * reference, never a secret) before returning, except for -ENOKEY. */
#ifndef CV_KEYS_H
#define CV_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct cv_key;
struct cv_header;

/* Passphrase KDF parameters for new passphrase wraps. */
struct cv_pbkdf {
  const char *type;  /* "argon2id" (default) or "scrypt" */
  uint32_t t_cost;   /* argon2id iterations */
  uint32_t m_kib;    /* argon2id memory, KiB */
  uint32_t parallel; /* argon2id lanes */
  uint64_t scrypt_n; /* scrypt N (r = 8, p = 1) */
};
#define CV_PBKDF_DEFAULT                                                       \
  {                                                                            \
    "argon2id", 4, 256 * 1024, 2, 1 << 17                                      \
  }

/* Everything an unlock or a new wrap may need, gathered from the command line
 * or nbdkit parameters. Secrets are cv_keys; everything else is a reference. */
struct cv_creds {
  const char *keyfile;         /* path of a file holding a 32-byte KEK */
  struct cv_key *passphrase;   /* recovery passphrase (no NUL), or NULL */
  struct cv_key *pin;          /* PKCS#11 user PIN, or NULL */
  const char *pkcs11_module;   /* module path if not in the URI */
  const char *kms_endpoint;    /* https://... override, or NULL */
  const char *kms_region;      /* region override, or NULL */
  const char *ca_bundle;       /* CA file for the KMS endpoint, or NULL */
  const char *kms_grant_token; /* a KMS grant token sent with every call
                                  (a grant not yet propagated), or NULL */
  struct cv_pbkdf pbkdf;       /* for new passphrase wraps */
  /* Accept passphrase KDF parameters over the unlock limit (argon2id m <=
   * 1 GiB, t <= 10, p <= 16, m*t <= 4 GiB-passes; scrypt N <= 2^20), in a
   * wrap read from disk or a new one: --allow-costly-kdf. */
  bool allow_costly_kdf;
};

struct cv_provider {
  const char *type;
  /* Wrap dek under the KEK named by ref (NULL for passphrase); add the
   * provider's members to w. */
  int (*wrap) (const char *ref, const struct cv_creds *c,
               const struct cv_key *dek, const char *binding, json_t *w);
  /* Unwrap w into a new cv_key (*dek, caller frees). */
  int (*unwrap) (const json_t *w, const struct cv_creds *c, const char *binding,
                 struct cv_key **dek);
  /* Optional: make a new DEK of len bytes inside the key service and wrap it
   * in one step (KMS GenerateDataKey). NULL if the provider has none. */
  int (*generate) (const char *ref, const struct cv_creds *c, size_t len,
                   const char *binding, json_t *w, struct cv_key **dek);
  /* Optional: re-wrap w under new_ref without the DEK leaving the key
   * service (KMS ReEncrypt); fills nw. */
  int (*rewrap) (const json_t *w, const char *new_ref, const struct cv_creds *c,
                 const char *binding, json_t *nw);
  /* Optional: a one-line description of the KEK's state ("Enabled",
   * "Disabled", "PendingDeletion", token and object labels). *state is
   * malloc'd. */
  int (*describe) (const json_t *w, const struct cv_creds *c, char **state);
};

/* The provider for a type name, or NULL. */
const struct cv_provider *cv_provider_find (const char *type);

/* Parse a wrap spec as given on a command line: "file:PATH", "passphrase",
 * "kms:REF", "pkcs11:URI". Sets *p and *ref (pointing into spec, or NULL).
 * Returns 0, -EINVAL (logged, with the forms accepted) or -EPROTONOSUPPORT
 * (a type this build does not have). */
int cv_wrap_spec_parse (const char *spec, const struct cv_provider **p,
                        const char **ref);

/* Wrap operations on a header (lib/keys/wraps.c), for keymgr offline and a
 * server online. Each logs what fails, names the wrap, and changes h only
 * when it succeeds; the caller commits h (cv_hdr_commit). */

/* Make a new wrap of dek for spec and append it to h with the next free id.
 * *id_out (may be NULL) gets its id. Returns 0 or -errno. */
int cv_wrap_add (struct cv_header *h, const char *spec,
                 const struct cv_creds *c, const struct cv_key *dek,
                 int64_t *id_out);

/* A new DEK for a new header h whose first wrap will be spec. When spec's
 * provider makes data keys itself (KMS GenerateDataKey), the DEK comes from
 * the key service and spec's wrap is appended to h in the same call (*id_out
 * gets its id); otherwise the DEK is generated here and *id_out is -1.
 * Returns 0 or -errno. */
int cv_wrap_generate (struct cv_header *h, const char *spec,
                      const struct cv_creds *c, struct cv_key **dek,
                      int64_t *id_out);

/* The id of a wrap of h other than except that uses the same key as spec
 * (same type and reference), or -1. Passphrase wraps never match (two may
 * exist), nor does a spec that does not parse. */
int64_t cv_wrap_same_key (const struct cv_header *h, const char *spec,
                          int64_t except);

/* Move wrap old_id of h to the key spec (KEK rotation), first step: append
 * the new wrap. A move between two keys of a provider that re-wraps inside
 * its key service (KMS ReEncrypt) is done there, so that the DEK never leaves
 * it (in_service); otherwise wrap old_id is unlocked with oc into locked
 * memory and the DEK wrapped under spec with nc. If a wrap with spec's key
 * exists already (an interrupted move), it is taken (resumed) and nothing is
 * added. name (the header's file) is for messages. Returns 0, -ENOENT (no
 * wrap old_id), -EINVAL (old_id already uses spec's key) or another -errno;
 * all logged. */
struct cv_wrap_moved {
  int64_t id;      /* the new wrap */
  bool in_service; /* re-wrapped inside the key service */
  bool resumed;    /* the new wrap existed already: h is unchanged */
  /* The DEK, when the move unlocked it here (not in_service): the caller
   * seals its commit with it (cv_hdr_commit_sealed) and frees it. */
  struct cv_key *dek;
};
int cv_wrap_move (struct cv_header *h, const char *name, int64_t old_id,
                  const char *spec, const struct cv_creds *oc,
                  const struct cv_creds *nc, struct cv_wrap_moved *out);

/* Prove that wrap id opens the volume with c, and record it ("verified").
 * in_service (a wrap made by a re-wrap inside the key service): the key
 * service re-wraps it to its own key, which needs the volume's binding to
 * decrypt it, so the DEK still never leaves it (and a wrap the volume key
 * has bound is left as it is: only a commit with the key may change it);
 * otherwise it is unlocked, and *dek (when dek is not NULL and *dek is
 * NULL) gets the DEK for the caller's sealed commit (caller frees).
 * Returns 0 or -errno (logged). */
int cv_wrap_verify (struct cv_header *h, const char *name, int64_t id,
                    const struct cv_creds *c, bool in_service,
                    struct cv_key **dek);

/* DEK rotation: replace every wrap of h by a wrap of new_dek with the same
 * id, type and key (a passphrase wrap keeps its KDF parameters). Each wrap is
 * first unwrapped with c to prove its key is at hand and holds dek; a file
 * wrap's key file is the one it names, else c's. On failure h is unchanged
 * and the message names the wrap, why, and how to proceed. Returns 0 or
 * -errno. */
int cv_wrap_remake_all (struct cv_header *h, const char *name,
                        const struct cv_creds *c, const struct cv_key *dek,
                        const struct cv_key *new_dek);

/* The state of wrap id's key as its key service reports it ("Enabled",
 * "Disabled"...; KMS DescribeKey, PKCS#11 token and object), in *state
 * (caller frees; NULL when the provider cannot describe its keys). Returns 0,
 * -ENOENT (no such wrap) or the provider's -errno (logged; -ENOKEY: no
 * credentials for it, not logged). */
int cv_wrap_describe (const struct cv_header *h, int64_t id,
                      const struct cv_creds *c, char **state);

/* Which wraps an unlock tries, and in what order (plugin wrap=, keymgr
 * --wrap). Each item names a wrap by id or every wrap of a type; items are
 * tried in the order given, a wrap once. n == 0 tries every wrap in header
 * order. except (-1: none) is never tried. */
#define CV_WRAP_SEL_MAX 16
struct cv_wrap_sel {
  size_t n;
  struct {
    int64_t id;       /* >= 0: this wrap */
    const char *type; /* else: every wrap of this type ("kms"...) */
  } item[CV_WRAP_SEL_MAX];
  int64_t except;
};
#define CV_WRAP_SEL_ALL                                                        \
  {                                                                            \
    .n = 0, .except = -1                                                       \
  }

/* Add "ID" or "TYPE" (as given to wrap= / --wrap) to s. Returns 0, or -EINVAL
 * (logged: not a wrap id or type, or too many) . */
int cv_wrap_sel_add (struct cv_wrap_sel *s, const char *arg);

/* Unlock: try the wraps sel chooses (NULL: all, in header order) with
 * whatever credentials c holds; the first whose DEK passes
 * cv_hdr_authenticate, with the wraps as the key sealed them
 * (cv_hdr_wraps_check), wins. Failures of wraps tried before the one that
 * succeeds are debug messages; when none succeeds, one error names the volume
 * (name: its path) and each wrap tried with its reason.
 * When the header copy h was read from fails authentication (or none of its
 * wraps authenticates) and the other copy passes, h becomes the other copy
 * with a warning (cv_hdr_use_other). A valid other copy of the same seqid
 * that fails authentication is reported as a warning.
 * Returns 0 with *dek (caller frees) and *wrap_id (may be NULL), or:
 *   -ENOKEY        no credential given matches any wrap tried (the message
 *                  lists the wraps and what each needs), or sel chose none
 *   -EKEYREJECTED  credentials were given but none unlocked a wrap
 *   -EBADMSG       a DEK was recovered but the header MAC fails (tampered),
 *                  or a wrap does not authenticate (altered, or copied from
 *                  another volume)
 *   other -errno from providers (network, revoked key) when nothing else
 *                  succeeded. */
int cv_unlock (struct cv_header *h, const char *name, const struct cv_creds *c,
               const struct cv_wrap_sel *sel, struct cv_key **dek,
               int64_t *wrap_id);

/* Read a 32-byte KEK file; refuses other sizes with a clear message. */
int cv_keyfile_read (const char *path, struct cv_key **kek);
/* Create a new KEK file (mode 0400, O_EXCL) with 32 random bytes. */
int cv_keyfile_create (const char *path);

/* The key watch (lib/keys/check.c). */

/* What a failed check means: CV_CHECK_REVOKED for a definitive answer about
 * the key (-EKEYREVOKED, -EACCES, -ENOENT, -EBADMSG, -EKEYREJECTED,
 * -EINVAL: disabled, pending deletion, policy or grant changed, deleted,
 * key object or key file gone or different); CV_CHECK_TRANSIENT for the key
 * service out of reach or the caller's credentials refused (-ETIMEDOUT,
 * -ECONNREFUSED, -EAGAIN, -EIO, -EPROTO, -EKEYEXPIRED, -ENOKEY, anything
 * else); CV_CHECK_OK for 0. */
enum cv_check_class { CV_CHECK_OK, CV_CHECK_REVOKED, CV_CHECK_TRANSIENT };
enum cv_check_class cv_check_classify (int err);
/* Why a check of a wrap of that type failed with err, in a few words for
 * status and the revocation's cause ("the key is disabled or pending
 * deletion"); buf (len bytes) holds it when it is not a constant. */
const char *cv_check_reason (const char *type, int err, char *buf, size_t len);

/* Unwrap wrap id of h with c, fetching what the provider needs afresh (KMS
 * credentials from their source, a new token session and login). dek given:
 * the result must equal it (constant time), else -EKEYREJECTED. dek NULL:
 * the result must authenticate h (cv_hdr_authenticate), and is returned in
 * *out (caller frees; out may be NULL). Returns 0, -ENOENT (no wrap id in
 * h), or the provider's -errno; each failure logged once (the provider's
 * message and one line naming the wrap and the outcome). Test knob:
 * CV_KEY_CHECK_FAIL=N fails every check with -N. */
int cv_wrap_check (const struct cv_header *h, int64_t id,
                   const struct cv_creds *c, const struct cv_key *dek,
                   struct cv_key **out);

/* A deep copy of c (strings and secrets; secrets in locked memory) that a
 * server keeps for checks and resume, and its release. Returns 0 or -ENOMEM
 * (logged). */
int cv_creds_copy (const struct cv_creds *c, struct cv_creds **out);
void cv_creds_free (struct cv_creds *c);

/* Release what the providers hold (PKCS#11 modules, curl globals). */
void cv_keys_cleanup (void);

#endif

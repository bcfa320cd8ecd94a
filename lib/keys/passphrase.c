/* Provider "passphrase": the KEK is derived from a recovery passphrase with
 * Argon2id or scrypt; the parameters and salt are recorded in the wrap as
 *   "kdf": {"type":"argon2id","t":T,"m":KIB,"p":P,"salt":b64}
 *   "kdf": {"type":"scrypt","n":N,"r":8,"p":1,"salt":b64} */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/aead_wrap.h"
#include "keys/keys.h"
#include "keys/providers.h"

#define KEK_LEN 32
#define SALT_LEN 32

/* What the format allows at all, for new wraps and for wraps read from disk,
 * with or without --allow-costly-kdf: the header is not authenticated before
 * unlock, so its parameters must never make unlock allocate unbounded memory
 * or run for days. */
#define ARGON2_T_MAX 100
#define ARGON2_M_MAX (4u * 1024 * 1024) /* KiB: 4 GiB */
#define ARGON2_P_MAX 64
#define SCRYPT_N_MAX (1u << 22) /* 128 * r * N = 4 GiB */
#define SCRYPT_R 8
#define SCRYPT_P 1

/* The unlock limit: the most one unlock may cost unless the user allows more
 * (cv_creds.allow_costly_kdf). The worst accepted argon2id unlock (1 GiB, 4
 * passes, 1 lane) takes a few seconds on a small machine (figures in
 * cryptvol-keymgr(8)); the bounds above take about 14 minutes. Checked before
 * any key derivation, so that a header edited to ask for more costs the
 * reader nothing. */
#define ARGON2_T_LIMIT 10
#define ARGON2_M_LIMIT (1u << 20) /* KiB: 1 GiB */
#define ARGON2_P_LIMIT 16
#define ARGON2_MT_LIMIT (4ull << 20) /* KiB x passes: 4 GiB-passes */
#define SCRYPT_N_LIMIT (1u << 20)    /* 128 * r * N = 1 GiB */

#define OVERRIDE                                                               \
  "--allow-costly-kdf (cryptvol-keymgr) or allow-costly-kdf=true (nbdkit "     \
  "plugin)"

struct kdf {
  int scrypt; /* 0: argon2id */
  uint32_t t, m_kib, p;
  uint64_t n;
  uint8_t salt[SALT_LEN];
};

/* Check k against the format's bounds; what names it in the message, logged
 * as an error for a new wrap, as a warning for a wrap read from disk (unlock
 * may go on to the next wrap). */
static int
kdf_check_bounds (const struct kdf *k, const char *what,
                  enum cv_log_level level)
{
  if (!k->scrypt
      && (k->t < 1 || k->t > ARGON2_T_MAX || k->p < 1 || k->p > ARGON2_P_MAX
          || k->m_kib < 8 * k->p || k->m_kib > ARGON2_M_MAX)) {
    cv_log (level,
            "%s: argon2id parameters t=%u m=%u KiB p=%u are out of bounds "
            "(t 1..%d, m 8*p..%u KiB, p 1..%d); refusing",
            what, k->t, k->m_kib, k->p, ARGON2_T_MAX, ARGON2_M_MAX,
            ARGON2_P_MAX);
    return -EINVAL;
  }
  if (k->scrypt && (k->n < 2 || k->n > SCRYPT_N_MAX || (k->n & (k->n - 1)))) {
    cv_log (level,
            "%s: scrypt N=%llu is out of bounds (a power of two, 2..%u); "
            "refusing",
            what, (unsigned long long) k->n, SCRYPT_N_MAX);
    return -EINVAL;
  }
  return 0;
}

/* Check k (within the format's bounds) against the unlock limit unless
 * allow_costly. new_wrap: k is for a wrap being made (an error: such a wrap
 * would be refused at every unlock), else read from disk (a warning: unlock
 * may go on to the next wrap). 0, or -EINVAL for a new wrap, -EDQUOT for
 * one read. */
static int
kdf_check_limit (const struct kdf *k, const char *what, bool new_wrap,
                 bool allow_costly)
{
  enum cv_log_level level = new_wrap ? CV_LOG_ERROR : CV_LOG_WARN;
  const char *why
      = new_wrap ? "every unlock would refuse such a wrap; choose smaller "
                   "--pbkdf-memory/--pbkdf-time/--pbkdf-parallel values, or "
                   "accept the cost with"
                 : "refusing before any key derivation: a header edited to "
                   "make unlock slow asks for this; if this wrap was made "
                   "with these parameters, allow them with";

  if (allow_costly)
    return 0;
  if (!k->scrypt
      && (k->t > ARGON2_T_LIMIT || k->m_kib > ARGON2_M_LIMIT
          || k->p > ARGON2_P_LIMIT
          || (uint64_t) k->m_kib * k->t > ARGON2_MT_LIMIT)) {
    cv_log (level,
            "%s: argon2id t=%u m=%u KiB p=%u is over the unlock limit (t <= "
            "%d, m <= %u GiB, p <= %d, m*t <= %llu GiB-passes); %s %s",
            what, k->t, k->m_kib, k->p, ARGON2_T_LIMIT, ARGON2_M_LIMIT >> 20,
            ARGON2_P_LIMIT, (unsigned long long) ARGON2_MT_LIMIT >> 20, why,
            OVERRIDE);
    return new_wrap ? -EINVAL : -EDQUOT;
  }
  if (k->scrypt && k->n > SCRYPT_N_LIMIT) {
    cv_log (level,
            "%s: scrypt N=%llu r=%d p=%d is over the unlock limit (N <= %u); "
            "%s %s",
            what, (unsigned long long) k->n, SCRYPT_R, SCRYPT_P, SCRYPT_N_LIMIT,
            why, OVERRIDE);
    return new_wrap ? -EINVAL : -EDQUOT;
  }
  return 0;
}

/* One KDF at a time in the process: each may take up to 1 GiB and every
 * core, and a server unlocking many volumes in parallel (unlock-parallel=)
 * must not multiply that. */
static pthread_mutex_t kdf_lock = PTHREAD_MUTEX_INITIALIZER;

/* Derive the KEK from the passphrase under k into a new cv_key. */
static int
kdf_derive (const struct kdf *k, const struct cv_key *pass, struct cv_key **kek)
{
  CLEANUP_KEY struct cv_key *out = NULL;
  int r = cv_key_new (KEK_LEN, &out);

  if (r < 0)
    return r;
  pthread_mutex_lock (&kdf_lock);
  if (k->scrypt)
    r = cv_scrypt (pass->b, pass->len, k->salt, SALT_LEN, k->n, SCRYPT_R,
                   SCRYPT_P, out->b, out->len);
  else
    r = cv_argon2id (pass->b, pass->len, k->salt, SALT_LEN, k->t, k->m_kib,
                     k->p, out->b, out->len);
  pthread_mutex_unlock (&kdf_lock);
  if (r < 0)
    return r;
  *kek = STEAL (out);
  return 0;
}

/* k as the wrap's "kdf" object (new reference in *out). */
static int
kdf_to_json (const struct kdf *k, json_t **out)
{
  CLEANUP_FREE char *salt = NULL;
  int r = cv_b64_encode (k->salt, SALT_LEN, &salt);

  if (r < 0)
    return r;
  if (k->scrypt)
    *out = json_pack ("{s:s, s:I, s:i, s:i, s:s}", "type", "scrypt", "n",
                      (json_int_t) k->n, "r", SCRYPT_R, "p", SCRYPT_P, "salt",
                      salt);
  else
    *out = json_pack ("{s:s, s:I, s:I, s:I, s:s}", "type", "argon2id", "t",
                      (json_int_t) k->t, "m", (json_int_t) k->m_kib, "p",
                      (json_int_t) k->p, "salt", salt);
  return *out ? 0 : -ENOMEM;
}

/* The integer member key of o, in 0..max, into *v. */
static int
get_uint (const json_t *o, const char *key, uint64_t max, uint64_t *v,
          const char *label)
{
  json_t *j = json_object_get (o, key);

  if (!json_is_integer (j) || json_integer_value (j) < 0
      || (uint64_t) json_integer_value (j) > max) {
    cv_warn ("%s: kdf member \"%s\" is missing or out of range; the wrap is "
             "malformed",
             label, key);
    return -EINVAL;
  }
  *v = json_integer_value (j);
  return 0;
}

/* Read the wrap's "kdf" object into k and check it against the format's
 * bounds (not the unlock limit). */
static int
kdf_from_json (const json_t *w, struct kdf *k, const char *label)
{
  json_t *o = json_object_get (w, "kdf");
  const char *type = json_string_value (json_object_get (o, "type"));
  const char *salt64 = json_string_value (json_object_get (o, "salt"));
  CLEANUP_FREE uint8_t *salt = NULL;
  size_t saltlen = 0;
  uint64_t t = 0, m = 0, p = 0, r8 = 0;
  int r;

  if (!type || !salt64) {
    cv_warn ("%s: no \"kdf\" with a type and a salt; the wrap is malformed",
             label);
    return -EINVAL;
  }
  r = cv_b64_decode (salt64, &salt, &saltlen);
  if (r == -ENOMEM)
    return r;
  if (r < 0 || saltlen != SALT_LEN) {
    cv_warn ("%s: the kdf salt is not base64 of %d bytes; the wrap is "
             "malformed",
             label, SALT_LEN);
    return -EINVAL;
  }
  memcpy (k->salt, salt, SALT_LEN);
  if (strcmp (type, "argon2id") == 0) {
    k->scrypt = 0;
    if ((r = get_uint (o, "t", UINT32_MAX, &t, label)) < 0
        || (r = get_uint (o, "m", UINT32_MAX, &m, label)) < 0
        || (r = get_uint (o, "p", UINT32_MAX, &p, label)) < 0)
      return r;
    k->t = t, k->m_kib = m, k->p = p;
  } else if (strcmp (type, "scrypt") == 0) {
    k->scrypt = 1;
    if ((r = get_uint (o, "n", UINT64_MAX, &k->n, label)) < 0
        || (r = get_uint (o, "r", UINT32_MAX, &r8, label)) < 0
        || (r = get_uint (o, "p", UINT32_MAX, &p, label)) < 0)
      return r;
    if (r8 != SCRYPT_R || p != SCRYPT_P) {
      cv_warn ("%s: scrypt r=%llu p=%llu are not supported (only r=%d p=%d)",
               label, (unsigned long long) r8, (unsigned long long) p, SCRYPT_R,
               SCRYPT_P);
      return -EINVAL;
    }
  } else {
    cv_warn ("%s: unknown kdf type; the wrap is malformed", label);
    return -EINVAL;
  }
  return kdf_check_bounds (k, label, CV_LOG_WARN);
}

/* Wrap dek under a KEK derived from the credentials' passphrase with their
 * pbkdf parameters and a fresh salt. */
static int
pass_wrap (const char *ref, const struct cv_creds *c, const struct cv_key *dek,
           const char *binding, json_t *w)
{
  CLEANUP_KEY struct cv_key *kek = NULL;
  struct kdf k = { 0 };
  const char *type;
  json_t *o = NULL;
  int r;

  if (!c || !c->passphrase)
    return -ENOKEY;
  type = c->pbkdf.type ? c->pbkdf.type : "argon2id";
  if (strcmp (type, "argon2id") == 0) {
    k.t = c->pbkdf.t_cost, k.m_kib = c->pbkdf.m_kib, k.p = c->pbkdf.parallel;
  } else if (strcmp (type, "scrypt") == 0) {
    k.scrypt = 1, k.n = c->pbkdf.scrypt_n;
  } else {
    cv_err ("passphrase KDF \"%s\" is not supported (argon2id or scrypt)",
            type);
    return -EINVAL;
  }
  r = kdf_check_bounds (&k, "new passphrase wrap", CV_LOG_ERROR);
  if (r < 0)
    return r;
  r = kdf_check_limit (&k, "new passphrase wrap", true, c->allow_costly_kdf);
  if (r < 0)
    return r;
  r = cv_random (k.salt, SALT_LEN);
  if (r < 0)
    return r;
  r = kdf_derive (&k, c->passphrase, &kek);
  if (r < 0)
    return r;
  r = kdf_to_json (&k, &o);
  if (r < 0)
    return r;
  if (json_object_set_new (w, "kdf", o) < 0)
    return -ENOMEM;
  return cv_aead_wrap_seal (kek, dek, binding, w);
}

/* Unwrap w with a KEK derived from the credentials' passphrase. */
static int
pass_unwrap (const json_t *w, const struct cv_creds *c, const char *binding,
             struct cv_key **dek)
{
  char label[CV_WRAP_LABEL_MAX];
  CLEANUP_KEY struct cv_key *kek = NULL;
  struct kdf k = { 0 };
  int r;

  if (!c || !c->passphrase)
    return -ENOKEY;
  cv_wrap_label (w, label, sizeof label);
  r = kdf_from_json (w, &k, label);
  if (r < 0)
    return r;
  r = kdf_check_limit (&k, label, false, c->allow_costly_kdf);
  if (r < 0)
    return r;
  r = kdf_derive (&k, c->passphrase, &kek);
  if (r < 0)
    return r;
  r = cv_aead_wrap_open (kek, w, binding, dek);
  if (r == -EBADMSG) {
    /* Under a derived key a wrong passphrase and an altered wrap look the
     * same. */
    cv_debug ("%s: wrong passphrase (or the wrap was altered)", label);
    return -EKEYREJECTED;
  }
  return r;
}

const struct cv_provider cv_provider_passphrase = {
  .type = "passphrase",
  .wrap = pass_wrap,
  .unwrap = pass_unwrap,
};

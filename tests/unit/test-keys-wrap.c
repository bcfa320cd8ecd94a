/* The file and passphrase providers: round trips, tampering, wrong keys,
 * wraps moved between volumes, key files, KDF bounds and wrap specs. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/fdio.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/keys.h"
#include "keys/providers.h"

#define BINDING "cryptvol:v1:volume:11111111-2222-4333-8444-555555555555"
#define OTHER "cryptvol:v1:volume:99999999-2222-4333-8444-555555555555"
#define PASS "correct horse battery staple"
#define WRONG_PASS "Tr0ub4dor&3"

static char dir[] = "/tmp/cv-test-keys-wrap-XXXXXX";
static char k1[64], k2[64];
static struct cv_key *dek;

/* Nothing logged so far may contain a passphrase; then clear the log. */
static void
clear (void)
{
  CHECK (!strstr (harness_logged (), PASS), "passphrase in the log: %s",
         harness_logged ());
  CHECK (!strstr (harness_logged (), WRONG_PASS), "passphrase in the log: %s",
         harness_logged ());
  harness_log_clear ();
}

static int
logged (const char *s)
{
  return strstr (harness_logged (), s) != NULL;
}

/* A wrap object with the common members, as cv_wrap_add makes it. */
static json_t *
new_wrap (const char *type, const char *ref)
{
  json_t *w = json_pack ("{s:i, s:s}", "id", 0, "type", type);
  if (ref)
    json_object_set_new (w, "ref", json_string (ref));
  return w;
}

/* A copy of w with one bit of member key's decoded bytes flipped. */
static json_t *
flip (const json_t *w, const char *key)
{
  json_t *c = json_deep_copy (w);
  CLEANUP_FREE uint8_t *b = NULL;
  CLEANUP_FREE char *s = NULL;
  size_t len = 0;

  const char *s64 = json_string_value (json_object_get (c, key));
  if (!s64 || cv_b64_decode (s64, &b, &len) != 0 || len == 0) {
    CHECK (0, "member %s decodes", key);
    return c; /* unchanged: the checks on it fail too */
  }
  b[len - 1] ^= 0x01;
  cv_b64_encode (b, len, &s);
  json_object_set_new (c, key, json_string (s));
  return c;
}

static int
same_key (const struct cv_key *a, const struct cv_key *b)
{
  return a && b && a->len == b->len && memcmp (a->b, b->b, a->len) == 0;
}

static void
write_file (const char *path, size_t len, mode_t mode)
{
  uint8_t buf[64] = { 0 };
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  CHECK (fd >= 0 && cv_write_all (fd, buf, len) == 0, "write %s", path);
  close (fd);
  chmod (path, mode);
}

static void
test_keyfile (void)
{
  char p[96];
  struct stat st;
  CLEANUP_KEY struct cv_key *kek = NULL;

  clear ();
  CHECK (cv_keyfile_create (k1) == 0, "create %s", k1);
  CHECK (stat (k1, &st) == 0 && (st.st_mode & 07777) == 0400, "mode %o",
         st.st_mode & 07777);
  CHECK (st.st_size == 32, "size %lld", (long long) st.st_size);
  CHECK (cv_keyfile_create (k1) == -EEXIST, "existing file refused");
  CHECK (logged ("already exists"), "log: %s", harness_logged ());
  CHECK (cv_keyfile_create (k2) == 0, "create %s", k2);
  clear ();
  CHECK (cv_keyfile_read (k1, &kek) == 0 && kek->len == 32, "read %s", k1);
  CHECK (harness_logged ()[0] == '\0', "quiet read: %s", harness_logged ());

  static const size_t sizes[] = { 0, 31, 33, 64 };
  for (size_t i = 0; i < ARRAY_SIZE (sizes); i++) {
    struct cv_key *k = NULL;
    snprintf (p, sizeof p, "%s/size-%zu", dir, sizes[i]);
    write_file (p, sizes[i], 0600);
    clear ();
    CHECK (cv_keyfile_read (p, &k) == -EINVAL && !k, "%zu bytes refused",
           sizes[i]);
    CHECK (logged ("exactly 32"), "log: %s", harness_logged ());
    unlink (p);
  }
  clear ();
  CHECK (cv_keyfile_read (dir, &kek) == -EINVAL, "directory refused");
  CHECK (logged ("not a regular file"), "log: %s", harness_logged ());
  snprintf (p, sizeof p, "%s/fifo", dir);
  CHECK (mkfifo (p, 0600) == 0, "mkfifo");
  clear ();
  CHECK (cv_keyfile_read (p, &kek) == -EINVAL, "FIFO refused, without waiting");
  CHECK (logged ("not a regular file"), "log: %s", harness_logged ());
  unlink (p);
  snprintf (p, sizeof p, "%s/absent", dir);
  CHECK (cv_keyfile_read (p, &kek) == -ENOENT, "absent file");

  /* A readable-by-others key still works, with a warning saying what to do. */
  struct cv_key *k = NULL;
  snprintf (p, sizeof p, "%s/open", dir);
  write_file (p, 32, 0644);
  clear ();
  CHECK (cv_keyfile_read (p, &k) == 0, "mode 0644 read");
  CHECK (logged ("warning: ") && logged ("mode 0644") && logged ("chmod 600"),
         "log: %s", harness_logged ());
  cv_key_free (k);
  unlink (p);
}

static void
test_file_wrap (void)
{
  const struct cv_provider *p = cv_provider_find ("file");
  struct cv_creds c = { .keyfile = k1 };
  json_auto_t *w = new_wrap ("file", k1);
  struct cv_key *out = NULL;

  CHECK (p && strcmp (p->type, "file") == 0, "file provider");
  clear ();
  int r = p ? p->wrap (k1, &c, dek, BINDING, w) : -ENOSYS;
  CHECK (r == 0, "wrap: %d", r);
  if (r != 0)
    return; /* the rest needs the wrap */
  const char *id = json_string_value (json_object_get (w, "kek_id"));
  CHECK (id && strlen (id) == 16 && strspn (id, "0123456789abcdef") == 16,
         "kek_id %s", id ? id : "(none)");
  const char *alg = json_string_value (json_object_get (w, "alg"));
  CHECK (alg && strcmp (alg, "A256GCM") == 0, "alg %s", alg ? alg : "(none)");
  CHECK (p->unwrap (w, &c, BINDING, &out) == 0 && same_key (out, dek),
         "round trip");
  cv_key_free (out), out = NULL;
  CHECK (harness_logged ()[0] == '\0', "quiet: %s", harness_logged ());

  /* Tampering under the right key file: the key id matches, GCM fails. */
  static const char *const members[] = { "iv", "ct", "tag" };
  for (size_t i = 0; i < ARRAY_SIZE (members); i++) {
    json_auto_t *t = flip (w, members[i]);
    clear ();
    CHECK (p->unwrap (t, &c, BINDING, &out) == -EBADMSG && !out,
           "flipped %s: -EBADMSG", members[i]);
    CHECK (logged ("wrap 0 (file ") && logged ("altered"), "log: %s",
           harness_logged ());
  }

  /* Copied onto another volume. */
  clear ();
  CHECK (p->unwrap (w, &c, OTHER, &out) == -EBADMSG && !out,
         "other binding: -EBADMSG");
  CHECK (logged ("copied from another volume"), "log: %s", harness_logged ());

  /* The wrong key file is told apart by its key id. */
  struct cv_creds wrong = { .keyfile = k2 };
  clear ();
  CHECK (p->unwrap (w, &wrong, BINDING, &out) == -EKEYREJECTED && !out,
         "wrong key file: -EKEYREJECTED");
  CHECK (logged ("is not this wrap's key") && logged (k2) && logged (id),
         "log: %s", harness_logged ());

  /* The right key file under an altered kek_id: the AEAD still opens, so it
   * is the kek_id that was altered, not the key file that is wrong. */
  static const char *const ids[] = { "0000000000000000", "not hex" };
  for (size_t i = 0; i < ARRAY_SIZE (ids); i++) {
    json_auto_t *t = json_deep_copy (w);
    json_object_set_new (t, "kek_id", json_string (ids[i]));
    clear ();
    CHECK (p->unwrap (t, &c, BINDING, &out) == -EBADMSG && !out,
           "kek_id %s: -EBADMSG", ids[i]);
    CHECK (logged ("wrap 0 (file ") && logged ("kek_id was altered")
               && logged (i == 0 ? ids[0] : "a malformed id") && logged (id),
           "log: %s", harness_logged ());
    /* Altered kek_id and another key file: still a wrong key file. */
    clear ();
    CHECK (p->unwrap (t, &(struct cv_creds){ .keyfile = k2 }, BINDING, &out)
                   == -EKEYREJECTED
               && !out,
           "kek_id %s, other key file: -EKEYREJECTED", ids[i]);
    CHECK (!logged ("altered"), "log: %s", harness_logged ());
  }

  /* No key file given: skipped silently. */
  struct cv_creds none = { 0 };
  clear ();
  CHECK (p->unwrap (w, &none, BINDING, &out) == -ENOKEY, "no key file");
  CHECK (harness_logged ()[0] == '\0', "-ENOKEY is not logged");

  /* Malformed wraps. */
  json_auto_t *m1 = json_deep_copy (w);
  json_object_del (m1, "ct");
  clear ();
  CHECK (p->unwrap (m1, &c, BINDING, &out) == -EINVAL, "no ct: -EINVAL");
  CHECK (logged ("\"ct\"") && logged ("malformed"), "log: %s",
         harness_logged ());
  json_auto_t *m2 = json_deep_copy (w);
  json_object_set_new (m2, "iv", json_string ("AAAA"));
  CHECK (p->unwrap (m2, &c, BINDING, &out) == -EINVAL, "short iv: -EINVAL");
  json_auto_t *m3 = json_deep_copy (w);
  json_object_set_new (m3, "alg", json_string ("A128CBC"));
  CHECK (p->unwrap (m3, &c, BINDING, &out) == -EPROTONOSUPPORT,
         "other alg: -EPROTONOSUPPORT");
  json_auto_t *m4 = json_deep_copy (w);
  json_object_del (m4, "kek_id");
  CHECK (p->unwrap (m4, &c, BINDING, &out) == -EINVAL, "no kek_id: -EINVAL");

  /* Wrapping under a key file that is not one. */
  json_auto_t *w2 = new_wrap ("file", dir);
  clear ();
  CHECK (p->wrap (dir, &c, dek, BINDING, w2) == -EINVAL, "wrap under a dir");
}

/* Round trip and failures of a passphrase wrap made with pbkdf. */
static void
test_pass_kdf (const struct cv_pbkdf *pbkdf)
{
  const struct cv_provider *p = cv_provider_find ("passphrase");
  CLEANUP_KEY struct cv_key *pass = NULL, *wrongpass = NULL;
  struct cv_key *out = NULL;
  json_auto_t *w = new_wrap ("passphrase", NULL);

  cv_key_from (PASS, strlen (PASS), &pass);
  cv_key_from (WRONG_PASS, strlen (WRONG_PASS), &wrongpass);
  struct cv_creds c = { .passphrase = pass, .pbkdf = *pbkdf };
  struct cv_creds wrong = { .passphrase = wrongpass };

  clear ();
  int r = p ? p->wrap (NULL, &c, dek, BINDING, w) : -ENOSYS;
  CHECK (r == 0, "%s wrap: %d", pbkdf->type, r);
  if (r != 0)
    return; /* the rest needs the wrap */
  json_t *kdf = json_object_get (w, "kdf");
  const char *type = json_string_value (json_object_get (kdf, "type"));
  CHECK (type && strcmp (type, pbkdf->type) == 0, "kdf type recorded");
  CHECK (json_string_length (json_object_get (kdf, "salt")) == 44,
         "32-byte salt recorded");
  if (strcmp (pbkdf->type, "scrypt") == 0)
    CHECK (json_integer_value (json_object_get (kdf, "n"))
                   == (json_int_t) pbkdf->scrypt_n
               && json_integer_value (json_object_get (kdf, "r")) == 8
               && json_integer_value (json_object_get (kdf, "p")) == 1,
           "scrypt parameters recorded");
  else
    CHECK (json_integer_value (json_object_get (kdf, "t")) == pbkdf->t_cost
               && json_integer_value (json_object_get (kdf, "m"))
                      == pbkdf->m_kib
               && json_integer_value (json_object_get (kdf, "p"))
                      == pbkdf->parallel,
           "argon2id parameters recorded");

  /* Unwrap reads the parameters from the wrap, not from the credentials. */
  struct cv_creds only = { .passphrase = pass };
  CHECK (p->unwrap (w, &only, BINDING, &out) == 0 && same_key (out, dek),
         "%s round trip", pbkdf->type);
  cv_key_free (out), out = NULL;

  clear ();
  CHECK (p->unwrap (w, &wrong, BINDING, &out) == -EKEYREJECTED && !out,
         "wrong passphrase: -EKEYREJECTED");
  CHECK (logged ("wrap 0 (passphrase): wrong passphrase"), "log: %s",
         harness_logged ());
  json_auto_t *t = flip (w, "ct");
  clear ();
  CHECK (p->unwrap (t, &c, BINDING, &out) == -EKEYREJECTED,
         "altered ct: -EKEYREJECTED (cannot be told from a wrong one)");
  CHECK (logged ("or the wrap was altered"), "log: %s", harness_logged ());
  clear ();
  CHECK (p->unwrap (w, &c, OTHER, &out) == -EKEYREJECTED,
         "other binding refused");
  struct cv_creds none = { 0 };
  clear ();
  CHECK (p->unwrap (w, &none, BINDING, &out) == -ENOKEY
             && harness_logged ()[0] == '\0',
         "no passphrase: -ENOKEY, not logged");
  CHECK (p->wrap (NULL, &none, dek, BINDING, w) == -ENOKEY,
         "wrap without a passphrase: -ENOKEY");
  clear ();
}

/* A copy of w with kdf member key set to v; unwrap must refuse it fast:
 * -EINVAL out of the format's bounds, -EDQUOT over the unlock limit. */
static void
absurd (const json_t *w, const struct cv_creds *c, const char *key,
        json_int_t v, int err, const char *expect)
{
  const struct cv_provider *p = cv_provider_find ("passphrase");
  json_auto_t *t = json_deep_copy (w);
  struct cv_key *out = NULL;

  json_object_set_new (json_object_get (t, "kdf"), key, json_integer (v));
  clear ();
  CHECK (p->unwrap (t, c, BINDING, &out) == err && !out,
         "kdf %s = %lld refused", key, (long long) v);
  CHECK (logged (expect), "kdf %s = %lld: log: %s", key, (long long) v,
         harness_logged ());
}

static void
test_kdf_bounds (void)
{
  const struct cv_provider *p = cv_provider_find ("passphrase");
  CLEANUP_KEY struct cv_key *pass = NULL;
  json_auto_t *a = new_wrap ("passphrase", NULL);
  json_auto_t *s = new_wrap ("passphrase", NULL);

  cv_key_from (PASS, strlen (PASS), &pass);
  struct cv_creds ca
      = { .passphrase = pass, .pbkdf = { "argon2id", 1, 8192, 1, 0 } };
  struct cv_creds cs
      = { .passphrase = pass, .pbkdf = { "scrypt", 0, 0, 0, 1 << 10 } };
  CHECK (p->wrap (NULL, &ca, dek, BINDING, a) == 0, "argon2id wrap");
  CHECK (p->wrap (NULL, &cs, dek, BINDING, s) == 0, "scrypt wrap");

  absurd (a, &ca, "m", 8LL * 1024 * 1024, -EINVAL, "out of bounds"); /* 8 GiB */
  absurd (a, &ca, "m", 1LL << 40, -EINVAL, "out of range");          /* > u32 */
  absurd (a, &ca, "t", 0, -EINVAL, "out of bounds");
  absurd (a, &ca, "t", 1000000, -EINVAL, "out of bounds");
  absurd (a, &ca, "p", 0, -EINVAL, "out of bounds");
  absurd (a, &ca, "m", -1, -EINVAL, "out of range");
  absurd (s, &cs, "n", 1LL << 30, -EINVAL, "out of bounds");
  absurd (s, &cs, "n", 1000, -EINVAL, "out of bounds"); /* not a power of two */
  absurd (s, &cs, "r", 1, -EINVAL, "only r=8");
  absurd (s, &cs, "p", 16, -EINVAL, "only r=8");

  json_auto_t *t = json_deep_copy (a);
  json_object_set_new (json_object_get (t, "kdf"), "type",
                       json_string ("pbkdf2"));
  struct cv_key *out = NULL;
  CHECK (p->unwrap (t, &ca, BINDING, &out) == -EINVAL, "unknown kdf refused");

  /* New wraps obey the same bounds. */
  json_auto_t *n = new_wrap ("passphrase", NULL);
  struct cv_creds big = { .passphrase = pass,
                          .pbkdf = { "argon2id", 1, 8u * 1024 * 1024, 1, 0 } };
  clear ();
  CHECK (p->wrap (NULL, &big, dek, BINDING, n) == -EINVAL,
         "new wrap with 8 GiB refused");
  struct cv_creds bad = { .passphrase = pass, .pbkdf = { "md5", 1, 1, 1, 1 } };
  CHECK (p->wrap (NULL, &bad, dek, BINDING, n) == -EINVAL,
         "unknown KDF refused");
  CHECK (logged ("not supported"), "log: %s", harness_logged ());
  clear ();
}

/* The unlock limit: within the format's bounds but costly parameters are
 * refused before any key derivation unless allow_costly_kdf. The cheap ones
 * over the limit (t = 11, p = 17 at little memory) show that the override
 * lets the derivation run. */
static void
test_kdf_limit (void)
{
  const struct cv_provider *p = cv_provider_find ("passphrase");
  CLEANUP_KEY struct cv_key *pass = NULL;
  json_auto_t *a = new_wrap ("passphrase", NULL);
  json_auto_t *s = new_wrap ("passphrase", NULL);
  struct cv_key *out = NULL;

  cv_key_from (PASS, strlen (PASS), &pass);
  struct cv_creds ca
      = { .passphrase = pass, .pbkdf = { "argon2id", 1, 8192, 1, 0 } };
  struct cv_creds cs
      = { .passphrase = pass, .pbkdf = { "scrypt", 0, 0, 0, 1 << 10 } };
  CHECK (p->wrap (NULL, &ca, dek, BINDING, a) == 0, "argon2id wrap");
  CHECK (p->wrap (NULL, &cs, dek, BINDING, s) == 0, "scrypt wrap");

  /* The finding's header: 4 GiB, 100 passes (about 14 minutes). */
  json_auto_t *h = json_deep_copy (a);
  json_object_set_new (json_object_get (h, "kdf"), "m",
                       json_integer (4LL << 20));
  json_object_set_new (json_object_get (h, "kdf"), "t", json_integer (100));
  clear ();
  CHECK (p->unwrap (h, &ca, BINDING, &out) == -EDQUOT && !out,
         "4 GiB x 100 refused");
  CHECK (logged ("wrap 0 (passphrase): argon2id t=100 m=4194304 KiB p=1 is "
                 "over the unlock limit")
             && logged ("--allow-costly-kdf")
             && logged ("allow-costly-kdf=true"),
         "log: %s", harness_logged ());

  absurd (a, &ca, "t", 11, -EDQUOT,
          "t=11 m=8192 KiB p=1 is over the unlock limit");
  absurd (a, &ca, "m", (1LL << 20) + 1, -EDQUOT, "m=1048577 KiB p=1 is over");
  absurd (a, &ca, "p", 17, -EDQUOT, "p=17 is over the unlock limit");
  /* 512 MiB is within m, 9 passes within t, the product is not. */
  json_auto_t *mt = json_deep_copy (a);
  json_object_set_new (json_object_get (mt, "kdf"), "m",
                       json_integer (512 * 1024));
  absurd (mt, &ca, "t", 9, -EDQUOT, "m*t <= 4 GiB-passes");
  absurd (s, &cs, "n", 1LL << 21, -EDQUOT,
          "scrypt N=2097152 r=8 p=1 is over the unlock limit (N <= 1048576)");

  /* With the override the derivation runs: t = 11 in the header is not the t
   * the wrap was made with, so the key is wrong. */
  json_auto_t *t11 = json_deep_copy (a);
  json_object_set_new (json_object_get (t11, "kdf"), "t", json_integer (11));
  ca.allow_costly_kdf = true;
  clear ();
  CHECK (p->unwrap (t11, &ca, BINDING, &out) == -EKEYREJECTED && !out,
         "t=11 with the override: derived, wrong key");
  CHECK (!logged ("unlock limit"), "log: %s", harness_logged ());
  ca.allow_costly_kdf = false;

  /* New wraps over the limit: refused, or made with the override; then such
   * a wrap opens only with it. */
  struct cv_creds p17
      = { .passphrase = pass, .pbkdf = { "argon2id", 1, 8 * 17, 17, 0 } };
  json_auto_t *n = new_wrap ("passphrase", NULL);
  clear ();
  CHECK (p->wrap (NULL, &p17, dek, BINDING, n) == -EINVAL
             && !json_object_get (n, "ct"),
         "new wrap with p=17 refused");
  CHECK (logged ("new passphrase wrap: argon2id t=1 m=136 KiB p=17 is over "
                 "the unlock limit")
             && logged ("every unlock would refuse"),
         "log: %s", harness_logged ());
  p17.allow_costly_kdf = true;
  clear ();
  CHECK (p->wrap (NULL, &p17, dek, BINDING, n) == 0, "p=17 with the override");
  p17.allow_costly_kdf = false;
  CHECK (p->unwrap (n, &p17, BINDING, &out) == -EDQUOT && !out,
         "p=17 wrap refused without the override");
  p17.allow_costly_kdf = true;
  CHECK (p->unwrap (n, &p17, BINDING, &out) == 0 && same_key (out, dek),
         "p=17 wrap opens with the override");
  cv_key_free (out), out = NULL;
  /* The key watch re-checks with its copy of the credentials. */
  struct cv_creds *copy = NULL;
  CHECK (cv_creds_copy (&p17, &copy) == 0 && copy->allow_costly_kdf
             && p->unwrap (n, copy, BINDING, &out) == 0,
         "the copy of the credentials keeps the override");
  cv_creds_free (copy);
  cv_key_free (out);
  clear ();
}

static void
spec (const char *s, int want_r, const char *want_type, const char *want_ref)
{
  const struct cv_provider *p = NULL;
  const char *ref = "unset";
  int r;

  clear ();
  r = cv_wrap_spec_parse (s, &p, &ref);
  CHECK (r == want_r, "spec \"%s\": %d, want %d", s, r, want_r);
  if (r == 0 && want_r == 0) {
    CHECK (p && strcmp (p->type, want_type) == 0, "spec \"%s\": type", s);
    CHECK (want_ref ? ref && strcmp (ref, want_ref) == 0 : ref == NULL,
           "spec \"%s\": ref %s", s, ref ? ref : "NULL");
  }
  if (r < 0)
    CHECK (logged ("error: "), "spec \"%s\" failure is logged", s);
}

static void
test_specs (void)
{
  spec ("file:/etc/k", 0, "file", "/etc/k");
  spec ("file:a:b", 0, "file", "a:b");
  spec ("passphrase", 0, "passphrase", NULL);
  spec ("passphrase:hunter2", -EINVAL, NULL, NULL);
  CHECK (!logged ("hunter2"), "spec message does not echo a passphrase");
  spec ("file:", -EINVAL, NULL, NULL);
  spec ("file", -EINVAL, NULL, NULL);
  spec ("", -EINVAL, NULL, NULL);
  spec ("tpm2:0x81000001", -EINVAL, NULL, NULL);
  CHECK (logged ("file:PATH") && logged ("pkcs11:URI"), "forms listed: %s",
         harness_logged ());
  if (!cv_provider_find ("kms")) {
    spec ("kms:arn:aws:kms:eu-west-1:111122223333:key/1234", -EPROTONOSUPPORT,
          NULL, NULL);
    CHECK (logged ("wrap type kms is not available in this build"), "log: %s",
           harness_logged ());
  } else
    spec ("kms:alias/x", 0, "kms", "alias/x");
  if (!cv_provider_find ("pkcs11"))
    spec ("pkcs11:token=t;object=k", -EPROTONOSUPPORT, NULL, NULL);
  else {
    spec ("pkcs11:token=t;object=k", 0, "pkcs11", "pkcs11:token=t;object=k");
    spec ("pkcs11:token=t;object=k?pin-value=1234", -EINVAL, NULL, NULL);
    CHECK (!logged ("1234"), "PIN not echoed");
  }
  CHECK (cv_provider_find ("file") && cv_provider_find ("passphrase")
             && !cv_provider_find ("bogus"),
         "cv_provider_find");
  clear ();
}

static void
test_label (void)
{
  char buf[CV_WRAP_LABEL_MAX];
  json_auto_t *w
      = json_pack ("{s:i, s:s, s:s}", "id", 7, "type", "pkcs11", "ref",
                   "pkcs11:token=a\nerror: x?pin-value=42&a=b");

  cv_wrap_label (w, buf, sizeof buf);
  CHECK (strcmp (buf, "wrap 7 (pkcs11 pkcs11:token=a?error: "
                      "x?pin-value=REDACTED&a=b)")
             == 0,
         "label: %s", buf);
  json_auto_t *p = json_pack ("{s:i, s:s}", "id", 1, "type", "passphrase");
  CHECK (strcmp (cv_wrap_label (p, buf, sizeof buf), "wrap 1 (passphrase)")
             == 0,
         "label: %s", buf);
}

int
main (void)
{
  harness_init ();
  cv_log_set_debug (true); /* per-wrap reasons are debug messages */
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (k1, sizeof k1, "%s/k1", dir);
  snprintf (k2, sizeof k2, "%s/k2", dir);
  CHECK (cv_key_new (64, &dek) == 0 && cv_random (dek->b, 64) == 0, "dek");

  test_keyfile ();
  test_file_wrap ();
  test_pass_kdf (&(struct cv_pbkdf){ "argon2id", 1, 8192, 1, 0 });
  test_pass_kdf (&(struct cv_pbkdf){ "scrypt", 0, 0, 0, 1 << 14 });
  test_kdf_bounds ();
  test_kdf_limit ();
  test_specs ();
  test_label ();
  clear ();

  cv_key_free (dek);
  unlink (k1);
  unlink (k2);
  rmdir (dir);
  cv_keys_cleanup ();
  return harness_done ("test-keys-wrap");
}

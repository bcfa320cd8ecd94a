/* Which wraps cv_unlock tries, and in what order (plugin wrap=, keymgr
 * --unlock-wrap), and what the user reads: failures before the wrap that
 * unlocks are debug messages; a warning of the winning wrap stays one. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "harness.h"
#include "keys/keys.h"

#define PASS "correct horse battery staple"

static char dir[] = "/tmp/cv-test-keys-select-XXXXXX";
static char k1[64], k2[64];
static struct cv_key *pass;

static int
logged (const char *s)
{
  return strstr (harness_logged (), s) != NULL;
}

/* How many times s occurs in the log. */
static int
times_logged (const char *s)
{
  int n = 0;
  for (const char *p = harness_logged (); (p = strstr (p, s)); p++)
    n++;
  return n;
}

/* A selection from the given wrap= arguments (NULL-terminated). */
static struct cv_wrap_sel
sel_of (const char *const *args)
{
  struct cv_wrap_sel s = CV_WRAP_SEL_ALL;
  for (; *args; args++)
    CHECK (cv_wrap_sel_add (&s, *args) == 0, "wrap=%s", *args);
  return s;
}

/* Unlock h with keyfile kf and passphrase pp through sel; *id gets the wrap
 * that unlocked. */
static int
unlock (struct cv_header *h, const char *kf, struct cv_key *pp,
        const struct cv_wrap_sel *sel, int64_t *id)
{
  struct cv_creds c = { .keyfile = kf, .passphrase = pp };
  CLEANUP_KEY struct cv_key *dek = NULL;

  harness_log_clear ();
  *id = -1;
  return cv_unlock (h, "vol", &c, sel, &dek, id);
}

int
main (void)
{
  CLEANUP_KEY struct cv_key *dek = NULL;
  struct cv_header *h = NULL, *h2 = NULL;
  struct cv_creds add = { .pbkdf = { "argon2id", 1, 8192, 1, 0 } };
  struct cv_wrap_sel s;
  int64_t id;
  char spec[80];

  harness_init ();
  cv_log_set_debug (false); /* as nbdkit without -v, keymgr without --debug */
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (k1, sizeof k1, "%s/k1", dir);
  snprintf (k2, sizeof k2, "%s/k2", dir);
  CHECK (cv_keyfile_create (k1) == 0 && cv_keyfile_create (k2) == 0,
         "key files");
  cv_key_from (PASS, strlen (PASS), &pass);
  add.passphrase = pass;

  /* Wrap 0: file k1, wrap 1: file k2, wrap 2: passphrase. */
  CHECK (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, 1 << 20, &h) == 0, "hdr");
  CHECK (cv_dek_generate (&dek) == 0 && cv_hdr_seal (h, dek) == 0, "seal");
  snprintf (spec, sizeof spec, "file:%s", k1);
  CHECK (cv_wrap_add (h, spec, &add, dek, NULL) == 0, "wrap 0");
  snprintf (spec, sizeof spec, "file:%s", k2);
  CHECK (cv_wrap_add (h, spec, &add, dek, NULL) == 0, "wrap 1");
  CHECK (cv_wrap_add (h, "passphrase", &add, dek, NULL) == 0, "wrap 2");

  /* Parsing wrap= values. */
  s = (struct cv_wrap_sel) CV_WRAP_SEL_ALL;
  harness_log_clear ();
  CHECK (cv_wrap_sel_add (&s, "tpm") == -EINVAL
             && logged ("wrap=tpm: not a wrap id or type"),
         "unknown type refused: %s", harness_logged ());
  CHECK (cv_wrap_sel_add (&s, "-1") == -EINVAL, "negative id refused");
  CHECK (cv_wrap_sel_add (&s, "") == -EINVAL, "empty refused");
  CHECK (s.n == 0, "refused values add nothing");
  for (int i = 0; i < CV_WRAP_SEL_MAX; i++)
    CHECK (cv_wrap_sel_add (&s, "file") == 0, "item %d", i);
  CHECK (cv_wrap_sel_add (&s, "3") == -EINVAL && logged ("at most 16"),
         "too many refused: %s", harness_logged ());

  /* No selection: a wrong key file before the right one is not an error. */
  CHECK (unlock (h, k2, NULL, NULL, &id) == 0 && id == 1, "default: id %lld",
         (long long) id);
  CHECK (!logged ("error") && !logged ("warning"), "quiet: %s",
         harness_logged ());

  /* Only the wraps chosen are tried, in the order given. */
  s = sel_of ((const char *[]){ "0", NULL });
  CHECK (unlock (h, k2, NULL, &s, &id) == -EKEYREJECTED,
         "wrap=0 with wrap 1's key file");
  CHECK (logged ("no wrap could be unlocked: wrap 0 (file")
             && !logged ("wrap 1") && !logged ("wrap 2"),
         "only wrap 0 tried and named: %s", harness_logged ());
  s = sel_of ((const char *[]){ "passphrase", "0", NULL });
  CHECK (unlock (h, k1, pass, &s, &id) == 0 && id == 2,
         "wrap=passphrase first: id %lld", (long long) id);
  s = sel_of ((const char *[]){ "1", "0", NULL });
  CHECK (unlock (h, k1, NULL, &s, &id) == 0 && id == 0, "wrap=1 wrap=0");
  CHECK (!logged ("error"), "wrap 1's failure is not an error: %s",
         harness_logged ());
  cv_log_set_debug (true);
  CHECK (unlock (h, k1, NULL, &s, &id) == 0 && id == 0
             && logged ("debug: volume vol: wrap 1 (file"),
         "with debug on, wrap 1's failure is shown: %s", harness_logged ());
  cv_log_set_debug (false);

  /* A wrap chosen twice (by id and by type) is tried once. */
  s = sel_of ((const char *[]){ "0", "file", "0", NULL });
  CHECK (unlock (h, NULL, NULL, &s, &id) == -ENOKEY, "no credentials");
  CHECK (times_logged ("wrap 0 (file") == 1
             && times_logged ("wrap 1 (file") == 1 && !logged ("wrap 2"),
         "each chosen wrap once: %s", harness_logged ());

  /* except: never that wrap. */
  s = (struct cv_wrap_sel) CV_WRAP_SEL_ALL;
  s.except = 0;
  CHECK (unlock (h, k1, NULL, &s, &id) == -EKEYREJECTED && !logged ("wrap 0"),
         "except 0: %s", harness_logged ());

  /* Nothing chosen exists. */
  s = sel_of ((const char *[]){ "7", "pkcs11", NULL });
  CHECK (unlock (h, k1, pass, &s, &id) == -ENOKEY
             && logged ("vol: none of its wraps is among those chosen"),
         "none chosen: %s", harness_logged ());

  /* Without a selection, the wraps whose key was given go first: with a
   * passphrase wrap ahead of a file wrap and only a key file given, the
   * passphrase wrap is not even tried. */
  CHECK (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, 1 << 20, &h2) == 0, "hdr2");
  CHECK (cv_hdr_seal (h2, dek) == 0, "seal2");
  CHECK (cv_wrap_add (h2, "passphrase", &add, dek, NULL) == 0, "h2 wrap 0");
  snprintf (spec, sizeof spec, "file:%s", k1);
  CHECK (cv_wrap_add (h2, spec, &add, dek, NULL) == 0, "h2 wrap 1");
  cv_log_set_debug (true);
  CHECK (unlock (h2, k1, NULL, NULL, &id) == 0 && id == 1 && !logged ("wrap 0"),
         "key file first: %s", harness_logged ());
  cv_log_set_debug (false);

  /* A warning of the wrap that unlocks is still a warning. */
  CHECK (chmod (k2, 0644) == 0, "chmod");
  s = sel_of ((const char *[]){ "0", "1", NULL });
  CHECK (unlock (h, k2, NULL, &s, &id) == 0 && id == 1, "wrap 1 unlocks");
  CHECK (logged ("warning: key file") && logged ("can be accessed by group")
             && !logged ("error"),
         "the winning wrap's warning kept: %s", harness_logged ());

  cv_hdr_free (h);
  cv_hdr_free (h2);
  cv_key_free (pass);
  unlink (k1);
  unlink (k2);
  rmdir (dir);
  cv_keys_cleanup ();
  return harness_done ("test-keys-select");
}

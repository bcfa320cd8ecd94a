/* cv_wrap_add and cv_unlock on a sealed header with a file wrap and a
 * passphrase wrap: which credentials open it, what the user reads when none
 * does, and that a tampered header or a moved wrap is refused. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header-internal.h"
#include "harness.h"
#include "keys/keys.h"

#define PASS "correct horse battery staple"
#define WRONG_PASS "Tr0ub4dor&3"

static char dir[] = "/tmp/cv-test-keys-unlock-XXXXXX";
static char k1[64], k2[64];
static struct cv_key *pass, *wrongpass;

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

static int
same_key (const struct cv_key *a, const struct cv_key *b)
{
  return a && b && a->len == b->len && memcmp (a->b, b->b, a->len) == 0;
}

/* A sealed header of a new volume with its DEK in *dek. */
static struct cv_header *
new_volume (struct cv_key **dek)
{
  struct cv_header *h = NULL;

  CHECK (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, 1 << 30, &h) == 0,
         "cv_hdr_new");
  CHECK (cv_dek_generate (dek) == 0, "cv_dek_generate");
  CHECK (cv_hdr_seal (h, *dek) == 0, "cv_hdr_seal");
  return h;
}

/* cv_unlock with keyfile and passphrase; checks the DEK when it succeeds. */
static int
unlock (struct cv_header *h, const char *keyfile, struct cv_key *pp,
        const struct cv_key *want, int64_t *id)
{
  struct cv_creds c = { .keyfile = keyfile, .passphrase = pp };
  struct cv_key *dek = NULL;
  int r;

  clear ();
  *id = -1;
  r = cv_unlock (h, "test-volume", &c, NULL, &dek, id);
  if (r == 0)
    CHECK (same_key (dek, want), "unlocked DEK is the volume's");
  else
    CHECK (dek == NULL, "no DEK on failure");
  cv_key_free (dek);
  return r;
}

int
main (void)
{
  CLEANUP_KEY struct cv_key *dek = NULL, *dek2 = NULL;
  struct cv_header *h, *h2;
  int64_t id0 = -1, id1 = -1, id = -1;
  char want[256];

  harness_init ();
  cv_log_set_debug (true); /* per-wrap reasons are debug messages */
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (k1, sizeof k1, "%s/k1", dir);
  snprintf (k2, sizeof k2, "%s/k2", dir);
  CHECK (cv_keyfile_create (k1) == 0 && cv_keyfile_create (k2) == 0,
         "key files");
  cv_key_from (PASS, strlen (PASS), &pass);
  cv_key_from (WRONG_PASS, strlen (WRONG_PASS), &wrongpass);

  /* A volume with wrap 0 (file k1) and wrap 1 (passphrase). */
  h = new_volume (&dek);
  struct cv_creds add
      = { .passphrase = pass, .pbkdf = { "argon2id", 1, 8192, 1, 0 } };
  char spec[80];
  snprintf (spec, sizeof spec, "file:%s", k1);
  CHECK (cv_wrap_add (h, spec, &add, dek, &id0) == 0 && id0 == 0,
         "add file wrap: id %lld", (long long) id0);
  CHECK (cv_wrap_add (h, "passphrase", &add, dek, &id1) == 0 && id1 == 1,
         "add passphrase wrap: id %lld", (long long) id1);
  json_t *w0 = json_array_get (h->wraps, 0), *w1 = json_array_get (h->wraps, 1);
  CHECK (strcmp (json_string_value (json_object_get (w0, "type")), "file") == 0
             && strcmp (json_string_value (json_object_get (w0, "ref")), k1)
                    == 0,
         "file wrap members");
  CHECK (strcmp (json_string_value (json_object_get (w1, "type")), "passphrase")
                 == 0
             && !json_object_get (w1, "ref"),
         "passphrase wrap has no ref");
  const char *created = json_string_value (json_object_get (w1, "created"));
  CHECK (created && strlen (created) == 20 && created[4] == '-'
             && created[10] == 'T' && created[19] == 'Z',
         "created is RFC 3339 UTC: %s", created ? created : "(none)");
  CHECK (cv_wrap_add (h, "passphrase", &(struct cv_creds){ 0 }, dek, NULL)
                 == -ENOKEY
             && logged ("no passphrase given"),
         "add passphrase wrap without one: -ENOKEY, said");
  CHECK (json_array_size (h->wraps) == 2, "a failed add adds nothing");

  /* Either credential alone opens it, quietly. */
  CHECK (unlock (h, k1, NULL, dek, &id) == 0 && id == 0, "key file alone");
  CHECK (!logged ("error") && !logged ("warning"), "quiet: %s",
         harness_logged ());
  CHECK (unlock (h, NULL, pass, dek, &id) == 0 && id == 1, "passphrase alone");
  CHECK (!logged ("error") && !logged ("warning"), "quiet: %s",
         harness_logged ());
  /* A wrong key file does not stop the passphrase, but is reported. */
  CHECK (unlock (h, k2, pass, dek, &id) == 0 && id == 1,
         "wrong key file, right passphrase");
  CHECK (logged ("debug: wrap 0 (file ") && !logged ("error"), "log: %s",
         harness_logged ());

  /* Neither: -ENOKEY, and the message lists each wrap and what it needs. */
  CHECK (unlock (h, NULL, NULL, dek, &id) == -ENOKEY, "no credentials");
  snprintf (want, sizeof want,
            "error: cannot unlock volume test-volume: no wrap could be "
            "unlocked: wrap 0 (file %s): no key file given; wrap 1 "
            "(passphrase): no passphrase given",
            k1);
  CHECK (logged (want), "log: %s\nwant: %s", harness_logged (), want);

  /* Wrong ones: -EKEYREJECTED, each reason given. */
  CHECK (unlock (h, k2, wrongpass, dek, &id) == -EKEYREJECTED,
         "wrong key file and passphrase");
  snprintf (want, sizeof want,
            "wrap 0 (file %s): wrong key file; wrap 1 (passphrase): wrong "
            "passphrase",
            k1);
  CHECK (logged (want), "log: %s", harness_logged ());
  CHECK (unlock (h, k2, NULL, dek, &id) == -EKEYREJECTED,
         "wrong key file, no passphrase");

  /* A wrap bound to this volume holding another key: it unwraps, but the key
   * check value tells it is not this volume's DEK. */
  CHECK (cv_dek_generate (&dek2) == 0, "second DEK");
  snprintf (spec, sizeof spec, "file:%s", k2);
  CHECK (cv_wrap_add (h, spec, &add, dek2, &id) == 0 && id == 2,
         "add a wrap of another key: id %lld", (long long) id);
  CHECK (unlock (h, k2, NULL, dek, &id) == -EKEYREJECTED,
         "a wrap of another DEK");
  CHECK (logged ("the key unwrapped but is not this volume's key"), "log: %s",
         harness_logged ());
  json_array_remove (h->wraps, 2);

  /* The header altered after sealing: the DEK is right, the MAC fails. */
  h->size += 4096;
  CHECK (unlock (h, k1, NULL, dek, &id) == -EBADMSG, "altered size: -EBADMSG");
  snprintf (want, sizeof want,
            "error: header of volume test-volume: its MAC does not match; it "
            "was altered (tampered); refusing");
  CHECK (logged (want), "log: %s", harness_logged ());
  CHECK (unlock (h, NULL, pass, dek, &id) == -EBADMSG,
         "altered size, passphrase: -EBADMSG");
  h->size -= 4096;
  CHECK (unlock (h, k1, NULL, dek, &id) == 0, "restored size opens again");

  /* A wrap copied from another volume does not open this one. */
  h2 = new_volume (&dek2);
  json_array_append_new (h2->wraps, json_deep_copy (w0));
  json_array_append_new (h2->wraps, json_deep_copy (w1));
  CHECK (unlock (h2, k1, NULL, dek2, &id) == -EBADMSG,
         "copied file wrap: -EBADMSG");
  CHECK (logged ("copied from another volume"), "log: %s", harness_logged ());
  CHECK (unlock (h2, NULL, pass, dek2, &id) == -EKEYREJECTED,
         "copied passphrase wrap: refused");

  /* Wraps this build cannot use, and malformed ones, are listed too. */
  json_array_clear (h2->wraps);
  json_array_append_new (h2->wraps,
                         json_pack ("{s:i, s:s, s:s}", "id", 4, "type", "tpm2",
                                    "ref", "0x81000001"));
  json_array_append_new (h2->wraps, json_pack ("{s:s}", "type", "file"));
  CHECK (unlock (h2, k1, NULL, dek2, &id) == -EINVAL, "unusable wraps");
  CHECK (logged ("wrap 4 (tpm2 0x81000001): unknown wrap type")
             && logged ("wrap ? (file): malformed wrap"),
         "log: %s", harness_logged ());
  json_array_clear (h2->wraps);
  CHECK (unlock (h2, k1, pass, dek2, &id) == -ENOKEY && logged ("no wraps"),
         "no wraps: -ENOKEY: %s", harness_logged ());

  /* A missing key file is reported, and the passphrase still opens. */
  char absent[96];
  snprintf (absent, sizeof absent, "%s/absent", dir);
  CHECK (unlock (h, absent, pass, dek, &id) == 0 && id == 1,
         "absent key file, right passphrase");
  CHECK (logged ("absent"), "log: %s", harness_logged ());
  clear ();

  cv_hdr_free (h);
  cv_hdr_free (h2);
  cv_key_free (pass);
  cv_key_free (wrongpass);
  unlink (k1);
  unlink (k2);
  rmdir (dir);
  cv_keys_cleanup ();
  return harness_done ("test-keys-unlock");
}

/* The wrap API of lib/format and lib/keys on a sealed header with file and
 * passphrase wraps: ids are never reused (add, remove, move, re-make, and
 * across a commit), the last wrap cannot be removed, a failed operation
 * leaves the header unchanged, and the rotation state reads back. */
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

static char dir[] = "/tmp/cv-test-format-wraps-XXXXXX";
static char k1[64], k2[64], k3[64], spec1[80], spec2[80], spec3[80];
static struct cv_key *dek, *pass, *wrongpass;
static const struct cv_pbkdf fast = { "argon2id", 1, 8192, 1, 0 };

static int
logged (const char *s)
{
  return strstr (harness_logged (), s) != NULL;
}

/* The canonical text of h's metadata, to tell whether h changed. */
static char *
dump (const struct cv_header *h)
{
  json_auto_t *j = cv_hdr_to_json (h);
  return j ? json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

static int
same_key (const struct cv_key *a, const struct cv_key *b)
{
  return a && b && a->len == b->len && memcmp (a->b, b->b, a->len) == 0;
}

/* Unlock h with wrap id alone, with c. */
static int
unlock_with (struct cv_header *h, int64_t id, const struct cv_creds *c,
             struct cv_key **out)
{
  struct cv_wrap_sel sel = { .n = 1, .item = { { id, NULL } }, .except = -1 };
  return cv_unlock (h, "test-volume", c, &sel, out, NULL);
}

/* A header sealed with dek, with one file wrap of k1 (id 0). */
static struct cv_header *
new_header (void)
{
  struct cv_header *h = NULL;
  struct cv_creds c = { .keyfile = k1 };
  int64_t id = -1;

  if (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, 1 << 20, &h) < 0
      || cv_hdr_seal (h, dek) < 0 || cv_wrap_add (h, spec1, &c, dek, &id) < 0
      || id != 0) {
    CHECK (0, "cannot make a header with one wrap");
    cv_hdr_free (h);
    return NULL;
  }
  return h;
}

static void
test_ids (void)
{
  struct cv_header *h = new_header ();
  struct cv_creds c = { .keyfile = k2, .passphrase = pass, .pbkdf = fast };
  struct cv_wrap_info w;
  int64_t id = -1;
  uint8_t buf[CV_HDR_COPY_SIZE];

  if (!h)
    return;
  CHECK (cv_wrap_add (h, "passphrase", &c, dek, &id) == 0 && id == 1,
         "second wrap: id %lld", (long long) id);
  CHECK (cv_hdr_wrap_count (h) == 2, "two wraps");
  CHECK (cv_hdr_wrap_at (h, 1, &w) == 0 && w.id == 1
             && strcmp (w.type, "passphrase") == 0 && !w.ref && w.created
             && !w.verified && w.kdf && strcmp (w.kdf, "argon2id") == 0,
         "wrap 1 fields");
  CHECK (cv_hdr_wrap_at (h, 2, &w) == -ENOENT, "no third wrap");
  CHECK (cv_hdr_wrap_find (h, 7, NULL) == -ENOENT, "no wrap 7");

  /* Removing the newest wrap does not give its id back. */
  harness_log_clear ();
  CHECK (cv_hdr_wrap_remove (h, "vol", 1) == 0, "remove wrap 1");
  CHECK (cv_wrap_add (h, "passphrase", &c, dek, &id) == 0 && id == 2,
         "after removing wrap 1 the next is 2, not %lld", (long long) id);

  /* Nor does a commit: the counter is in the header. */
  CHECK (cv_hdr_wrap_remove (h, "vol", 2) == 0, "remove wrap 2");
  struct cv_header *d = NULL;
  CHECK (cv_hdr_encode (h, 0, buf) == 0
             && cv_hdr_decode (buf, 0, "test", &d) == 0,
         "round trip");
  if (d) {
    CHECK (cv_wrap_add (d, spec2, &c, dek, &id) == 0 && id == 3,
           "after a round trip the next id is 3, not %lld", (long long) id);
    cv_hdr_free (d);
  }

  /* A failed add takes no id and adds nothing. */
  CLEANUP_FREE char *before = dump (h);
  harness_log_clear ();
  CHECK (cv_wrap_add (h, "passphrase", &(struct cv_creds){ 0 }, dek, &id)
             == -ENOKEY,
         "add without a passphrase: -ENOKEY");
  CHECK (logged ("cannot add a passphrase wrap: no passphrase given"),
         "log: %s", harness_logged ());
  CLEANUP_FREE char *after = dump (h);
  CHECK (before && after && strcmp (before, after) == 0,
         "a failed add changes nothing");

  /* Ids are checked on append; the counter has a limit. */
  json_t *dup = NULL;
  CHECK (cv_hdr_wrap_new (h, 0, "file", k3, &dup) == 0, "wrap with id 0");
  harness_log_clear ();
  CHECK (cv_hdr_wrap_append (h, dup) == -EEXIST, "duplicate id refused");
  CHECK (logged ("a wrap with id 0 exists already"), "log: %s",
         harness_logged ());
  h->next_wrap_id = INT64_MAX;
  json_t *none = NULL;
  CHECK (cv_hdr_wrap_new (h, CV_WRAP_ID_NEW, "file", k3, &none) == -EOVERFLOW
             && !none,
         "no id left: -EOVERFLOW");
  CHECK (logged ("no wrap id left"), "log: %s", harness_logged ());
  cv_hdr_free (h);
}

static void
test_remove_verify (void)
{
  struct cv_header *h = new_header ();
  struct cv_creds c = { .keyfile = k2 };
  struct cv_wrap_info w;
  int64_t id;

  if (!h)
    return;
  harness_log_clear ();
  CHECK (cv_hdr_wrap_remove (h, "vol", 0) == -EPERM, "last wrap: -EPERM");
  CHECK (logged ("wrap 0 is the only wrap of vol"), "log: %s",
         harness_logged ());
  CHECK (cv_hdr_wrap_count (h) == 1, "the last wrap stays");
  CHECK (cv_hdr_wrap_remove (h, "vol", 5) == -ENOENT, "no wrap 5: -ENOENT");
  CHECK (logged ("vol has no wrap 5"), "log: %s", harness_logged ());

  CHECK (cv_hdr_wrap_mark_verified (h, 5) == -ENOENT, "mark a missing wrap");
  CHECK (cv_hdr_wrap_mark_verified (h, 0) == 0
             && cv_hdr_wrap_find (h, 0, &w) == 0 && w.verified,
         "wrap 0 verified");

  CHECK (cv_wrap_add (h, spec2, &c, dek, &id) == 0 && id == 1, "wrap 1");
  CHECK (cv_wrap_same_key (h, spec2, -1) == 1, "same key as wrap 1");
  CHECK (cv_wrap_same_key (h, spec2, 1) == -1, "except wrap 1");
  CHECK (cv_wrap_same_key (h, "passphrase", -1) == -1, "passphrase: never");
  CHECK (cv_wrap_verify (h, "vol", 1, &c, false, NULL) == 0
             && cv_hdr_wrap_find (h, 1, &w) == 0 && w.verified,
         "verify wrap 1");
  harness_log_clear ();
  CHECK (cv_wrap_verify (h, "vol", 1, &(struct cv_creds){ .keyfile = k1 },
                         false, NULL)
             == -EKEYREJECTED,
         "verify with the wrong key");
  CHECK (cv_wrap_verify (h, "vol", 9, &c, false, NULL) == -ENOENT,
         "verify a missing wrap");

  char *state = (char *) "unset";
  CHECK (cv_wrap_describe (h, 0, &c, &state) == 0 && !state,
         "a file key has no state to describe");
  CHECK (cv_wrap_describe (h, 9, &c, &state) == -ENOENT, "describe wrap 9");
  cv_hdr_free (h);
}

static void
test_move (void)
{
  struct cv_header *h = new_header ();
  struct cv_creds oc = { .keyfile = k1 }, nc = { .keyfile = k2 };
  struct cv_wrap_moved mv;
  CLEANUP_KEY struct cv_key *got = NULL;

  if (!h)
    return;
  harness_log_clear ();
  CHECK (cv_wrap_move (h, "vol", 4, spec2, &oc, &nc, &mv) == -ENOENT,
         "move a missing wrap");
  CHECK (logged ("vol has no wrap 4"), "log: %s", harness_logged ());
  CHECK (cv_wrap_move (h, "vol", 0, spec1, &oc, &nc, &mv) == -EINVAL,
         "move to the same key");
  CHECK (logged ("a rewrap to the same key changes nothing"), "log: %s",
         harness_logged ());
  CLEANUP_FREE char *before = dump (h);
  CHECK (cv_wrap_move (h, "vol", 0, spec2, &nc, &nc, &mv) == -EKEYREJECTED,
         "move without the old key");
  CLEANUP_FREE char *after = dump (h);
  CHECK (before && after && strcmp (before, after) == 0,
         "a failed move changes nothing");

  CHECK (cv_wrap_move (h, "vol", 0, spec2, &oc, &nc, &mv) == 0 && mv.id == 1
             && !mv.in_service && !mv.resumed,
         "move wrap 0 to k2: wrap %lld", (long long) mv.id);
  CHECK (unlock_with (h, 1, &nc, &got) == 0 && same_key (got, dek),
         "the new wrap holds the DEK");
  /* Interrupted before the old wrap was removed: taken up again. */
  CHECK (cv_wrap_move (h, "vol", 0, spec2, &oc, &nc, &mv) == 0 && mv.id == 1
             && mv.resumed && cv_hdr_wrap_count (h) == 2,
         "resumed move adds nothing");
  CHECK (cv_hdr_wrap_remove (h, "vol", 0) == 0, "remove the old wrap");
  int64_t id;
  CHECK (cv_wrap_add (h, spec3, &(struct cv_creds){ .keyfile = k3 }, dek, &id)
                 == 0
             && id == 2,
         "after the move the next id is 2, not %lld", (long long) id);
  cv_hdr_free (h);
}

static void
test_remake (void)
{
  struct cv_header *h = new_header ();
  struct cv_creds add = { .passphrase = pass, .pbkdf = fast };
  CLEANUP_KEY struct cv_key *dek1 = NULL, *got = NULL;
  struct cv_wrap_info w;
  int64_t id;

  if (!h)
    return;
  CHECK (cv_dek_generate (&dek1) == 0, "new DEK");
  CHECK (cv_wrap_add (h, "passphrase", &add, dek, &id) == 0 && id == 1,
         "passphrase wrap");
  CHECK (cv_hdr_wrap_remove (h, "vol", 0) == 0
             && cv_wrap_add (h, spec1, &(struct cv_creds){ .keyfile = k1 }, dek,
                             &id)
                    == 0
             && id == 2,
         "wraps 1 and 2");

  /* One wrap's key missing or wrong: refused, named, nothing changed. */
  CLEANUP_FREE char *before = dump (h);
  struct cv_creds nopass = { .keyfile = k1 };
  harness_log_clear ();
  CHECK (cv_wrap_remake_all (h, "vol", &nopass, dek, dek1) == -ENOKEY,
         "no passphrase: -ENOKEY");
  CHECK (logged ("error: vol: cannot re-make wrap 1 (passphrase) for the new "
                 "DEK: no passphrase given")
             && logged ("give its passphrase (--passphrase-file FILE, or at "
                        "the prompt on a terminal)")
             && logged ("--drop-wrap 1, or remove-wrap --id 1"),
         "log: %s", harness_logged ());
  struct cv_creds wrong = { .keyfile = k1, .passphrase = wrongpass };
  harness_log_clear ();
  CHECK (cv_wrap_remake_all (h, "vol", &wrong, dek, dek1) == -EKEYREJECTED,
         "wrong passphrase: -EKEYREJECTED");
  CHECK (logged ("error: vol: cannot re-make wrap 1 (passphrase) for the new "
                 "DEK: wrong passphrase")
             && logged ("give its passphrase"),
         "log: %s", harness_logged ());
  struct cv_creds all = { .keyfile = k1, .passphrase = pass };
  harness_log_clear ();
  CHECK (cv_wrap_remake_all (h, "vol", &all, dek1, dek1) == -EKEYREJECTED,
         "wraps that do not hold the DEK given");
  CHECK (logged ("does not hold the volume's key"), "log: %s",
         harness_logged ());
  CLEANUP_FREE char *after = dump (h);
  CHECK (before && after && strcmp (before, after) == 0,
         "a failed re-make changes nothing");

  /* A wrap of a type this build does not have cannot be re-made. */
  struct cv_header *h2 = new_header ();
  json_t *other = NULL;
  if (h2 && cv_hdr_wrap_new (h2, CV_WRAP_ID_NEW, "tpm2", NULL, &other) == 0
      && cv_hdr_wrap_append (h2, other) == 0) {
    harness_log_clear ();
    CHECK (cv_wrap_remake_all (h2, "vol", &all, dek, dek1) == -EPROTONOSUPPORT,
           "unknown type: -EPROTONOSUPPORT");
    CHECK (logged ("cannot re-make wrap 1 (tpm2) for the new DEK: its type is "
                   "not available"),
           "log: %s", harness_logged ());
  } else
    CHECK (0, "a header with a tpm2 wrap");
  cv_hdr_free (h2);

  /* Every wrap re-made: same ids and keys, the new DEK, the KDF kept. */
  CHECK (cv_wrap_remake_all (h, "vol", &all, dek, dek1) == 0, "re-make");
  CHECK (cv_hdr_wrap_count (h) == 2 && cv_hdr_wrap_at (h, 0, &w) == 0
             && w.id == 1 && w.verified && strcmp (w.kdf, "argon2id") == 0
             && cv_hdr_wrap_at (h, 1, &w) == 0 && w.id == 2
             && strcmp (w.ref, k1) == 0,
         "ids, keys and KDF kept");
  CHECK (unlock_with (h, 2, &all, &got) == -EKEYREJECTED,
         "the header is still sealed with the old DEK");
  CHECK (cv_hdr_seal (h, dek1) == 0 && unlock_with (h, 1, &all, &got) == 0
             && same_key (got, dek1),
         "the passphrase wrap holds the new DEK");
  CHECK (cv_wrap_add (h, spec3, &(struct cv_creds){ .keyfile = k3 }, dek1, &id)
                 == 0
             && id == 3,
         "after a re-make the next id is 3, not %lld", (long long) id);

  json_t *short_list = json_array ();
  harness_log_clear ();
  CHECK (cv_hdr_wraps_replace (h, short_list) == -EINVAL,
         "replace with fewer wraps");
  json_t *stray = NULL, *list = json_array ();
  CHECK (cv_hdr_wrap_new (h, 9, "file", k1, &stray) == 0, "wrap 9");
  json_array_append_new (list, stray);
  for (int i = 0; i < 2; i++)
    json_array_append_new (
        list, json_pack ("{s:i, s:s}", "id", i + 1, "type", "file"));
  CHECK (cv_hdr_wraps_replace (h, list) == -EINVAL,
         "replace with a wrap of another id");
  CHECK (logged ("replaces no wrap"), "log: %s", harness_logged ());
  cv_hdr_free (h);
}

static void
test_generate (void)
{
  struct cv_header *h = NULL;
  CLEANUP_KEY struct cv_key *k = NULL;
  int64_t id = 5;

  CHECK (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, 1 << 20, &h) == 0, "new");
  CHECK (cv_wrap_generate (h, spec1, &(struct cv_creds){ 0 }, &k, &id) == 0 && k
             && k->len == CV_DEK_LEN && id == -1 && cv_hdr_wrap_count (h) == 0,
         "file: a local DEK, no wrap made");
  CHECK (cv_wrap_generate (h, "tpm:1", &(struct cv_creds){ 0 }, &k, &id)
             == -EINVAL,
         "bad spec");
  cv_hdr_free (h);
}

static void
test_rotation_state (void)
{
  struct cv_header *h = new_header ();
  struct cv_hdr_rotation r = { .id = "0123456789abcdef",
                               .boundary = 8192,
                               .step = 4096,
                               .started = "2026-01-01T00:00:00Z" };
  struct cv_hdr_rotation got;

  if (!h)
    return;
  memset (r.ct, 0x5a, sizeof r.ct);
  CHECK (!cv_hdr_rotating (h), "no rotation");
  CHECK (cv_hdr_rotation_get (h, "vol", &got) == -ENOENT, "get: -ENOENT");
  CHECK (cv_hdr_rotation_set (h, &r) == 0 && cv_hdr_rotating (h), "set");
  CHECK (cv_hdr_rotation_get (h, "vol", &got) == 0
             && memcmp (&got, &r, sizeof r) == 0,
         "reads back");
  r.boundary = 4095;
  CHECK (cv_hdr_rotation_set (h, &r) == 0, "set an unaligned boundary");
  harness_log_clear ();
  CHECK (cv_hdr_rotation_get (h, "vol", &got) == -EBADMSG,
         "unaligned boundary: -EBADMSG");
  CHECK (logged ("vol: the DEK rotation state in the header is malformed"),
         "log: %s", harness_logged ());
  json_object_set_new (
      json_object_get (json_object_get (h->extra, "rotation"), "old_dek"), "iv",
      json_string ("AAAA"));
  r.boundary = 0;
  json_object_set_new (json_object_get (h->extra, "rotation"), "boundary",
                       json_integer (0));
  CHECK (cv_hdr_rotation_get (h, "vol", &got) == -EBADMSG,
         "short iv: -EBADMSG");
  cv_hdr_rotation_clear (h);
  CHECK (!cv_hdr_rotating (h), "cleared");

  struct cv_header *cur = new_header ();
  if (cur) {
    cur->seqid = 9;
    cv_hdr_supersede (h, cur);
    CHECK (cv_hdr_seqid (h) == 9, "supersede raises the seqid");
    cur->seqid = 3;
    cv_hdr_supersede (h, cur);
    CHECK (cv_hdr_seqid (h) == 9, "never lowers it");
    cv_hdr_free (cur);
  }
  cv_hdr_free (h);
}

int
main (void)
{
  harness_init ();
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (k1, sizeof k1, "%s/k1", dir);
  snprintf (k2, sizeof k2, "%s/k2", dir);
  snprintf (k3, sizeof k3, "%s/k3", dir);
  snprintf (spec1, sizeof spec1, "file:%s", k1);
  snprintf (spec2, sizeof spec2, "file:%s", k2);
  snprintf (spec3, sizeof spec3, "file:%s", k3);
  CHECK (cv_keyfile_create (k1) == 0 && cv_keyfile_create (k2) == 0
             && cv_keyfile_create (k3) == 0,
         "key files");
  CHECK (cv_dek_generate (&dek) == 0
             && cv_key_from (PASS, strlen (PASS), &pass) == 0
             && cv_key_from (WRONG_PASS, strlen (WRONG_PASS), &wrongpass) == 0,
         "keys");

  if (dek && pass && wrongpass) {
    test_ids ();
    test_remove_verify ();
    test_move ();
    test_remake ();
    test_generate ();
    test_rotation_state ();
  }

  cv_key_free (dek);
  cv_key_free (pass);
  cv_key_free (wrongpass);
  unlink (k1);
  unlink (k2);
  unlink (k3);
  rmdir (dir);
  cv_keys_cleanup ();
  return harness_done ("test-format-wraps");
}

/* The header round trip: encode/decode, commit then read, a torn copy, a crash
 * between the two copies, the DEK-derived key check value and MAC (checked
 * against OpenSSL directly), and the OFD header locks. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/cleanup.h"
#include "common/fdio.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "format/header-internal.h"
#include "harness.h"

#define NAME "vol.img"
#define GiB (1024ULL * 1024 * 1024)

static char path[] = "/tmp/cv-format-rt-XXXXXX";

/* The seqid stored in copy `copy` of the file (offset 24, big-endian). */
static uint64_t
disk_seqid (int fd, int copy)
{
  uint8_t b[8];
  if (cv_pread_all (fd, b, 8, (uint64_t) copy * CV_HDR_COPY_SIZE + 24, NULL)
      < 0)
    return UINT64_MAX;
  return cv_get_be64 (b);
}

/* HKDF-SHA256 straight from OpenSSL: the oracle for our KCV and MAC key. */
static void
oracle_hkdf (const struct cv_key *dek, const char *salt, const char *info,
             uint8_t *out, size_t len)
{
  EVP_KDF *kdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
  EVP_KDF_CTX *ctx = EVP_KDF_CTX_new (kdf);
  OSSL_PARAM p[] = {
    OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
    OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) dek->b,
                                       dek->len),
    OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT, (void *) salt,
                                       strlen (salt)),
    OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) info,
                                       strlen (info)),
    OSSL_PARAM_construct_end (),
  };
  if (EVP_KDF_derive (ctx, out, len, p) != 1)
    memset (out, 0, len);
  EVP_KDF_CTX_free (ctx);
  EVP_KDF_free (kdf);
}

static struct cv_key *
random_dek (void)
{
  struct cv_key *k = NULL;
  if (cv_key_new (64, &k) < 0 || cv_random (k->b, k->len) < 0)
    abort ();
  return k;
}

static struct cv_header *
read_ok (int fd, unsigned want_valid)
{
  struct cv_header *h = NULL;
  unsigned valid = 0;
  int r = cv_hdr_read (FDEV (fd, NAME), &h, &valid);
  CHECK (r == 0, "cv_hdr_read: %d", r);
  CHECK (valid == want_valid, "valid %u, want %u", valid, want_valid);
  return h;
}

static void
test_new (void)
{
  struct cv_header *h = NULL;
  int r;

  harness_log_clear ();
  r = cv_hdr_new (1000, 1 << 20, GiB, &h);
  CHECK (r == -EINVAL && strstr (harness_logged (), "sector size 1000"),
         "%d %s", r, harness_logged ());
  r = cv_hdr_new (512, 1 << 20, 1000, &h);
  CHECK (r == -EINVAL && strstr (harness_logged (), "size 1000 is not"), "%d",
         r);
  r = cv_hdr_new (4096, INT64_MAX - 4095, 8192, &h);
  CHECK (r == -EINVAL && strstr (harness_logged (), "exceeds 2^63"), "%d", r);

  r = cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, GiB, &h);
  CHECK (r == 0, "cv_hdr_new: %d", r);
  if (r < 0)
    return;
  CHECK (strlen (h->uuid) == 36 && h->uuid[14] == '4'
             && strchr ("89ab", h->uuid[19]),
         "uuid %s is not a v4 uuid", h->uuid);
  CHECK (strcmp (h->cipher, "aes-xts-plain64") == 0, "cipher %s", h->cipher);
  CHECK (strlen (h->created) == 20 && h->created[10] == 'T'
             && h->created[19] == 'Z',
         "created %s", h->created);
  CHECK (json_is_array (h->wraps) && json_array_size (h->wraps) == 0, "wraps");
  char want[80];
  snprintf (want, sizeof want, "cryptvol:v1:volume:%s", h->uuid);
  CHECK (strcmp (cv_hdr_binding (h), want) == 0, "binding %s",
         cv_hdr_binding (h));
  struct cv_header *h2 = NULL;
  CHECK (cv_hdr_new (512, 0, 512, &h2) == 0 && strcmp (h->uuid, h2->uuid),
         "two new headers share a uuid");
  cv_hdr_free (h2);
  cv_hdr_free (h);
}

/* Encode and decode both copies: every field survives and encoding is
 * deterministic (byte-identical). */
static void
test_encode_decode (void)
{
  struct cv_header *h = NULL, *d = NULL;
  CLEANUP_FREE uint8_t *a = malloc (CV_HDR_COPY_SIZE);
  CLEANUP_FREE uint8_t *b = malloc (CV_HDR_COPY_SIZE);

  if (cv_hdr_new (512, 2048, 10 * 512, &h) < 0)
    abort ();
  h->seqid = 42;
  h->extra = json_pack ("{s:{s:i}}", "rotation", "done", 7);
  json_array_append_new (h->wraps, json_pack ("{s:i,s:s,s:s}", "id", 3, "type",
                                              "file", "ref", "/k/é"));
  memset (h->kcv, 0xab, sizeof h->kcv);
  memset (h->mac, 0xcd, sizeof h->mac);
  for (int copy = 0; copy < 2; copy++) {
    int r = cv_hdr_encode (h, copy, a);
    CHECK (r == 0, "encode copy %d: %d", copy, r);
    r = cv_hdr_decode (a, copy, NAME, &d);
    CHECK (r == 0, "decode copy %d: %d", copy, r);
    if (r < 0)
      continue;
    CHECK (d->seqid == 42 && strcmp (d->uuid, h->uuid) == 0
               && strcmp (d->binding, h->binding) == 0
               && strcmp (d->cipher, h->cipher) == 0 && d->sector_size == 512
               && d->data_offset == 2048 && d->size == 5120
               && strcmp (d->created, h->created) == 0
               && memcmp (d->kcv, h->kcv, 16) == 0
               && memcmp (d->mac, h->mac, 32) == 0,
           "copy %d: decoded fields differ", copy);
    CHECK (json_equal (d->wraps, h->wraps), "wraps differ");
    CHECK (json_equal (d->extra, h->extra), "extra differs");
    CHECK (cv_hdr_encode (d, copy, b) == 0
               && memcmp (a, b, CV_HDR_COPY_SIZE) == 0,
           "re-encoding copy %d is not byte-identical", copy);
    cv_hdr_free (d);
    d = NULL;
  }
  /* The JSON is the canonical form: compact, keys sorted. */
  CHECK (cv_hdr_encode (h, 0, a) == 0
             && memcmp (a + CV_HDR_BIN_SIZE, "{\"mac\":\"cdcd", 12) == 0,
         "JSON does not start with the sorted, compact mac: %.20s",
         a + CV_HDR_BIN_SIZE);
  /* A copy decoded at the other copy's position is refused. */
  harness_log_clear ();
  CHECK (cv_hdr_decode (a, 1, NAME, &d) == -EBADMSG
             && strstr (harness_logged (), "magic of the primary copy"),
         "%s", harness_logged ());

  /* Never write what cannot be read back. */
  harness_log_clear ();
  h->sector_size = 1000;
  CHECK (cv_hdr_encode (h, 0, a) == -EINVAL
             && strstr (harness_logged (), "would not read back: sector size "
                                           "1000"),
         "%s", harness_logged ());
  h->sector_size = 512;
  json_array_append_new (h->wraps, json_pack ("{s:i}", "id", 4));
  harness_log_clear ();
  CHECK (cv_hdr_encode (h, 0, a) == -EINVAL
             && strstr (harness_logged (), "wraps[1].type is missing"),
         "%s", harness_logged ());
  json_array_remove (h->wraps, 1);
  char uuid[CV_UUID_LEN + 1];
  strcpy (uuid, h->uuid);
  strcpy (h->uuid, "not-a-uuid");
  harness_log_clear ();
  CHECK (cv_hdr_encode (h, 0, a) == -EINVAL
             && strstr (harness_logged (), "malformed uuid"),
         "%s", harness_logged ());
  strcpy (h->uuid, uuid);

  /* Metadata that does not fit in a copy. */
  char big[1000];
  memset (big, 'A', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  for (int i = 0; i < 70; i++)
    json_array_append_new (h->wraps, json_pack ("{s:i,s:s,s:s}", "id", 100 + i,
                                                "type", "file", "blob", big));
  harness_log_clear ();
  CHECK (cv_hdr_encode (h, 0, a) == -E2BIG
             && strstr (harness_logged (), "remove some wraps"),
         "%s", harness_logged ());
  cv_hdr_free (h);
}

/* Commit, read, tear a copy, crash between copies. */
static void
test_commit_read (int fd)
{
  struct cv_header *h = NULL, *r1 = NULL;
  int r;

  if (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, GiB, &h) < 0)
    abort ();
  harness_log_clear ();
  r = cv_hdr_commit (FDEV (fd, NAME), h);
  CHECK (r == 0 && h->seqid == 1, "commit: %d seqid %llu", r,
         (unsigned long long) h->seqid);
  CHECK (cv_hdr_commit (FDEV (fd, NAME), h) == 0 && h->seqid == 2,
         "second commit");
  CHECK (disk_seqid (fd, 0) == 2 && disk_seqid (fd, 1) == 2,
         "seqids on disk %llu %llu", (unsigned long long) disk_seqid (fd, 0),
         (unsigned long long) disk_seqid (fd, 1));
  r1 = read_ok (fd, CV_HDR_COPY0 | CV_HDR_COPY1);
  CHECK (r1 && r1->seqid == 2 && strcmp (r1->uuid, h->uuid) == 0
             && r1->size == GiB,
         "read back");
  CHECK (harness_logged ()[0] == '\0', "clean read logged: %s",
         harness_logged ());
  cv_hdr_free (r1);

  /* A torn write of copy 0: part of it overwritten. */
  char junk[300];
  memset (junk, 'x', sizeof junk);
  CHECK (cv_pwrite_all (fd, junk, sizeof junk, CV_HDR_BIN_SIZE + 10, 0) == 0,
         "pwrite");
  harness_log_clear ();
  r1 = read_ok (fd, CV_HDR_COPY1);
  CHECK (r1 && r1->seqid == 2, "torn: read");
  CHECK (strstr (harness_logged (),
                 "warning: primary header copy of " NAME
                 " is corrupt (checksum mismatch); opened from the secondary "
                 "copy; the next header update rewrites it"),
         "torn: %s", harness_logged ());
  /* The next commit repairs it. */
  CHECK (cv_hdr_commit (FDEV (fd, NAME), r1) == 0, "repair commit");
  cv_hdr_free (r1);
  harness_log_clear ();
  r1 = read_ok (fd, CV_HDR_COPY0 | CV_HDR_COPY1);
  CHECK (r1 && r1->seqid == 3 && harness_logged ()[0] == '\0',
         "after repair: %s", harness_logged ());
  cv_hdr_free (r1);

  /* A crash after copy 0 (the fault knob): the newer copy 0 wins. */
  fflush (NULL);
  pid_t pid = fork ();
  if (pid == 0) {
    setenv ("CV_FAULT_KILL_AT", "1", 1);
    h->seqid = 3;
    h->size = 2 * GiB;
    cv_hdr_commit (FDEV (fd, NAME), h);
    _exit (1);
  }
  int status = 0;
  waitpid (pid, &status, 0);
  CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL,
         "fault point: status %d", status);
  CHECK (disk_seqid (fd, 0) == 4 && disk_seqid (fd, 1) == 3,
         "after crash: seqids %llu %llu",
         (unsigned long long) disk_seqid (fd, 0),
         (unsigned long long) disk_seqid (fd, 1));
  harness_log_clear ();
  r1 = read_ok (fd, CV_HDR_COPY0 | CV_HDR_COPY1);
  CHECK (r1 && r1->seqid == 4 && r1->size == 2 * GiB, "after crash: read");
  CHECK (strstr (harness_logged (), "a header update was interrupted; opened "
                                    "from the newer primary copy"),
         "after crash: %s", harness_logged ());
  cv_hdr_free (r1);

  /* seqid at its maximum. */
  h->seqid = INT64_MAX;
  harness_log_clear ();
  CHECK (cv_hdr_commit (FDEV (fd, NAME), h) == -EOVERFLOW
             && strstr (harness_logged (), "at the maximum"),
         "%s", harness_logged ());

  /* I/O errors. */
  CLEANUP_CLOSE int rofd = open (path, O_RDONLY);
  CLEANUP_CLOSE int wofd = open (path, O_WRONLY);
  h->seqid = 4;
  harness_log_clear ();
  r = cv_hdr_commit (FDEV (rofd, NAME), h);
  CHECK (r == -EBADF && strstr (harness_logged (), "cannot write the primary"),
         "commit read-only: %d %s", r, harness_logged ());
  harness_log_clear ();
  r = cv_hdr_read (FDEV (wofd, NAME), &r1, NULL);
  CHECK (r == -EIO
             && strstr (harness_logged (), "cannot read the header of " NAME),
         "read write-only: %d %s", r, harness_logged ());

  /* info --json */
  json_auto_t *j = cv_hdr_to_json (h);
  CHECK (j && json_integer_value (json_object_get (j, "seqid")) == 4
             && strcmp (json_string_value (json_object_get (
                            json_object_get (j, "volume"), "uuid")),
                        h->uuid)
                    == 0
             && json_equal (json_object_get (j, "wraps"), h->wraps),
         "cv_hdr_to_json");
  cv_hdr_free (h);
}

static void
test_seal (int fd)
{
  struct cv_header *h = NULL, *d = NULL;
  CLEANUP_KEY struct cv_key *dek = random_dek ();
  CLEANUP_KEY struct cv_key *other = random_dek ();
  CLEANUP_KEY struct cv_key *shortk = NULL;
  uint8_t kcv[16], mk[32], mac[32];
  unsigned maclen = 0;

  if (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, GiB, &h) < 0)
    abort ();
  h->extra = json_pack ("{s:s}", "note", "kept and covered");
  CHECK (cv_hdr_seal (h, dek) == 0, "seal");
  CHECK (cv_hdr_authenticate (h, dek) == 0, "right DEK");
  CHECK (cv_hdr_authenticate (h, other) == -EKEYREJECTED, "wrong DEK");
  cv_key_from (dek->b, 32, &shortk);
  CHECK (cv_hdr_authenticate (h, shortk) == -EKEYREJECTED, "short DEK");
  harness_log_clear ();
  CHECK (cv_hdr_seal (h, shortk) == -EINVAL
             && strstr (harness_logged (), "must be 64 bytes"),
         "seal short DEK: %s", harness_logged ());

  /* The oracle: KCV and MAC recomputed with OpenSSL over the JSON on disk. */
  oracle_hkdf (dek, h->uuid, "cryptvol v1 key check value", kcv, 16);
  CHECK (memcmp (kcv, h->kcv, 16) == 0, "kcv differs from the oracle");
  CHECK (cv_hdr_commit (FDEV (fd, NAME), h) == 0, "commit");
  CLEANUP_FREE char *area = malloc (CV_HDR_COPY_SIZE);
  CHECK (cv_pread_all (fd, area, CV_HDR_COPY_SIZE, 0, NULL) == 0, "pread");
  json_auto_t *root = json_loads (area + CV_HDR_BIN_SIZE, 0, NULL);
  CLEANUP_FREE char *vol = json_dumps (json_object_get (root, "volume"),
                                       JSON_COMPACT | JSON_SORT_KEYS);
  oracle_hkdf (dek, h->uuid, "cryptvol v1 metadata mac", mk, 32);
  HMAC (EVP_sha256 (), mk, 32, (uint8_t *) vol, strlen (vol), mac, &maclen);
  CHECK (maclen == 32 && memcmp (mac, h->mac, 32) == 0,
         "mac differs from the oracle");
  CHECK (strstr (vol, "\"note\":\"kept and covered\""), "extra not stored: %s",
         vol);

  /* Through the disk and back. */
  d = read_ok (fd, CV_HDR_COPY0 | CV_HDR_COPY1);
  CHECK (d && cv_hdr_authenticate (d, dek) == 0, "authenticate after read");
  /* Wraps are not MAC-covered: adding one needs no DEK. */
  if (d) {
    json_array_append_new (d->wraps,
                           json_pack ("{s:i,s:s}", "id", 1, "type", "file"));
    CHECK (cv_hdr_authenticate (d, dek) == 0, "wraps changed");
    /* Altering a volume field keeps the kcv but breaks the MAC. */
    d->size += 4096;
    CHECK (cv_hdr_authenticate (d, dek) == -EBADMSG, "altered size");
    d->size -= 4096;
    json_object_set_new (d->extra, "note", json_string ("changed"));
    CHECK (cv_hdr_authenticate (d, dek) == -EBADMSG, "altered extra member");
  }
  cv_hdr_free (d);
  cv_hdr_free (h);
}

/* Known answer, computed with the openssl command line (doc/format.md,
 * "Example"): DEK 00 01 .. 3f, uuid 00000000-0000-4000-8000-000000000000. */
static void
test_kat (void)
{
  static const char uuid[] = "00000000-0000-4000-8000-000000000000";
  static const char kcv[] = "c1ffa0d4620971848500fd01c284074a";
  static const char mac[]
      = "15c96316f60e0edaab6f57bce8d50dad69e98d5647389b5e07224f619089280f";
  struct cv_header *h = NULL;
  CLEANUP_KEY struct cv_key *dek = NULL;
  char hex[65];

  if (cv_hdr_new (4096, 16777216, 1073741824, &h) < 0 || cv_key_new (64, &dek))
    abort ();
  for (int i = 0; i < 64; i++)
    dek->b[i] = (uint8_t) i;
  strcpy (h->uuid, uuid);
  snprintf (h->binding, sizeof h->binding, "%s%s", CV_BINDING_PREFIX, uuid);
  strcpy (h->created, "2024-01-01T00:00:00Z");
  CHECK (cv_hdr_seal (h, dek) == 0, "seal");
  for (int i = 0; i < 16; i++)
    sprintf (hex + 2 * i, "%02x", h->kcv[i]);
  CHECK (strcmp (hex, kcv) == 0, "kcv %s", hex);
  for (int i = 0; i < 32; i++)
    sprintf (hex + 2 * i, "%02x", h->mac[i]);
  CHECK (strcmp (hex, mac) == 0, "mac %s", hex);
  cv_hdr_free (h);
}

static void
test_locks (void)
{
  CLEANUP_CLOSE int fd1 = open (path, O_RDWR);
  CLEANUP_CLOSE int fd2 = open (path, O_RDWR);
  CLEANUP_CLOSE int fd3 = open (path, O_RDWR);
  CLEANUP_CLOSE int rofd = open (path, O_RDONLY);

  harness_log_clear ();
  CHECK (cv_lock_header (FDEV (fd1, "volume"), false) == 0, "lock fd1");
  CHECK (cv_lock_header (FDEV (fd2, "volume"), false) == -EBUSY,
         "second lock not busy");
  CHECK (cv_lock_header (FDEV (fd1, "volume"), false) == 0,
         "relock on the same fd");
  CHECK (harness_logged ()[0] == '\0', "-EBUSY logged: %s", harness_logged ());
  /* The in-use lock is a different byte. */
  CHECK (cv_lock_in_use (FDEV (fd2, "volume"), false, false) == 0,
         "in-use shared fd2");
  CHECK (cv_lock_in_use (FDEV (fd3, "volume"), false, false) == 0,
         "in-use shared fd3");
  CHECK (cv_lock_in_use (FDEV (fd1, "volume"), true, false) == -EBUSY,
         "in-use exclusive");
  /* A timed wait gives up after its time, quietly. */
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  CHECK (cv_lock_header_for (FDEV (fd2, "volume"), 60) == -EBUSY,
         "timed header lock busy");
  CHECK (cv_lock_in_use_for (FDEV (fd1, "volume"), true, 60) == -EBUSY,
         "timed in-use busy");
  clock_gettime (CLOCK_MONOTONIC, &t1);
  long ms
      = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  /* Each deadline is counted in whole milliseconds: up to 1 ms short. */
  CHECK (ms >= 115 && ms < 2000, "two 60 ms waits took %ld ms", ms);
  CHECK (cv_lock_header_for (FDEV (fd2, "volume"), 0) == -EBUSY,
         "wait 0: one try");
  CHECK (harness_logged ()[0] == '\0', "-EBUSY logged: %s", harness_logged ());
  CHECK (cv_lock_in_use_for (FDEV (fd3, "volume"), false, 0) == 0,
         "timed shared, free");
  CHECK (cv_unlock_header (FDEV (fd1, "volume")) == 0, "unlock");
  CHECK (cv_lock_header_for (FDEV (fd3, "volume"), 60) == 0,
         "timed lock, free");
  CHECK (cv_unlock_header (FDEV (fd3, "volume")) == 0, "unlock fd3");
  CHECK (cv_lock_header (FDEV (fd2, "volume"), true) == 0,
         "lock fd2 after unlock");
  close (fd2);
  fd2 = -1; /* closing releases both of fd2's locks */
  CHECK (cv_lock_header (FDEV (fd3, "volume"), false) == 0, "lock after close");
  close (fd3);
  fd3 = -1;
  CHECK (cv_lock_in_use (FDEV (fd1, "volume"), true, false) == 0,
         "in-use exclusive, alone");
  harness_log_clear ();
  CHECK (cv_lock_header (FDEV (rofd, "volume"), false) == -EBADF
             && strstr (harness_logged (), "must be open for writing"),
         "read-only fd: %s", harness_logged ());
}

int
main (void)
{
  harness_init ();
  CLEANUP_CLOSE int fd = mkstemp (path);
  if (fd < 0) {
    perror ("mkstemp");
    return 1;
  }
  test_new ();
  test_encode_decode ();
  test_commit_read (fd);
  test_seal (fd);
  test_kat ();
  test_locks ();
  unlink (path);
  return harness_done ("test-format-roundtrip");
}

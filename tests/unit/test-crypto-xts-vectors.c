/* The XTS engine, with each implementation (OpenSSL, libgcrypt), against
 * the 230 AES-256-XTS known-answer vectors (tests/data/vectors/README.md),
 * and the sector path (tweak numbering, in-place and out-of-place) against
 * the data-unit path. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "harness.h"

#define NVECTORS 230

static enum cv_xts_impl impl; /* the implementation under test */
#define MAXUNIT 2048

struct vec {
  char id[64];
  uint8_t key[CV_DEK_LEN];
  uint8_t tweak[16];
  uint8_t pt[MAXUNIT];
  uint8_t ct[MAXUNIT];
  size_t len;
};

/* Split a TSV line into a vector; 0, or -EINVAL if it is malformed. */
static int
parse_line (char *line, struct vec *v)
{
  char *f[5], *save = NULL;
  size_t n = 0;

  for (char *p = strtok_r (line, "\t\n", &save); p && n < 5;
       p = strtok_r (NULL, "\t\n", &save))
    f[n++] = p;
  if (n != 5 || strlen (f[0]) >= sizeof v->id || strlen (f[3]) % 2
      || strlen (f[3]) != strlen (f[4]) || strlen (f[3]) / 2 > MAXUNIT)
    return -EINVAL;
  strcpy (v->id, f[0]);
  v->len = strlen (f[3]) / 2;
  if (cv_hex_decode (f[1], v->key, sizeof v->key) < 0
      || cv_hex_decode (f[2], v->tweak, sizeof v->tweak) < 0
      || cv_hex_decode (f[3], v->pt, v->len) < 0
      || cv_hex_decode (f[4], v->ct, v->len) < 0)
    return -EINVAL;
  return 0;
}

/* The 16-byte little-endian tweak of 512-byte unit u = index * mult, computed
 * independently of the engine (bytewise, 128 bits wide). */
static void
tweak_of (uint64_t index, unsigned mult, uint8_t tweak[16])
{
  unsigned carry = 0;

  memset (tweak, 0, 16);
  for (int i = 0; i < 8; i++) {
    unsigned v = (unsigned) ((index >> (8 * i)) & 0xff) * mult + carry;
    tweak[i] = v & 0xff;
    carry = v >> 8;
  }
  tweak[8] = carry & 0xff;
}

/* IEEE 1619-2007 Annex B, XTS-AES-256 vectors 10-14: data-unit sequence
 * numbers of the 512-byte units. */
static const struct {
  const char *id;
  uint64_t seq;
} ieee[] = {
  { "IEEE1619-2007-vector-10", 0xffULL },
  { "IEEE1619-2007-vector-11", 0xffffULL },
  { "IEEE1619-2007-vector-12", 0xffffffULL },
  { "IEEE1619-2007-vector-13", 0xffffffffULL },
  { "IEEE1619-2007-vector-14", 0xffffffffffULL },
};

/* Every vector through cv_xts_unit both ways, in place and out of place; the
 * IEEE ones also through the 512-byte sector path. */
static void
test_vectors (void)
{
  const char *path = harness_srcpath ("tests/data/vectors/aes256_xts.tsv");
  CLEANUP_FCLOSE FILE *f = fopen (path, "r");
  CLEANUP_FREE char *line = NULL;
  CLEANUP_FREE struct vec *v = malloc (sizeof *v);
  size_t cap = 0;
  int count = 0, nieee = 0;
  uint8_t out[MAXUNIT];

  CHECK (f != NULL, "cannot open %s", path);
  if (!f || !v)
    return;
  while (getline (&line, &cap, f) > 0) {
    struct cv_xts *x = NULL;
    int r;

    if (line[0] == '#' || line[0] == '\n')
      continue;
    r = parse_line (line, v);
    CHECK (r == 0, "malformed line %d in %s", count + 1, path);
    if (r < 0)
      continue;
    count++;
    r = cv_xts_new (impl, v->key, 512, &x);
    CHECK (r == 0, "%s: cv_xts_new: %d", v->id, r);
    if (r < 0)
      continue;

    r = cv_xts_unit (x, v->tweak, out, v->pt, v->len, 1);
    CHECK (r == 0 && memcmp (out, v->ct, v->len) == 0, "%s: encrypt", v->id);
    r = cv_xts_unit (x, v->tweak, out, v->ct, v->len, 0);
    CHECK (r == 0 && memcmp (out, v->pt, v->len) == 0, "%s: decrypt", v->id);
    memcpy (out, v->pt, v->len);
    r = cv_xts_unit (x, v->tweak, out, out, v->len, 1);
    CHECK (r == 0 && memcmp (out, v->ct, v->len) == 0, "%s: encrypt in place",
           v->id);
    r = cv_xts_unit (x, v->tweak, out, out, v->len, 0);
    CHECK (r == 0 && memcmp (out, v->pt, v->len) == 0, "%s: decrypt in place",
           v->id);

    for (size_t i = 0; i < ARRAY_SIZE (ieee); i++) {
      uint8_t t[16];

      if (strcmp (v->id, ieee[i].id) != 0)
        continue;
      nieee++;
      tweak_of (ieee[i].seq, 1, t);
      CHECK (v->len == 512 && memcmp (t, v->tweak, 16) == 0,
             "%s: not a 512-byte unit with tweak = seq %llu", v->id,
             (unsigned long long) ieee[i].seq);
      if (v->len != 512)
        continue;
      r = cv_xts_encrypt (x, out, v->pt, ieee[i].seq, 1);
      CHECK (r == 0 && memcmp (out, v->ct, 512) == 0,
             "%s: cv_xts_encrypt at sector %llu", v->id,
             (unsigned long long) ieee[i].seq);
      r = cv_xts_decrypt (x, out, v->ct, ieee[i].seq, 1);
      CHECK (r == 0 && memcmp (out, v->pt, 512) == 0,
             "%s: cv_xts_decrypt at sector %llu", v->id,
             (unsigned long long) ieee[i].seq);
    }
    cv_xts_free (x);
  }
  CHECK (count == NVECTORS, "%d vectors in %s, expected %d", count, path,
         NVECTORS);
  CHECK (nieee == (int) ARRAY_SIZE (ieee), "%d IEEE 1619 vectors found", nieee);
}

/* cv_xts_encrypt/decrypt over nsect sectors equal cv_xts_unit per sector with
 * tweak index * (sector_size / 512), out of place and in place. */
static void
check_sectors (unsigned ss, uint64_t first, size_t nsect)
{
  uint8_t key[CV_DEK_LEN];
  size_t n = ss * nsect;
  CLEANUP_FREE uint8_t *pt = malloc (n);
  CLEANUP_FREE uint8_t *ct = malloc (n);
  CLEANUP_FREE uint8_t *ref = malloc (n);
  CLEANUP_FREE uint8_t *buf = malloc (n);
  struct cv_xts *x = NULL;
  int r;

  if (!pt || !ct || !ref || !buf) {
    CHECK (0, "out of memory");
    return;
  }
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 7 + 1);
  for (size_t i = 0; i < n; i++)
    pt[i] = (uint8_t) (i * 131 + i / 251);
  r = cv_xts_new (impl, key, ss, &x);
  CHECK (r == 0, "cv_xts_new (%u): %d", ss, r);
  if (r < 0)
    return;

  for (size_t s = 0; s < nsect; s++) {
    uint8_t t[16];

    tweak_of (first + s, ss / 512, t);
    r = cv_xts_unit (x, t, ref + s * ss, pt + s * ss, ss, 1);
    CHECK (r == 0, "cv_xts_unit: %d", r);
  }

  r = cv_xts_encrypt (x, ct, pt, first, nsect);
  CHECK (r == 0 && memcmp (ct, ref, n) == 0,
         "%u-byte sectors from %llu: encrypt out of place differs", ss,
         (unsigned long long) first);
  r = cv_xts_decrypt (x, buf, ct, first, nsect);
  CHECK (r == 0 && memcmp (buf, pt, n) == 0,
         "%u-byte sectors from %llu: decrypt out of place differs", ss,
         (unsigned long long) first);

  memcpy (buf, pt, n);
  r = cv_xts_encrypt (x, buf, buf, first, nsect);
  CHECK (r == 0 && memcmp (buf, ref, n) == 0,
         "%u-byte sectors from %llu: encrypt in place differs", ss,
         (unsigned long long) first);
  r = cv_xts_decrypt (x, buf, buf, first, nsect);
  CHECK (r == 0 && memcmp (buf, pt, n) == 0,
         "%u-byte sectors from %llu: decrypt in place differs", ss,
         (unsigned long long) first);

  /* A request starting mid-run uses the same tweaks as the whole run. */
  if (nsect > 1) {
    r = cv_xts_encrypt (x, buf, pt + ss, first + 1, nsect - 1);
    CHECK (r == 0 && memcmp (buf, ref + ss, n - ss) == 0,
           "%u-byte sectors from %llu: sub-range differs", ss,
           (unsigned long long) (first + 1));
  }
  r = cv_xts_encrypt (x, buf, pt, first, 0);
  CHECK (r == 0, "zero sectors: %d", r);
  cv_xts_free (x);
}

/* A key whose halves are equal is refused, with a message. */
static void
test_equal_halves (void)
{
  uint8_t key[CV_DEK_LEN];
  struct cv_xts *x = NULL;
  int r;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i % (CV_DEK_LEN / 2));
  harness_log_clear ();
  r = cv_xts_new (CV_XTS_AUTO, key, 4096, &x);
  CHECK (r == -EINVAL && x == NULL, "equal halves: %d", r);
  CHECK (strstr (harness_logged (), "halves") != NULL,
         "equal halves: no message, log: %s", harness_logged ());
  cv_xts_free (x);

  key[CV_DEK_LEN - 1] ^= 1; /* one bit apart: accepted */
  r = cv_xts_new (CV_XTS_AUTO, key, 4096, &x);
  CHECK (r == 0, "halves one bit apart: %d", r);
  cv_xts_free (x);
}

/* Sector sizes other than 512 and 4096, and units under 16 bytes, are
 * refused with a message. */
static void
test_bad_sizes (void)
{
  static const unsigned bad[] = { 0, 256, 511, 513, 1024, 2048, 8192 };
  uint8_t key[CV_DEK_LEN], t[16] = { 0 }, buf[16] = { 0 };
  struct cv_xts *x = NULL;
  int r;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) i;
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    harness_log_clear ();
    r = cv_xts_new (CV_XTS_AUTO, key, bad[i], &x);
    CHECK (r == -EINVAL && x == NULL, "sector size %u: %d", bad[i], r);
    CHECK (strstr (harness_logged (), "sector size") != NULL,
           "sector size %u: log: %s", bad[i], harness_logged ());
    cv_xts_free (x);
    x = NULL;
  }

  r = cv_xts_new (CV_XTS_AUTO, key, 512, &x);
  CHECK (r == 0, "cv_xts_new: %d", r);
  if (r < 0)
    return;
  harness_log_clear ();
  r = cv_xts_unit (x, t, buf, buf, 15, 1);
  CHECK (r == -EINVAL, "15-byte unit: %d", r);
  CHECK (harness_logged ()[0] != '\0', "15-byte unit: no message");
  cv_xts_free (x);
}

/* Generated DEKs are 64 bytes, with distinct halves, distinct from each
 * other, and usable. */
static void
test_dek_generate (void)
{
  CLEANUP_KEY struct cv_key *a = NULL;
  CLEANUP_KEY struct cv_key *b = NULL;
  struct cv_xts *x = NULL;
  int r;

  r = cv_dek_generate (&a);
  CHECK (r == 0 && a, "cv_dek_generate: %d", r);
  r = cv_dek_generate (&b);
  CHECK (r == 0 && b, "cv_dek_generate: %d", r);
  if (!a || !b)
    return;
  CHECK (a->len == CV_DEK_LEN && b->len == CV_DEK_LEN, "lengths %zu %zu",
         a->len, b->len);
  CHECK (memcmp (a->b, a->b + CV_DEK_LEN / 2, CV_DEK_LEN / 2) != 0,
         "halves equal");
  CHECK (memcmp (b->b, b->b + CV_DEK_LEN / 2, CV_DEK_LEN / 2) != 0,
         "halves equal");
  CHECK (memcmp (a->b, b->b, CV_DEK_LEN) != 0, "two DEKs are equal");
  r = cv_xts_new (CV_XTS_AUTO, a->b, 4096, &x);
  CHECK (r == 0, "generated DEK refused: %d", r);
  cv_xts_free (x);
}

int
main (void)
{
  harness_init ();
  for (impl = CV_XTS_OPENSSL; impl <= CV_XTS_GCRYPT; impl++) {
    fprintf (stderr, "implementation %s\n", cv_xts_impl_name (impl));
    test_vectors ();
    check_sectors (512, 0, 16);
    check_sectors (4096, 0, 16);
    check_sectors (512, 0x123456789aULL, 9);
    check_sectors (4096, 0x123456789aULL, 9);
    /* 8 * index crosses 2^64: the tweak is the full 128-bit value. */
    check_sectors (4096, UINT64_MAX - 3, 4);
    check_sectors (512, UINT64_MAX - 3, 4);
  }
  test_equal_halves ();
  test_bad_sizes ();
  test_dek_generate ();
  cv_xts_free (NULL);
  return harness_done ("test-crypto-xts-vectors");
}

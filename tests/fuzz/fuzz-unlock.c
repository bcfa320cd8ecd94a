/* libFuzzer target: the wraps and the unlock path. A header area built from
 * the fuzz input (hdr-input.h) is read with cv_hdr_read, and what reads is
 * unlocked with cv_unlock holding a fixed 32-byte key file and a fixed
 * passphrase (those tests/fuzz/make-seeds.sh makes its volumes with), so
 * the file and passphrase providers, the AEAD wrap, the key check and the
 * MAC all see fuzzed wraps. No network: wraps of other types are left out
 * by a wrap selection. Passphrase wraps whose KDF would cost more than a
 * few microseconds are not given the passphrase, so that the fuzzer does
 * not crawl. cv_unlock must return 0 only with a DEK that authenticates the
 * header, and never crash, leak or read out of bounds. make fuzz builds and
 * runs it (build-fuzz/fuzz-unlock); test-fuzz.sh runs it for 30 s.
 * FUZZ_DEBUG=1 prints what cv_unlock returned (replaying an input). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "hdr-input.h"
#include "keys/keys.h"

/* A header device for descriptor fd (common/dev.h). */
#define FDEV(fd, name) ((struct cv_dev[1]){ cv_dev_file ((fd), (name)) })

/* The credentials of make-seeds.sh's volumes: key bytes 0, 1, ... 31 and
 * this passphrase. */
#define FUZZ_PASSPHRASE "cryptvol fuzz passphrase"

/* The largest passphrase KDF the harness runs: argon2id t * m (KiB) and
 * lanes, scrypt N (r = 8). Each costs well under a millisecond. */
#define TINY_ARGON2_TM 256
#define TINY_ARGON2_P 4
#define TINY_SCRYPT_N 64

/* Bits of the input's first byte above those of hdr-input.h: which
 * credentials this run holds. */
#define NO_KEYFILE 0x10
#define NO_PASSPHRASE 0x20
#define WRONG_CREDS 0x40 /* another key file and passphrase */

static int memfd = -1;
static uint8_t *area;
static char keyfile[2][64];
static struct cv_key *passphrase[2];

static void
quiet (enum cv_log_level level, const char *msg)
{}

static void
remove_keyfiles (void)
{
  unlink (keyfile[0]);
  unlink (keyfile[1]);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  uint8_t key[32];
  const char *tmp = getenv ("TMPDIR");
  int fd;

  cv_log_set_sink (quiet);
  cv_log_set_debug (true); /* format every message, debug ones too */
  /* Never ask the EC2 metadata service for anything. */
  setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
  atexit (remove_keyfiles);
  for (int k = 0; k < 2; k++) {
    for (size_t i = 0; i < sizeof key; i++)
      key[i] = (uint8_t) (i + 32 * k);
    snprintf (keyfile[k], sizeof keyfile[k], "%s/fuzz-unlock.XXXXXX",
              tmp && strlen (tmp) < 40 ? tmp : "/tmp");
    if ((fd = mkstemp (keyfile[k])) < 0 || write (fd, key, sizeof key) != 32
        || close (fd) < 0)
      abort ();
  }
  memfd = memfd_create ("fuzz-unlock", 0);
  area = malloc (CV_HDR_AREA_SIZE);
  if (memfd < 0 || !area
      || cv_key_from (FUZZ_PASSPHRASE, strlen (FUZZ_PASSPHRASE), &passphrase[0])
             < 0
      || cv_key_from ("not it", 6, &passphrase[1]) < 0)
    abort ();
  return 0;
}

static void
check (bool ok)
{
  if (!ok)
    abort ();
}

/* The integer member key of o, or -1 if it is not an integer. */
static json_int_t
int_member (const json_t *o, const char *key)
{
  json_t *v = json_object_get (o, key);

  return json_is_integer (v) ? json_integer_value (v) : -1;
}

/* Would unlocking passphrase wrap w run a KDF larger than tiny? Only
 * parameters the provider could accept count: others never reach the KDF. */
static bool
kdf_costly (const json_t *w)
{
  const json_t *k = json_object_get (w, "kdf");
  const char *type = json_string_value (json_object_get (k, "type"));

  if (!type)
    return false;
  if (strcmp (type, "argon2id") == 0) {
    json_int_t t = int_member (k, "t"), m = int_member (k, "m"),
               p = int_member (k, "p");
    if (t < 0 || m < 0 || p < 0)
      return false;
    return t > TINY_ARGON2_TM || m > TINY_ARGON2_TM || t * m > TINY_ARGON2_TM
           || p > TINY_ARGON2_P;
  }
  if (strcmp (type, "scrypt") == 0)
    return int_member (k, "n") > TINY_SCRYPT_N;
  return false;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct cv_header *h = NULL; /* not const: cv_unlock may take either */
  struct cv_creds c = { 0 };
  struct cv_wrap_sel only_local = CV_WRAP_SEL_ALL, *sel = NULL;
  struct cv_key *dek = NULL;
  int64_t id = -1;
  size_t i;
  json_t *w;
  int r;

  if (hdr_input_area (data, size, area) == 0)
    return 0;
  int wrong = (data[0] & WRONG_CREDS) != 0;
  c.keyfile = data[0] & NO_KEYFILE ? NULL : keyfile[wrong];
  c.passphrase = data[0] & NO_PASSPHRASE ? NULL : passphrase[wrong];
  check (pwrite (memfd, area, CV_HDR_AREA_SIZE, 0) == CV_HDR_AREA_SIZE);
  if (cv_hdr_read (FDEV (memfd, "fuzz"), &h, NULL) < 0)
    return 0;

  json_array_foreach (cv_hdr_wraps (h), i, w)
  {
    const char *type = json_string_value (json_object_get (w, "type"));
    if (type && strcmp (type, "passphrase") == 0 && kdf_costly (w))
      c.passphrase = NULL;
    if (type && strcmp (type, "file") && strcmp (type, "passphrase"))
      sel = &only_local;
  }
  if (sel) {
    check (cv_wrap_sel_add (sel, "file") == 0);
    check (cv_wrap_sel_add (sel, "passphrase") == 0);
  }

  r = cv_unlock (h, "fuzz", &c, sel, &dek, &id);
  if (getenv ("FUZZ_DEBUG"))
    fprintf (stderr, "unlock: %d (wrap %lld, passphrase %s)\n", r,
             (long long) id, c.passphrase ? "given" : "withheld");
  check (r <= 0 && (r == 0) == (dek != NULL));
  if (r == 0) {
    check (cv_hdr_authenticate (h, dek) == 0);
    check (cv_hdr_wrap_find (h, id, NULL) == 0);
  }
  cv_key_free (dek);
  cv_hdr_free (h);
  return 0;
}

/* libFuzzer target: the header reader (cv_hdr_decode on each copy alone,
 * cv_hdr_read on both) on header areas built from the fuzz input as
 * hdr-input.h describes, checksums repaired so that the JSON parser and the
 * schema checks are reached. What decodes goes through every accessor
 * (wraps, rotation state, JSON view, key check) and must encode again into
 * a copy that decodes to the same header. The reader must return one of its
 * documented codes and never crash, leak or read out of bounds. make fuzz
 * builds and runs it (build-fuzz/fuzz-header); test-fuzz.sh runs it
 * for 30 s from seeds tests/fuzz/make-seeds.sh takes from real volumes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "hdr-input.h"

/* A header device for descriptor fd (common/dev.h). */
#define FDEV(fd, name) ((struct cv_dev[1]){ cv_dev_file ((fd), (name)) })

#define HDR_SHORT_FILE 0x80 /* above the bits of hdr-input.h */

static int memfd = -1;
static uint8_t *area, *copy;
static struct cv_key *dek;

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  cv_log_set_debug (true); /* format every message, debug ones too */
  memfd = memfd_create ("fuzz-header", 0);
  area = malloc (CV_HDR_AREA_SIZE);
  copy = malloc (CV_HDR_COPY_SIZE);
  if (memfd < 0 || !area || !copy || cv_key_new (64, &dek) < 0)
    abort ();
  memset (dek->b, 0x5a, dek->len);
  return 0;
}

static void
check (bool ok)
{
  if (!ok)
    abort ();
}

/* A string accessor: NULL or a string (ASan checks it is readable). */
static void
str_ok (const char *s)
{
  if (s)
    (void) strlen (s);
}

/* The header as keymgr info --json shows it, canonical, for comparisons. */
static char *
dump (const struct cv_header *h)
{
  json_t *j = cv_hdr_to_json (h);
  char *s = j ? json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

  json_decref (j);
  check (s != NULL);
  return s;
}

/* Everything a reader of a decoded header may ask of it. */
static void
exercise (struct cv_header *h)
{
  struct cv_wrap_info wi;
  struct cv_hdr_rotation rot;
  size_t n = cv_hdr_wrap_count (h);
  int r;

  check (strlen (cv_hdr_uuid (h)) == CV_UUID_LEN);
  check (strncmp (cv_hdr_binding (h), CV_BINDING_PREFIX,
                  strlen (CV_BINDING_PREFIX))
         == 0);
  check (cv_hdr_sector_size (h) == 512 || cv_hdr_sector_size (h) == 4096);
  check (cv_hdr_size (h) > 0 && cv_hdr_size (h) % cv_hdr_sector_size (h) == 0);
  str_ok (cv_hdr_cipher (h));
  str_ok (cv_hdr_created (h));
  check (json_is_array (cv_hdr_wraps (h)));
  (void) cv_hdr_data_offset (h);
  (void) cv_hdr_seqid (h);

  for (size_t i = 0; i < n; i++) {
    check (cv_hdr_wrap_at (h, i, &wi) == 0 && wi.type);
    str_ok (wi.ref);
    str_ok (wi.created);
    str_ok (wi.verified);
    str_ok (wi.kdf);
    check (cv_hdr_wrap_find (h, wi.id, NULL) == 0);
    str_ok (cv_hdr_wrap_member (h, wi.id, "kek_id"));
    str_ok (cv_hdr_wrap_member (h, wi.id, "key_arn"));
    json_decref (cv_hdr_wrap_to_json (h, wi.id));
  }
  check (cv_hdr_wrap_at (h, n, &wi) == -ENOENT);

  r = cv_hdr_rotation_get (h, "fuzz", &rot);
  check (r == 0 || r == -ENOENT || r == -EBADMSG || r == -ENOMEM);
  check (cv_hdr_rotating (h) == (r != -ENOENT));
  if (r == 0)
    check (strlen (rot.id) == 16 && rot.boundary <= cv_hdr_size (h));

  r = cv_hdr_authenticate (h, dek);
  check (r == 0 || r == -EKEYREJECTED || r == -EBADMSG || r == -ENOMEM);

  /* What was read can be written back and reads back the same. */
  char *before = dump (h);
  r = cv_hdr_encode (h, 1, copy);
  check (r == 0 || r == -E2BIG || r == -ENOMEM);
  if (r == 0) {
    struct cv_header *again = NULL;
    check (cv_hdr_decode (copy, 1, "fuzz (re-encoded)", &again) == 0);
    char *after = dump (again);
    check (strcmp (before, after) == 0);
    free (after);
    cv_hdr_free (again);
  }
  free (before);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct cv_header *h;
  unsigned valid = 0;
  int r;

  if (hdr_input_area (data, size, area) == 0)
    return 0;

  /* Each copy alone (cv_hdr_read below exercises the one it takes). */
  for (int i = 0; i < 2; i++) {
    h = NULL;
    r = cv_hdr_decode (area + (size_t) i * CV_HDR_COPY_SIZE, i, "fuzz", &h);
    check (r == 0 || r == -EINVAL || r == -EBADMSG || r == -EPROTONOSUPPORT
           || r == -ENOMEM);
    check ((r == 0) == (h != NULL));
    cv_hdr_free (h);
  }

  /* Both copies as a volume's header area; bit 7 of the first byte: a
   * file cut short after copy 0. */
  check (pwrite (memfd, area, CV_HDR_AREA_SIZE, 0) == CV_HDR_AREA_SIZE);
  check (ftruncate (memfd, data[0] & HDR_SHORT_FILE ? CV_HDR_COPY_SIZE
                                                    : CV_HDR_AREA_SIZE)
         == 0);
  h = NULL;
  r = cv_hdr_read (FDEV (memfd, "fuzz"), &h, &valid);
  check (r == 0 || r == -EINVAL || r == -EBADMSG || r == -EPROTONOSUPPORT
         || r == -EIO || r == -ENOMEM);
  check ((r == 0) == (h != NULL));
  if (h) {
    check (valid & (CV_HDR_COPY0 | CV_HDR_COPY1));
    exercise (h);
  }
  cv_hdr_free (h);
  return 0;
}

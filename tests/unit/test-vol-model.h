/* What the lib/vol unit tests share: a volume in a temporary file built with
 * library calls, opened with cv_vol_open, and a plaintext model of what it
 * must hold. After an operation, vm_check reads the whole volume through the
 * data path and compares it with the model; vm_check_disk decrypts the data
 * area from the file itself (with the DEK each sector must be under) and
 * checks that the bytes after the data area were never touched. */
#ifndef TEST_VOL_MODEL_H
#define TEST_VOL_MODEL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "harness.h"
#include "keys/keys.h"
#include "vol/volume.h"

#define CHUNK (128 * 1024) /* the data path's I/O unit (volume.c) */
#define DOFF (1024 * 1024) /* data offset: room for the rotation journal */
#define GUARD 8192         /* bytes after the data area; never written */
#define ALIGNMENT 4096

static char vm_dir[] = "/tmp/cv-test-vol-XXXXXX";
static char vm_keyfile[128];
static uint64_t vm_rng = 0x9E3779B97F4A7C15ULL;
static uint64_t vm_doff = DOFF; /* the data offset vm_create gives */

/* A volume under test. */
struct vm {
  char path[192];
  unsigned ss;
  uint64_t size;
  uint64_t doff; /* data offset */
  bool direct;
  uint8_t *model;      /* what the volume must read as */
  uint8_t *buf;        /* scratch, size + 2 * ALIGNMENT, aligned */
  struct cv_vol *v;    /* NULL when closed */
  struct cv_key *dek;  /* copy of the volume's DEK (during a rotation: new) */
  struct cv_key *odek; /* during a rotation: the old DEK, else NULL */
  enum cv_io_kind io;  /* the I/O backend opens use */
  struct cv_io_faults *faults; /* what it injects (CV_IO_POSIX), or NULL */
  enum cv_read_path read_path; /* how opens read */
};

static inline uint64_t
rnd (void)
{
  vm_rng ^= vm_rng << 13;
  vm_rng ^= vm_rng >> 7;
  vm_rng ^= vm_rng << 17;
  return vm_rng;
}

static inline void
rnd_fill (uint8_t *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t) (rnd () >> 32);
}

/* The byte every guard position holds. */
static inline uint8_t
guard_byte (size_t i)
{
  return (uint8_t) (i * 13 + 0x5a);
}

/* Number of "error: " lines captured since the last harness_log_clear. */
static inline int
error_lines (void)
{
  int n = 0;

  for (const char *p = harness_logged (); (p = strstr (p, "error: ")); p++)
    if (p == harness_logged () || p[-1] == '\n')
      n++;
  return n;
}

/* The temporary directory and the key file every test volume is wrapped
 * under. Exits on failure: nothing can be tested without them. */
static inline void
vm_init (void)
{
  harness_init ();
  if (!mkdtemp (vm_dir)) {
    perror ("mkdtemp");
    exit (1);
  }
  snprintf (vm_keyfile, sizeof vm_keyfile, "%s/kek", vm_dir);
  if (cv_keyfile_create (vm_keyfile) < 0) {
    fprintf (stderr, "cannot create %s: %s", vm_keyfile, harness_logged ());
    exit (1);
  }
}

static inline void
vm_cleanup (void)
{
  unlink (vm_keyfile);
  rmdir (vm_dir);
}

/* Open m's volume. Returns cv_vol_open's result; m->v is set on success. */
static inline int
vm_open_opts (struct vm *m, bool readonly, bool exclusive)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_vol_opts o = { .path = m->path,
                           .readonly = readonly,
                           .direct = m->direct,
                           .exclusive = exclusive,
                           .creds = &c,
                           .io = m->io,
                           .faults = m->faults,
                           .read_path = m->read_path };

  m->v = NULL;
  return cv_vol_open (&o, &m->v);
}

static inline void
vm_open (struct vm *m)
{
  harness_log_clear ();
  int rc = vm_open_opts (m, false, false);
  CHECK (rc == 0, "open %s: %s", m->path, harness_logged ());
  if (rc < 0)
    exit (harness_done ("test-vol (cannot go on)"));
}

static inline void
vm_close (struct vm *m)
{
  cv_vol_close (m->v);
  m->v = NULL;
}

/* A new volume of size bytes in sectors of ss at data offset vm_doff, filled
 * through the data path with random bytes (the model), and open. */
static inline void
vm_create (struct vm *m, unsigned ss, uint64_t size, bool direct)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  CLEANUP_KEY struct cv_key *dek = NULL;
  struct cv_header *h = NULL;
  static int serial;
  uint8_t guard[GUARD];
  char spec[160];
  int rc;

  *m = (struct vm){ .ss = ss, .size = size, .doff = vm_doff, .direct = direct };
  snprintf (m->path, sizeof m->path, "%s/vol%d", vm_dir, serial++);
  snprintf (spec, sizeof spec, "file:%s", vm_keyfile);
  for (size_t i = 0; i < GUARD; i++)
    guard[i] = guard_byte (i);
  CLEANUP_CLOSE int fd
      = open (m->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  rc = fd < 0 ? -errno : 0;
  if (rc == 0 && (rc = cv_hdr_new (ss, m->doff, size, &h)) == 0
      && (rc = cv_dek_generate (&dek)) == 0 && (rc = cv_hdr_seal (h, dek)) == 0
      && (rc = cv_wrap_add (h, spec, &c, dek, NULL)) == 0) {
    if (ftruncate (fd, m->doff + size) < 0
        || pwrite (fd, guard, GUARD, m->doff + size) != GUARD)
      rc = -errno;
    if (rc == 0 && (rc = cv_lock_header (FDEV (fd, "volume"), false)) == 0) {
      rc = cv_hdr_commit (FDEV (fd, m->path), h);
      cv_unlock_header (FDEV (fd, "volume"));
    }
  }
  cv_hdr_free (h);
  CHECK (rc == 0, "create %s: %s: %s", m->path, strerror (-rc),
         harness_logged ());
  if (rc < 0)
    exit (harness_done ("test-vol (cannot go on)"));
  m->model = malloc (size);
  if (!m->model
      || posix_memalign ((void **) &m->buf, ALIGNMENT, size + 2 * ALIGNMENT)
      || cv_key_from (dek->b, dek->len, &m->dek) < 0)
    exit (99);
  vm_open (m);
  rnd_fill (m->model, size);
  CHECK (cv_vol_pwrite (m->v, m->model, (uint32_t) size, 0, false) == 0,
         "fill: %s", harness_logged ());
}

/* Close and remove the volume. */
static inline void
vm_destroy (struct vm *m)
{
  vm_close (m);
  unlink (m->path);
  free (m->model);
  free (m->buf);
  cv_key_free (m->dek);
  cv_key_free (m->odek);
}

/* Offset of the first byte of [0, len) where a and b differ, or -1. */
static inline long long
first_diff (const uint8_t *a, const uint8_t *b, size_t len)
{
  if (memcmp (a, b, len) == 0)
    return -1;
  for (size_t i = 0;; i++)
    if (a[i] != b[i])
      return (long long) i;
}

/* The whole volume read through the data path equals the model. */
static inline void
vm_check (struct vm *m, const char *what)
{
  harness_log_clear ();
  int rc = cv_vol_pread (m->v, m->buf, (uint32_t) m->size, 0);
  long long d = rc == 0 ? first_diff (m->buf, m->model, m->size) : -1;

  CHECK (rc == 0 && d < 0,
         "%s: volume differs from the model: rc %d, first "
         "difference at byte %lld; %s",
         what, rc, d, harness_logged ());
}

/* The file decrypts to the model (sectors below the rotation boundary under
 * m->dek, the others under m->odek), and the guard after the data area is
 * intact. An oracle independent of the data path's read code. */
static inline void
vm_check_disk (struct vm *m, const char *what)
{
  struct cv_xts *x = NULL, *xo = NULL;
  uint64_t boundary = m->size;
  uint8_t guard[GUARD];
  int rc;

  if (m->v)
    cv_vol_rotating (m->v, &boundary);
  CLEANUP_CLOSE int fd = open (m->path, O_RDONLY | O_CLOEXEC);
  rc = cv_xts_new (CV_XTS_AUTO, m->dek->b, m->ss, &x);
  if (rc == 0 && m->odek)
    rc = cv_xts_new (CV_XTS_AUTO, m->odek->b, m->ss, &xo);
  if (rc == 0
      && (fd < 0 || pread (fd, m->buf, m->size, m->doff) != (ssize_t) m->size
          || pread (fd, guard, GUARD, m->doff + m->size) != GUARD))
    rc = -EIO;
  CHECK (rc == 0, "%s: read and decrypt the file: %d", what, rc);
  for (uint64_t s = 0; rc == 0 && s < m->size / m->ss; s++) {
    uint8_t *p = m->buf + s * m->ss;
    struct cv_xts *k = s * m->ss < boundary || !xo ? x : xo;
    rc = cv_xts_decrypt (k, p, p, s, 1);
  }
  long long d = rc == 0 ? first_diff (m->buf, m->model, m->size) : -1;
  CHECK (rc == 0 && d < 0,
         "%s: the file does not decrypt to the model "
         "(boundary %llu): first difference at byte %lld",
         what, (unsigned long long) boundary, d);
  size_t g = 0;
  while (g < GUARD && guard[g] == guard_byte (g))
    g++;
  CHECK (g == GUARD, "%s: the guard after the data area changed at byte %zu",
         what, g);
  cv_xts_free (x);
  cv_xts_free (xo);
}

/* Write len random bytes at off (from an unaligned buffer when odd is set);
 * the model follows on success. Returns cv_vol_pwrite's result. */
static inline int
vm_write (struct vm *m, uint64_t off, uint32_t len, bool odd)
{
  uint8_t *p = m->buf + (odd ? 1 : 0);
  int rc;

  rnd_fill (p, len);
  harness_log_clear ();
  rc = cv_vol_pwrite (m->v, p, len, off, (rnd () & 3) == 0);
  if (rc == 0)
    memcpy (m->model + off, p, len);
  return rc;
}

static inline int
vm_zero (struct vm *m, uint64_t off, uint32_t len)
{
  int rc;

  harness_log_clear ();
  rc = cv_vol_zero (m->v, len, off, false);
  if (rc == 0)
    memset (m->model + off, 0, len);
  return rc;
}

/* Read [off, off+len) into an aligned (or, with odd, unaligned) buffer and
 * compare it with the model; bytes around the buffer must stay untouched. */
static inline int
vm_read (struct vm *m, uint64_t off, uint32_t len, bool odd)
{
  uint8_t *p = m->buf + ALIGNMENT + (odd ? 1 : 0);
  int rc;

  memset (m->buf, 0xee, (size_t) len + 2 * ALIGNMENT);
  harness_log_clear ();
  rc = cv_vol_pread (m->v, p, len, off);
  if (rc == 0) {
    long long d = first_diff (p, m->model + off, len);
    CHECK (d < 0, "read %u at %llu: byte %lld differs from the model", len,
           (unsigned long long) off, d);
  }
  CHECK (p[-1] == 0xee && p[len] == 0xee,
         "read %u at %llu wrote outside its buffer", len,
         (unsigned long long) off);
  return rc;
}

#endif

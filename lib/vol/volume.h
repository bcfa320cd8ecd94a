/* An opened, unlocked volume and its data path: what the nbdkit plugin serves.
 * Requests may come from many threads at once; each thread gets its own I/O
 * queue, XTS engine and bounce buffer on first use. */
#ifndef CV_VOLUME_H
#define CV_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "io/backend.h"
#include "keys/keys.h"

struct cv_vol;

struct cv_vol_opts {
  const char *path;        /* data file or block device */
  const char *header_path; /* detached header, or NULL */
  bool readonly;
  bool direct; /* O_DIRECT on the data file */
  /* Offline maintenance: no server may have the volume open (keymgr
   * rotate-dek, restore-header, shred). */
  bool exclusive;
  const struct cv_creds *creds;
  const struct cv_wrap_sel *wraps; /* which wraps to try, in order; NULL: all */
  /* I/O backend. CV_IO_AUTO (0): io_uring if it works here, else the
   * portable one with a warning; CV_IO_URING fails to open where io_uring
   * does not work. */
  enum cv_io_kind io;
  /* Tests: faults the portable backend (CV_IO_POSIX) injects; NULL. */
  struct cv_io_faults *faults;
};

/* Open the volume, read its header, unlock a DEK and authenticate the header.
 * Every failure is reported once, naming the volume and the reason.
 * Returns 0 or -errno. */
int cv_vol_open (const struct cv_vol_opts *o, struct cv_vol **out);
/* Free per-thread state of all threads and the volume; wipes the DEK. */
void cv_vol_close (struct cv_vol *v);

uint64_t cv_vol_size (const struct cv_vol *v);
unsigned cv_vol_sector_size (const struct cv_vol *v);
const char *cv_vol_uuid (const struct cv_vol *v);

/* Data path. Offsets and counts are in bytes within the volume and need not
 * be sector aligned (edge sectors are read-modified-written under per-sector
 * locks). Requests beyond the end fail with -ENOSPC (writes) or -EIO (reads)
 * and a message. Return 0 or -errno. */
int cv_vol_pread (struct cv_vol *v, void *buf, uint32_t count, uint64_t off);
int cv_vol_pwrite (struct cv_vol *v, const void *buf, uint32_t count,
                   uint64_t off, bool fua);
/* Write zeros that read back as zeros (encrypted zero sectors). */
int cv_vol_zero (struct cv_vol *v, uint32_t count, uint64_t off, bool fua);
int cv_vol_flush (struct cv_vol *v);

/* Re-lock key pages after fork (memory locks are not inherited). */
int cv_vol_after_fork (struct cv_vol *v);

/* The volume's header and its DEK (during a DEK rotation: the new one). */
const struct cv_header *cv_vol_header (const struct cv_vol *v);
const struct cv_key *cv_vol_dek (const struct cv_vol *v);

/* DEK rotation (re-encryption) of a volume opened with exclusive = true.
 * cv_vol_rotate_begin: make a new DEK and re-make every wrap for it with c
 * (each wrap's key is needed; cv_wrap_remake_all), and commit them with the
 * rotation state, the old DEK sealed under the new one; from then on every
 * wrap opens the new DEK, which becomes the volume's, and data below the
 * boundary is under it. step is the bytes re-encrypted per crash-safe step
 * (0: default). On failure v is unchanged (its DEK, header and wraps), and
 * the message says whether the header on disk records the rotation (its
 * primary copy was written: the next open continues it) or nothing changed.
 * Returns 0, -EALREADY (a rotation is in progress), -EROFS (opened
 * read-only), -ENOSPC (no room for the journal) or another -errno; logged.
 * cv_vol_rotate_run: re-encrypt the rest, one step at a time (each journalled
 * so that a crash anywhere is recovered by the next open), calling progress
 * after each; at the end the old DEK is forgotten. Returns 0 or -errno
 * (logged). A rotation interrupted at any point is continued by opening the
 * volume and calling cv_vol_rotate_run. */
int cv_vol_rotate_begin (struct cv_vol *v, const struct cv_creds *c,
                         uint64_t step);
int cv_vol_rotate_run (struct cv_vol *v,
                       void (*progress) (uint64_t done, uint64_t total,
                                         void *arg),
                       void *arg);
/* True if a DEK rotation is in progress; *done gets its boundary. */
bool cv_vol_rotating (const struct cv_vol *v, uint64_t *done);

#endif

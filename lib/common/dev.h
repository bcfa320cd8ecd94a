/* A store that the header code reads and writes synchronously: the header
 * area (attached to the data or detached), the seal sector and the
 * DEK-rotation journal. A file or block device (a descriptor, this file) or
 * an RBD image (lib/io/rbd.c, opened with cv_dev_open in lib/io/dev.c); the
 * data path reads and writes the same stores through lib/io's queues.
 *
 * The three locks the format uses (format/header.h) are the device's too: on
 * a file they are OFD byte-range locks; an RBD image opened for writing holds
 * RBD's exclusive lock for as long as it is open (one client in the cluster
 * at a time), and its header and commit locks serialise the threads of the
 * one process that holds it. */
#ifndef CV_DEV_H
#define CV_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_dev;

enum cv_dev_lock {
  CV_DEV_LOCK_HEADER, /* header writers (keymgr, a server's rotation) */
  CV_DEV_LOCK_IN_USE, /* shared by a server, exclusive offline */
  CV_DEV_LOCK_COMMIT, /* a commit holds it while it writes the copies */
};

struct cv_dev_ops {
  const char *name; /* "file", "rbd" */
  /* As cv_pread_all: up to len bytes, stopping early only at the end of
   * the store; *got (may be NULL) the bytes read; with got == NULL a short
   * read is -EIO. 0 or -errno, not logged. */
  int (*pread) (struct cv_dev *d, void *buf, size_t len, uint64_t off,
                size_t *got);
  /* All len bytes; dsync: durable when it returns. 0 or -errno, not
   * logged. */
  int (*pwrite) (struct cv_dev *d, const void *buf, size_t len, uint64_t off,
                 bool dsync);
  /* Make every completed write durable. 0 or -errno, not logged. */
  int (*flush) (struct cv_dev *d);
  /* Size in bytes; set the size (a new volume: ftruncate, rbd_resize).
   * 0 or -errno, not logged. */
  int (*size) (struct cv_dev *d, uint64_t *size);
  int (*resize) (struct cv_dev *d, uint64_t size);
  /* Take (type F_RDLCK or F_WRLCK) or release (F_UNLCK) a lock; wait: block
   * until it is free. Returns 0, -EBUSY when it is held elsewhere and !wait,
   * or -errno; not logged (format/lock.c names the lock). */
  int (*lock) (struct cv_dev *d, enum cv_dev_lock which, short type, bool wait);
  /* Who else holds CV_DEV_LOCK_IN_USE: 0 nobody, 1 shared (a server),
   * 2 exclusive (an offline operation); -errno (logged). With who (may be
   * NULL), a description of the holder for messages ("" when unknown). */
  int (*holder) (struct cv_dev *d, char *who, size_t who_len);
  /* Release everything (the locks with it) and free d. */
  void (*close) (struct cv_dev *d);
};

struct cv_dev {
  const struct cv_dev_ops *ops;
  int fd;           /* a file's descriptor; -1 for other stores */
  const char *name; /* the path, for messages */
};

/* A device for the descriptor fd of the file named name, which the caller
 * keeps open (and closes: cv_dev_close of it does nothing). For tests and
 * callers that already hold a descriptor. */
struct cv_dev cv_dev_file (int fd, const char *name);
/* Open the file at path (O_RDWR, or O_RDONLY; O_CLOEXEC) as a device that
 * owns its descriptor. 0 or -errno (not logged: the caller names what the
 * file is). */
int cv_dev_file_open (const char *path, bool readonly, struct cv_dev **out);

/* Dispatch to d->ops (see struct cv_dev_ops). */
int cv_dev_pread (struct cv_dev *d, void *buf, size_t len, uint64_t off,
                  size_t *got);
int cv_dev_pwrite (struct cv_dev *d, const void *buf, size_t len, uint64_t off,
                   bool dsync);
int cv_dev_flush (struct cv_dev *d);
int cv_dev_size (struct cv_dev *d, uint64_t *size);
int cv_dev_resize (struct cv_dev *d, uint64_t size);
int cv_dev_lock (struct cv_dev *d, enum cv_dev_lock which, short type,
                 bool wait);
int cv_dev_holder (struct cv_dev *d, char *who, size_t who_len);
/* True for a device that is a file or block device (d->fd is valid). */
bool cv_dev_is_file (const struct cv_dev *d);
/* Close d (NULL is ignored). */
void cv_dev_close (struct cv_dev *d);
static inline void
cv_dev_closep (struct cv_dev **d)
{
  cv_dev_close (*d);
}
#define CLEANUP_DEV __attribute__ ((cleanup (cv_dev_closep)))

#endif

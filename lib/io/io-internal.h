/* What the backends share: the vtable each fills, and the base structs they
 * embed first in their own store and queue. Internal to lib/io; the public
 * interface is backend.h, whose functions (backend.c) dispatch through
 * ops. */
#ifndef CV_IO_INTERNAL_H
#define CV_IO_INTERNAL_H

#include "io/backend.h"

struct cv_io_ops {
  const char *name;
  /* cv_io_chunk: bytes per queued transfer the store prefers; 0: 128 KiB. */
  size_t chunk;
  /* Open o->path as a store of this backend. 0 or -errno (logged). */
  int (*open) (const struct cv_io_open_opts *o, struct cv_io **out);
  void (*close) (struct cv_io *io);
  int (*size) (struct cv_io *io, uint64_t *size);
  /* cv_io_map; NULL: the backend has no mapping (-ENOTSUP). */
  int (*map) (struct cv_io *io, const uint8_t **base, uint64_t *len);
  /* shared: cv_io_queue_new_shared (a backend with nothing to share
   * ignores it). */
  int (*queue_new) (struct cv_io *io, unsigned depth, bool shared,
                    struct cv_io_queue **out);
  void (*queue_free) (struct cv_io_queue *q);
  unsigned (*space) (const struct cv_io_queue *q);
  int (*queue_read) (struct cv_io_queue *q, void *buf, size_t len, uint64_t off,
                     uint64_t tag);
  int (*queue_write) (struct cv_io_queue *q, const void *buf, size_t len,
                      uint64_t off, bool fua, uint64_t tag);
  int (*queue_flush) (struct cv_io_queue *q, uint64_t tag);
  /* cv_io_sync_range: write back [off, off+len) of the store and wait. */
  int (*queue_sync_range) (struct cv_io_queue *q, uint64_t off, uint64_t len,
                           uint64_t tag);
  int (*submit) (struct cv_io_queue *q);
  /* cv_io_reap, or cv_io_reap_ready when !wait. */
  int (*reap) (struct cv_io_queue *q, uint64_t *tag, bool wait);
};

struct cv_io {
  const struct cv_io_ops *ops;
};

struct cv_io_queue {
  const struct cv_io_ops *ops;
  unsigned depth;
  int error; /* cv_io_queue_error */
};

extern const struct cv_io_ops cv_io_uring_ops;
extern const struct cv_io_ops cv_io_posix_ops;
extern const struct cv_io_ops cv_io_rbd_ops;

/* The header device of the RBD image at path (cv_dev_open). 0 or -errno
 * (logged). (rbd.c) */
int cv_rbd_dev_open (const char *path, const struct cv_rbd_opts *o,
                     bool readonly, struct cv_dev **out);

/* 0 if io_uring can be used here (a ring made and a no-op run on it), else
 * -errno. Logs nothing. (uring.c) */
int cv_io_uring_probe (void);

/* A store that is a file or block device, as both uring.c and posix.c keep
 * it (file.c). */
struct cv_io_file {
  struct cv_io base;
  int fd;
  bool direct;
  char *path;                  /* for messages */
  struct cv_io_faults *faults; /* NULL, or honoured by posix.c */
  const uint8_t *map;          /* cv_io_map, or NULL */
  size_t map_len;
};

/* Open o->path (O_DIRECT if o->direct) into a new cv_io_file of ops. Returns
 * 0 or -errno (logged, naming the file). */
int cv_io_file_open (const struct cv_io_open_opts *o,
                     const struct cv_io_ops *ops, struct cv_io **out);
void cv_io_file_close (struct cv_io *io);
/* sync_file_range of [off, off+len): write back and wait, no device cache
 * flush. 0 or -errno. */
int cv_io_file_sync_range (struct cv_io *io, uint64_t off, uint64_t len);
/* Size of a regular file or block device: 0 or -errno (logged). */
int cv_io_file_size (struct cv_io *io, uint64_t *size);
/* The mapping made at open (cv_io_map): 0 or -ENOTSUP. */
int cv_io_file_map (struct cv_io *io, const uint8_t **base, uint64_t *len);

#endif

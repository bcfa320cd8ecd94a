/* I/O backends: the one interface the data path (lib/vol) drives, whatever
 * stores the ciphertext. A backend opens a store (a file or block device
 * today) shared by all threads; each thread makes its own queue on it and
 * batches: queue reads, writes and flushes, each with a caller tag, submit
 * once, then reap completions one at a time. A reaped request has either
 * moved all its bytes or failed: backends finish short transfers themselves.
 *
 * Backends, one per file:
 *   uring.c  io_uring (liburing), asynchronous; buffered writes are pwrite
 *            calls from the queueing thread (see uring.c)
 *   posix.c  portable: preadv2/pwritev2/fdatasync, performed one at a time
 *            as they are reaped; takes fault-injection settings for tests
 *   rbd.c    a Ceph RBD image ("rbd:POOL/IMAGE", rbd.h) through librbd's
 *            aio calls; used for every rbd: path, whatever the kind
 * Offsets are bytes in the store. Per-request failures are returned, not
 * logged (the caller knows what the bytes are); failures of a queue or a
 * store are logged where they are detected. */
#ifndef CV_IO_BACKEND_H
#define CV_IO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dev.h"
#include "io/rbd.h"

enum cv_io_kind {
  CV_IO_AUTO = 0, /* io_uring if it works here, else portable (one warning) */
  CV_IO_URING,
  CV_IO_POSIX,
};

/* Fault injection, honoured by the portable backend only (tests). Each
 * queued read, write or flush whose CV_IO_OP_* is in ops counts as one
 * operation when it is performed (at reap), across all threads; the counted
 * ones numbered nth to nth + count - 1 fail with -err (EIO if err is 0)
 * before touching the store. short_max applies to every read and write: it
 * is moved in pieces of at most that many bytes, one system call each. A
 * test may change the fields between requests. */
enum { CV_IO_OP_READ = 1, CV_IO_OP_WRITE = 2, CV_IO_OP_FLUSH = 4 };
struct cv_io_faults {
  unsigned ops;        /* CV_IO_OP_* mask the failure applies to */
  unsigned long nth;   /* fail the nth matching operation (1-based); 0: none */
  unsigned long count; /* and this many after it (0 or 1: just the nth) */
  int err;             /* positive errno to fail with (EIO, ENOSPC...) */
  size_t short_max;    /* > 0: each read/write syscall moves at most this
                          many bytes (short transfers; buffered stores:
                          O_DIRECT refuses unaligned pieces) */
  unsigned long seen;  /* operations counted so far (atomic; set 0 to
                          restart) */
};

/* An opened store, shared by threads. */
struct cv_io;
/* One thread's queue on a store. */
struct cv_io_queue;

struct cv_io_open_opts {
  enum cv_io_kind kind;
  const char *path;              /* file, block device or "rbd:POOL/IMAGE" */
  const struct cv_rbd_opts *rbd; /* for rbd: paths; NULL: Ceph's defaults */
  bool readonly;
  bool direct; /* O_DIRECT: buffers, offsets and lengths 4096-aligned */
  struct cv_io_faults *faults; /* NULL, or counted and applied (posix) */
};

/* Open the store at o->path with the backend o->kind. CV_IO_AUTO checks that
 * io_uring works (a ring is made, runs a no-op and is freed: nothing is kept,
 * so this may run before a fork); if it does not, one warning names the
 * reason and the portable backend is used. CV_IO_URING where io_uring does
 * not work fails with -errno. Returns 0 or -errno (logged). */
int cv_io_open (const struct cv_io_open_opts *o, struct cv_io **out);
/* Open the header device (common/dev.h) at path: an RBD image for an rbd:
 * path (sharing the image with a cv_io store of it in this process; opened
 * for writing, it takes the exclusive lock, see rbd.h), else the file.
 * what names it in messages ("header", "data file"). Returns 0 or -errno
 * (logged). */
int cv_dev_open (const char *path, const char *what, bool readonly,
                 const struct cv_rbd_opts *rbd, struct cv_dev **out);
/* Close the store. Every queue on it must have been freed. */
void cv_io_close (struct cv_io *io);
/* The backend's name ("io_uring", "posix"), for messages. */
const char *cv_io_name (const struct cv_io *io);
/* How many bytes one queued read or write should move at most: 128 KiB for
 * files (bounce memory stays small, and the cipher works on one chunk while
 * the next is in flight), more for a store whose every operation costs
 * much (RBD: a round trip to the OSD and librbd's own work). */
size_t cv_io_chunk (const struct cv_io *io);
/* Size in bytes of the store. Returns 0 or -errno (logged). */
int cv_io_size (struct cv_io *io, uint64_t *size);
/* A read-only shared mapping (MAP_SHARED, PROT_READ) of the whole store as it
 * was at open: *base and *len (its size then), valid until cv_io_close. It
 * exists for a non-empty regular file opened without O_DIRECT (mapped at
 * open, unmapped at close); for a block device, O_DIRECT or a failed mmap
 * (logged as debug) it returns -ENOTSUP. A read of a page beyond the file's
 * current end, or one the kernel cannot read in, raises SIGBUS: access it
 * only under cv_sigbus_run (common/sigbus.h). Returns 0 or -ENOTSUP. */
int cv_io_map (struct cv_io *io, const uint8_t **base, uint64_t *len);

/* A queue with room for depth requests in flight (depth >= 1). Returns 0 or
 * -errno (logged). */
int cv_io_queue_new (struct cv_io *io, unsigned depth,
                     struct cv_io_queue **out);
/* The same, on the calling thread's I/O context, which the thread's other
 * shared queues (on other stores) use too: io_uring makes one ring per
 * thread, not one per store per thread. Use a shared queue only from the
 * thread that made it, and reap everything queued on one before queueing on
 * another (a data path that serves one request at a time does). It may be
 * freed from any thread. */
int cv_io_queue_new_shared (struct cv_io *io, unsigned depth,
                            struct cv_io_queue **out);
/* Free a queue; requests still queued are dropped. NULL is ignored. */
void cv_io_queue_free (struct cv_io_queue *q);
/* How many more requests can be queued before one must be reaped. */
unsigned cv_io_space (const struct cv_io_queue *q);
/* 0, or the -errno with which the queue itself failed (logged when it did):
 * every later call fails with it; free the queue and make a new one. */
int cv_io_queue_error (const struct cv_io_queue *q);

/* Queue a read of len bytes at off into buf, a write (fua: durable when it
 * completes), or a flush of every completed write. buf must stay valid until
 * the request is reaped. Return 0, or -EBUSY with no space. */
int cv_io_queue_read (struct cv_io_queue *q, void *buf, size_t len,
                      uint64_t off, uint64_t tag);
int cv_io_queue_write (struct cv_io_queue *q, const void *buf, size_t len,
                       uint64_t off, bool fua, uint64_t tag);
int cv_io_queue_flush (struct cv_io_queue *q, uint64_t tag);

/* Start everything queued. Returns 0, or -errno if the queue failed (logged;
 * nothing of it is in flight: free it). */
int cv_io_submit (struct cv_io_queue *q);

/* Wait for the next request to complete. Sets *tag and returns 0 if it
 * succeeded, or its -errno (-EIO for a read that hit end of file). Returns
 * -ENOENT if nothing is queued. A -errno with *tag == CV_IO_BROKEN (logged)
 * means the queue itself failed with nothing in flight: free it. */
#define CV_IO_BROKEN UINT64_MAX
int cv_io_reap (struct cv_io_queue *q, uint64_t *tag);
/* The same without waiting: -EAGAIN if no request has completed yet. */
int cv_io_reap_ready (struct cv_io_queue *q, uint64_t *tag);

/* Synchronous: one request queued, submitted and reaped. The queue must have
 * nothing queued (-EBUSY otherwise). Return 0 or the request's -errno. */
int cv_io_pread (struct cv_io_queue *q, void *buf, size_t len, uint64_t off);
int cv_io_pwrite (struct cv_io_queue *q, const void *buf, size_t len,
                  uint64_t off, bool fua);
int cv_io_flush (struct cv_io_queue *q);
/* Write back what is cached of [off, off+len) of the store and wait for it,
 * without flushing the device's own cache: the range is durable once a later
 * flush or FUA write on the same device completes. Much cheaper than a flush
 * when the rest of the store has much cached (a served volume's clients'
 * writes). Counted as a flush by the fault injection. */
int cv_io_sync_range (struct cv_io_queue *q, uint64_t off, uint64_t len);

#endif

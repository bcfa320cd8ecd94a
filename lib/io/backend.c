/* The backend interface (backend.h): choosing a backend, and dispatching each
 * call through its vtable. A queue that failed keeps its error, so that the
 * caller learns it once and makes a new queue. */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "io/io-internal.h"

/* Why io_uring cannot be used, for the messages. */
static const char *
uring_hint (int err)
{
  switch (err) {
  case -EPERM:
  case -ENOSYS:
  case -EACCES:
    return ": refused by a seccomp filter or kernel.io_uring_disabled";
  case -ENOMEM:
    return ": the ring does not fit under RLIMIT_MEMLOCK (ulimit -l)";
  default:
    return "";
  }
}

/* The backend for kind into *ops: CV_IO_AUTO becomes io_uring if it works
 * (probed until it once did), else the portable backend with one warning
 * per process. Returns 0, or the
 * -errno for which io_uring, asked for, does not work (logged). */
static int
choose (enum cv_io_kind kind, const struct cv_io_ops **ops)
{
  static bool warned, works;
  int err;

  *ops = &cv_io_posix_ops;
  if (kind == CV_IO_POSIX)
    return 0;
  /* Once it worked, it is not probed again: a server opening a thousand
   * volumes would make and tear down a ring for each. */
  if (__atomic_load_n (&works, __ATOMIC_RELAXED)
      || (err = cv_io_uring_probe ()) == 0) {
    __atomic_store_n (&works, true, __ATOMIC_RELAXED);
    *ops = &cv_io_uring_ops;
    return 0;
  }
  if (kind == CV_IO_URING) {
    cv_err ("io_uring is not available (%s%s); the portable backend (io=auto "
            "or io=posix) works without it",
            strerror (-err), uring_hint (err));
    return err;
  }
  if (!__atomic_exchange_n (&warned, true, __ATOMIC_RELAXED))
    cv_warn ("io_uring is not available (%s%s); using the portable backend",
             strerror (-err), uring_hint (err));
  return 0;
}

int
cv_io_open (const struct cv_io_open_opts *o, struct cv_io **out)
{
  const struct cv_io_ops *ops = &cv_io_rbd_ops;
  int rc = cv_rbd_is_path (o->path) ? 0 : choose (o->kind, &ops);

  if (rc < 0)
    return rc;
  if ((rc = ops->open (o, out)) == 0)
    cv_debug ("%s: I/O through the %s backend", o->path, ops->name);
  return rc;
}

int
cv_dev_open (const char *path, const char *what, bool readonly,
             const struct cv_rbd_opts *rbd, struct cv_dev **out)
{
  int rc;

  if (cv_rbd_is_path (path))
    return cv_rbd_dev_open (path, rbd, readonly, out);
  if ((rc = cv_dev_file_open (path, readonly, out)) < 0)
    cv_err ("cannot open %s %s: %s", what, path, strerror (-rc));
  return rc;
}

void
cv_io_close (struct cv_io *io)
{
  if (io)
    io->ops->close (io);
}

size_t
cv_io_chunk (const struct cv_io *io)
{
  return io->ops->chunk ? io->ops->chunk : 128 * 1024;
}

const char *
cv_io_name (const struct cv_io *io)
{
  return io->ops->name;
}

int
cv_io_size (struct cv_io *io, uint64_t *size)
{
  return io->ops->size (io, size);
}

int
cv_io_map (struct cv_io *io, const uint8_t **base, uint64_t *len)
{
  return io->ops->map ? io->ops->map (io, base, len) : -ENOTSUP;
}

/* A queue of backend ops on io (ops is io's own, or the portable one on
 * a file store). */
static int
queue_new (const struct cv_io_ops *ops, struct cv_io *io, unsigned depth,
           bool shared, struct cv_io_queue **out)
{
  int rc = ops->queue_new (io, depth, shared, out);

  if (rc == 0) {
    (*out)->ops = ops;
    (*out)->error = 0;
  }
  return rc;
}

int
cv_io_queue_new (struct cv_io *io, unsigned depth, struct cv_io_queue **out)
{
  return queue_new (io->ops, io, depth, false, out);
}

/* A thread whose ring cannot be made (RLIMIT_MEMLOCK, or io_uring taken
 * away since it was probed) still serves: its queue is a portable one on
 * the same file store, with one warning per process. */
int
cv_io_queue_new_shared (struct cv_io *io, unsigned depth,
                        struct cv_io_queue **out)
{
  static bool warned;
  int rc = queue_new (io->ops, io, depth, true, out);

  if (rc == 0 || io->ops != &cv_io_uring_ops || depth == 0)
    return rc;
  if (!__atomic_exchange_n (&warned, true, __ATOMIC_RELAXED))
    cv_warn ("io_uring: a worker thread's ring cannot be made (%s%s): such "
             "threads use the portable backend",
             strerror (-rc), uring_hint (rc));
  return queue_new (&cv_io_posix_ops, io, depth, false, out);
}

void
cv_io_queue_free (struct cv_io_queue *q)
{
  if (q)
    q->ops->queue_free (q);
}

unsigned
cv_io_space (const struct cv_io_queue *q)
{
  return q->error ? 0 : q->ops->space (q);
}

int
cv_io_queue_error (const struct cv_io_queue *q)
{
  return q->error;
}

int
cv_io_queue_read (struct cv_io_queue *q, void *buf, size_t len, uint64_t off,
                  uint64_t tag)
{
  return q->error ? q->error : q->ops->queue_read (q, buf, len, off, tag);
}

int
cv_io_queue_write (struct cv_io_queue *q, const void *buf, size_t len,
                   uint64_t off, bool fua, uint64_t tag)
{
  return q->error ? q->error : q->ops->queue_write (q, buf, len, off, fua, tag);
}

int
cv_io_queue_flush (struct cv_io_queue *q, uint64_t tag)
{
  return q->error ? q->error : q->ops->queue_flush (q, tag);
}

int
cv_io_submit (struct cv_io_queue *q)
{
  if (q->error)
    return q->error;
  int rc = q->ops->submit (q);
  if (rc < 0)
    q->error = rc;
  return rc;
}

/* Reap through the backend, keeping a failure of the queue itself. */
static int
reap (struct cv_io_queue *q, uint64_t *tag, bool wait)
{
  int rc;

  *tag = CV_IO_BROKEN;
  if (q->error)
    return q->error;
  rc = q->ops->reap (q, tag, wait);
  if (rc < 0 && rc != -ENOENT && rc != -EAGAIN && *tag == CV_IO_BROKEN)
    q->error = rc;
  return rc;
}

int
cv_io_reap (struct cv_io_queue *q, uint64_t *tag)
{
  return reap (q, tag, true);
}

int
cv_io_reap_ready (struct cv_io_queue *q, uint64_t *tag)
{
  return reap (q, tag, false);
}

/* Run the one request just queued (rc: how queueing went) on an idle queue. */
static int
run_one (struct cv_io_queue *q, int rc)
{
  uint64_t tag;

  if (rc == 0)
    rc = cv_io_submit (q);
  return rc < 0 ? rc : cv_io_reap (q, &tag);
}

/* The synchronous helpers refuse a busy queue: reaping would swallow the
 * completions of other requests. */
static bool
busy (const struct cv_io_queue *q)
{
  return !q->error && q->ops->space (q) != q->depth;
}

int
cv_io_pread (struct cv_io_queue *q, void *buf, size_t len, uint64_t off)
{
  return busy (q) ? -EBUSY
                  : run_one (q, cv_io_queue_read (q, buf, len, off, 0));
}

int
cv_io_pwrite (struct cv_io_queue *q, const void *buf, size_t len, uint64_t off,
              bool fua)
{
  return busy (q) ? -EBUSY
                  : run_one (q, cv_io_queue_write (q, buf, len, off, fua, 0));
}

int
cv_io_flush (struct cv_io_queue *q)
{
  return busy (q) ? -EBUSY : run_one (q, cv_io_queue_flush (q, 0));
}

int
cv_io_sync_range (struct cv_io_queue *q, uint64_t off, uint64_t len)
{
  if (busy (q))
    return -EBUSY;
  return run_one (q, q->error ? q->error
                              : q->ops->queue_sync_range (q, off, len, 0));
}

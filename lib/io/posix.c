/* The portable backend: preadv2, pwritev2 (RWF_DSYNC for FUA) and fdatasync
 * from the calling thread, for systems where io_uring is refused (container
 * seccomp profiles, kernel.io_uring_disabled). It keeps the queue/submit/reap
 * shape: queued requests wait in a FIFO and each is performed when it is
 * reaped, so a caller that decrypts what it reaps does so while the data is
 * still in the cache. It also injects faults for tests (struct
 * cv_io_faults). */
#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "io/io-internal.h"

struct posix_req {
  uint64_t tag;
  uint64_t off;
  uint8_t *buf;
  size_t len;
  unsigned op; /* CV_IO_OP_* */
  bool fua;
};

struct posix_queue {
  struct cv_io_queue base;
  struct cv_io_file *f;
  struct posix_req *reqs; /* a ring of base.depth entries */
  unsigned head;          /* the oldest queued request */
  unsigned n;             /* requests queued */
};

static int
posix_open (const struct cv_io_open_opts *o, struct cv_io **out)
{
  return cv_io_file_open (o, &cv_io_posix_ops, out);
}

static int
posix_queue_new (struct cv_io *io, unsigned depth, bool shared,
                 struct cv_io_queue **out)
{
  CLEANUP_FREE struct posix_queue *q = calloc (1, sizeof *q);

  if (depth == 0) {
    cv_err ("posix I/O queue: depth 0");
    return -EINVAL;
  }
  if (!q || !(q->reqs = calloc (depth, sizeof *q->reqs))) {
    cv_err ("posix I/O queue: out of memory for %u requests", depth);
    return -ENOMEM;
  }
  q->f = (struct cv_io_file *) io;
  q->base.depth = depth;
  *out = &STEAL (q)->base;
  return 0;
}

static void
posix_queue_free (struct cv_io_queue *base)
{
  struct posix_queue *q = (struct posix_queue *) base;

  free (q->reqs);
  free (q);
}

static unsigned
posix_space (const struct cv_io_queue *base)
{
  const struct posix_queue *q = (const struct posix_queue *) base;

  return q->base.depth - q->n;
}

static int
queue (struct cv_io_queue *base, unsigned op, void *buf, size_t len,
       uint64_t off, bool fua, uint64_t tag)
{
  struct posix_queue *q = (struct posix_queue *) base;

  if (q->n == q->base.depth)
    return -EBUSY;
  q->reqs[(q->head + q->n++) % q->base.depth] = (struct posix_req){
    .tag = tag, .off = off, .buf = buf, .len = len, .op = op, .fua = fua
  };
  return 0;
}

static int
posix_queue_read (struct cv_io_queue *q, void *buf, size_t len, uint64_t off,
                  uint64_t tag)
{
  return queue (q, CV_IO_OP_READ, buf, len, off, false, tag);
}

static int
posix_queue_write (struct cv_io_queue *q, const void *buf, size_t len,
                   uint64_t off, bool fua, uint64_t tag)
{
  /* A write's buffer is never written through. */
  return queue (q, CV_IO_OP_WRITE, (void *) buf, len, off, fua, tag);
}

static int
posix_queue_flush (struct cv_io_queue *q, uint64_t tag)
{
  return queue (q, CV_IO_OP_FLUSH, NULL, 0, 0, false, tag);
}

/* A flush with a length: of that range only. */
static int
posix_queue_sync_range (struct cv_io_queue *q, uint64_t off, uint64_t len,
                        uint64_t tag)
{
  return queue (q, CV_IO_OP_FLUSH, NULL, len, off, false, tag);
}

/* Requests are performed as they are reaped. */
static int
posix_submit (struct cv_io_queue *q)
{
  return 0;
}

/* The injected failure for an operation op about to be performed, or 0. */
static int
injected (struct cv_io_faults *f, unsigned op)
{
  unsigned long n, nth, count;

  if (!f || !(__atomic_load_n (&f->ops, __ATOMIC_RELAXED) & op))
    return 0;
  n = __atomic_add_fetch (&f->seen, 1, __ATOMIC_SEQ_CST);
  nth = __atomic_load_n (&f->nth, __ATOMIC_RELAXED);
  count = __atomic_load_n (&f->count, __ATOMIC_RELAXED);
  if (nth == 0 || n < nth || n - nth >= (count ? count : 1))
    return 0;
  int err = __atomic_load_n (&f->err, __ATOMIC_RELAXED);
  return err > 0 ? -err : -EIO;
}

/* Move all of r's bytes (fdio finishes short transfers), in pieces of at
 * most the fault settings' short_max, so that no system call moves more.
 * 0 or -errno (-EIO at end of file, or for a write that makes no progress). */
static int
transfer (const struct cv_io_file *f, const struct posix_req *r)
{
  size_t max
      = f->faults && f->faults->short_max ? f->faults->short_max : r->len;
  int rc = 0;

  for (size_t done = 0; rc == 0 && done < r->len; done += max) {
    size_t n = r->len - done < max ? r->len - done : max;
    if (r->op == CV_IO_OP_WRITE)
      rc = cv_pwrite_all (f->fd, r->buf + done, n, r->off + done,
                          r->fua ? RWF_DSYNC : 0);
    else
      rc = cv_pread_all (f->fd, r->buf + done, n, r->off + done, NULL);
  }
  return rc;
}

/* Perform the oldest queued request: every one is ready to be reaped. */
static int
posix_reap (struct cv_io_queue *base, uint64_t *tag, bool wait)
{
  struct posix_queue *q = (struct posix_queue *) base;
  struct posix_req r;
  int rc;

  if (q->n == 0)
    return -ENOENT;
  r = q->reqs[q->head];
  q->head = (q->head + 1) % q->base.depth;
  q->n--;
  *tag = r.tag;
  if ((rc = injected (q->f->faults, r.op)) < 0)
    return rc;
  if (r.op != CV_IO_OP_FLUSH)
    return transfer (q->f, &r);
  if (r.len)
    return cv_io_file_sync_range (&q->f->base, r.off, r.len);
  return fdatasync (q->f->fd) < 0 ? -errno : 0;
}

const struct cv_io_ops cv_io_posix_ops = {
  .name = "posix",
  .open = posix_open,
  .close = cv_io_file_close,
  .size = cv_io_file_size,
  .map = cv_io_file_map,
  .queue_new = posix_queue_new,
  .queue_free = posix_queue_free,
  .space = posix_space,
  .queue_read = posix_queue_read,
  .queue_write = posix_queue_write,
  .queue_flush = posix_queue_flush,
  .queue_sync_range = posix_queue_sync_range,
  .submit = posix_submit,
  .reap = posix_reap,
};

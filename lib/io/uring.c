/* The io_uring backend. Its engine, cv_ring (uring.h): a fixed table of
 * request slots over one liburing ring. The user_data of every SQE is the
 * index of its slot; a slot carries what is needed to requeue the rest of a
 * short or interrupted transfer. The backend (cv_io_uring_ops, at the end)
 * is a ring per queue over a file store, or the calling thread's one ring
 * for the queues it shares (cv_io_queue_new_shared).
 *
 * Writes to a buffered (not O_DIRECT) store are the exception: io_uring
 * cannot copy into ext4's page cache without blocking, so it hands every such
 * write to an io-wq worker thread (a wake-up and a switch per request, and
 * workers of all rings contending for the inode lock). They are plain
 * pwrite calls from the queueing thread instead, as nbdkit's file plugin
 * does; their results wait in the queue to be reaped. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <liburing.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "io/io-internal.h"
#include "io/uring.h"

/* Bytes per SQE: below the kernel's per-call limit (INT_MAX rounded down to a
 * page); longer requests continue as if the transfer were short. */
#define CV_RING_MAX_IO (1u << 30)

/* Consecutive -EAGAIN/-EINTR completions without progress after which a
 * request fails with that error instead of spinning (an O_NONBLOCK fd with
 * nothing to read gives -EAGAIN forever). */
#define CV_RING_MAX_RETRIES 1000

enum cv_ring_op { CV_OP_READ, CV_OP_WRITE, CV_OP_FDATASYNC };

struct cv_ring_slot {
  uint64_t tag;
  uint64_t off;
  uint8_t *buf;
  size_t len;
  size_t done;        /* bytes transferred so far */
  unsigned retries;   /* -EAGAIN/-EINTR since the last progress */
  unsigned next_free; /* free list link while the slot is unused */
  int fd;
  enum cv_ring_op op;
  bool dsync;
};

struct cv_ring {
  struct io_uring ring;
  struct cv_ring_slot *slots;
  unsigned depth;
  unsigned nfree;
  unsigned free_head;
  /* SQEs prepared and not yet taken by the kernel, as last known: submit
   * with none is a no-op that reads no ring memory (buffered writes never
   * queue any; see the top of the file). */
  unsigned unsent;
};

/* Why io_uring_queue_init may have failed, for the message. */
static const char *
init_hint (int err)
{
  switch (err) {
  case -EPERM:
  case -ENOSYS:
  case -EACCES:
    return "; io_uring may be disabled (sysctl kernel.io_uring_disabled, or a "
           "seccomp profile such as a container runtime's default)";
  case -ENOMEM:
    return "; the ring may not fit under RLIMIT_MEMLOCK (ulimit -l): each "
           "thread's ring counts against it without CAP_IPC_LOCK";
  case -EINVAL:
    return "; depth must be between 1 and the kernel's limit (32768)";
  default:
    return "";
  }
}

/* cv_ring_new; quiet: a ring the kernel refuses is not logged (the caller
 * falls back and says so). */
static int
ring_new (unsigned depth, bool quiet, struct cv_ring **out)
{
  CLEANUP_FREE struct cv_ring *r = calloc (1, sizeof *r);
  int err;

  if (!r) {
    cv_err ("io ring: out of memory");
    return -ENOMEM;
  }
  err = io_uring_queue_init (depth, &r->ring, 0);
  if (err < 0) {
    if (!quiet)
      cv_err ("io_uring_queue_init: depth %u: %s%s", depth, strerror (-err),
              init_hint (err));
    return err;
  }
  r->slots = calloc (depth, sizeof *r->slots);
  if (!r->slots) {
    io_uring_queue_exit (&r->ring);
    cv_err ("io ring: out of memory for %u request slots", depth);
    return -ENOMEM;
  }
  r->depth = depth;
  r->nfree = depth;
  for (unsigned i = 0; i < depth; i++)
    r->slots[i].next_free = i + 1;
  r->free_head = 0;
  *out = STEAL (r);
  return 0;
}

int
cv_ring_new (unsigned depth, struct cv_ring **out)
{
  return ring_new (depth, false, out);
}

/* Frees the ring; requests still queued are dropped. */
void
cv_ring_free (struct cv_ring *r)
{
  if (!r)
    return;
  io_uring_queue_exit (&r->ring);
  free (r->slots);
  free (r);
}

unsigned
cv_ring_space (const struct cv_ring *r)
{
  return r->nfree;
}

/* Requests the kernel holds: in use, minus those whose SQE it has not read. */
static unsigned
in_kernel (const struct cv_ring *r)
{
  return r->depth - r->nfree - io_uring_sq_ready (&r->ring);
}

/* Put an SQE for the rest of slot idx into the submission queue. Every slot
 * has at most one SQE unsubmitted and the queue has at least depth entries,
 * so there is always room. */
static void
prep_slot (struct cv_ring *r, unsigned idx)
{
  struct cv_ring_slot *s = &r->slots[idx];
  struct io_uring_sqe *sqe = io_uring_get_sqe (&r->ring);
  size_t rest = s->len - s->done;
  unsigned n = rest > CV_RING_MAX_IO ? CV_RING_MAX_IO : (unsigned) rest;

  assert (sqe != NULL);
  switch (s->op) {
  case CV_OP_READ:
    io_uring_prep_read (sqe, s->fd, s->buf + s->done, n, s->off + s->done);
    break;
  case CV_OP_WRITE:
    io_uring_prep_write (sqe, s->fd, s->buf + s->done, n, s->off + s->done);
    if (s->dsync)
      sqe->rw_flags = RWF_DSYNC;
    break;
  case CV_OP_FDATASYNC:
    io_uring_prep_fsync (sqe, s->fd, IORING_FSYNC_DATASYNC);
    break;
  }
  io_uring_sqe_set_data64 (sqe, idx);
  r->unsent++;
}

/* Take a free slot, fill it and queue its SQE. -EBUSY if none is free. */
static int
queue (struct cv_ring *r, enum cv_ring_op op, int fd, void *buf, size_t len,
       uint64_t off, bool dsync, uint64_t tag)
{
  unsigned idx;
  struct cv_ring_slot *s;

  if (r->nfree == 0)
    return -EBUSY;
  idx = r->free_head;
  s = &r->slots[idx];
  r->free_head = s->next_free;
  r->nfree--;
  *s = (struct cv_ring_slot){ .tag = tag,
                              .off = off,
                              .buf = buf,
                              .len = len,
                              .fd = fd,
                              .op = op,
                              .dsync = dsync };
  prep_slot (r, idx);
  return 0;
}

int
cv_ring_queue_read (struct cv_ring *r, int fd, void *buf, size_t len,
                    uint64_t off, uint64_t tag)
{
  return queue (r, CV_OP_READ, fd, buf, len, off, false, tag);
}

int
cv_ring_queue_write (struct cv_ring *r, int fd, const void *buf, size_t len,
                     uint64_t off, bool dsync, uint64_t tag)
{
  /* The slot's buffer is never written through for CV_OP_WRITE. */
  return queue (r, CV_OP_WRITE, fd, (void *) buf, len, off, dsync, tag);
}

int
cv_ring_queue_fdatasync (struct cv_ring *r, int fd, uint64_t tag)
{
  return queue (r, CV_OP_FDATASYNC, fd, NULL, 0, 0, false, tag);
}

/* Submit what is queued; what the kernel did not take stays queued and goes
 * with the next submit or reap. A refusal (-EAGAIN, -ENOMEM...) while the
 * kernel still holds requests is retried by cv_ring_reap; with none, nothing
 * could ever complete: the ring has failed, and that is logged here. */
int
cv_ring_submit (struct cv_ring *r)
{
  int n;

  if (r->unsent == 0)
    return 0;
  do
    n = io_uring_submit (&r->ring);
  while (n == -EINTR);
  r->unsent = io_uring_sq_ready (&r->ring);
  if (n < 0 && in_kernel (r) == 0) {
    cv_err ("io_uring_submit: %s", strerror (-n));
    return n;
  }
  return 0;
}

/* Account for the completion res of slot idx. Returns 1 if the slot was
 * requeued (short transfer, -EAGAIN, -EINTR), otherwise frees the slot, sets
 * *tag and returns the request's result: 0 or -errno. */
static int
complete (struct cv_ring *r, unsigned idx, int res, uint64_t *tag)
{
  struct cv_ring_slot *s = &r->slots[idx];
  int ret = 0;

  if ((res == -EAGAIN || res == -EINTR) && ++s->retries < CV_RING_MAX_RETRIES) {
    prep_slot (r, idx);
    return 1;
  }
  if (res < 0)
    ret = res;
  else if (s->op != CV_OP_FDATASYNC) {
    assert ((size_t) res <= s->len - s->done);
    if (res == 0 && s->done < s->len)
      ret = -EIO; /* end of file, or a write that makes no progress */
    else {
      s->done += res;
      if (s->done < s->len) {
        s->retries = 0;
        prep_slot (r, idx);
        return 1;
      }
    }
  }
  *tag = s->tag;
  s->next_free = r->free_head;
  r->free_head = idx;
  r->nfree++;
  return ret;
}

/* Submit what is queued (requeues included) while waiting, so the wait never
 * depends on an SQE the kernel has not seen. Without wait, -EAGAIN when no
 * completion is there yet. */
static int
reap (struct cv_ring *r, uint64_t *tag, bool wait)
{
  if (r->nfree == r->depth)
    return -ENOENT;
  *tag = CV_RING_BROKEN;
  for (;;) {
    struct io_uring_cqe *cqe = NULL;
    unsigned idx;
    int res, err;

    if (r->unsent > 0) {
      err = wait ? io_uring_submit_and_wait (&r->ring, 1)
                 : io_uring_submit (&r->ring);
      r->unsent = io_uring_sq_ready (&r->ring);
      if (err == -EINTR)
        continue;
      /* With requests in the kernel, wait for them and retry later. */
      if (err < 0 && in_kernel (r) == 0) {
        cv_err ("io_uring_enter: %s", strerror (-err));
        return err;
      }
    }
    err = wait ? io_uring_wait_cqe (&r->ring, &cqe)
               : io_uring_peek_cqe (&r->ring, &cqe);
    if (err == -EINTR)
      continue;
    if (err == -EAGAIN && !wait)
      return err;
    if (err < 0) {
      cv_err ("io_uring_wait_cqe: %s", strerror (-err));
      return err;
    }
    idx = (unsigned) io_uring_cqe_get_data64 (cqe);
    res = cqe->res;
    io_uring_cqe_seen (&r->ring, cqe);
    assert (idx < r->depth);
    err = complete (r, idx, res, tag);
    if (err != 1)
      return err;
  }
}

int
cv_ring_reap (struct cv_ring *r, uint64_t *tag)
{
  return reap (r, tag, true);
}

int
cv_ring_reap_ready (struct cv_ring *r, uint64_t *tag)
{
  return reap (r, tag, false);
}

/* Submit and reap the one request of an otherwise idle ring (the helpers
 * refuse a busy ring with -EBUSY: reaping here would swallow the completions
 * of other requests). Reap submits and waits in one system call. */
static int
run_one (struct cv_ring *r)
{
  uint64_t tag;

  return cv_ring_reap (r, &tag);
}

int
cv_ring_pread (struct cv_ring *r, int fd, void *buf, size_t len, uint64_t off)
{
  if (r->nfree != r->depth)
    return -EBUSY;
  int err = cv_ring_queue_read (r, fd, buf, len, off, 0);
  return err < 0 ? err : run_one (r);
}

int
cv_ring_pwrite (struct cv_ring *r, int fd, const void *buf, size_t len,
                uint64_t off, bool dsync)
{
  if (r->nfree != r->depth)
    return -EBUSY;
  int err = cv_ring_queue_write (r, fd, buf, len, off, dsync, 0);
  return err < 0 ? err : run_one (r);
}

int
cv_ring_fdatasync (struct cv_ring *r, int fd)
{
  if (r->nfree != r->depth)
    return -EBUSY;
  int err = cv_ring_queue_fdatasync (r, fd, 0);
  return err < 0 ? err : run_one (r);
}

int
cv_io_uring_probe (void)
{
  struct io_uring ring;
  struct io_uring_cqe *cqe = NULL;
  int err = io_uring_queue_init (2, &ring, 0);

  if (err < 0)
    return err;
  io_uring_prep_nop (io_uring_get_sqe (&ring));
  do
    err = io_uring_submit_and_wait (&ring, 1);
  while (err == -EINTR);
  if (err >= 0 && (err = io_uring_peek_cqe (&ring, &cqe)) == 0) {
    err = cqe->res < 0 ? cqe->res : 0;
    io_uring_cqe_seen (&ring, cqe);
  }
  io_uring_queue_exit (&ring);
  return err < 0 ? err : 0;
}

/* A ring that several queues use: the calling thread's, shared by its
 * shared queues (cv_io_queue_new_shared: one per volume the thread serves),
 * so that a thread costs one ring however many volumes it serves. The thread
 * holds one reference (dropped when it exits) and each queue one; the last
 * frees it. A ring that failed is set aside: the thread makes a new one for
 * its next queue. */
struct shared_ring {
  struct cv_ring *ring;
  unsigned refs; /* atomic: a volume may be closed from another thread */
  bool broken;
};

static __thread struct shared_ring *thread_ring;
static pthread_key_t thread_ring_key;
static pthread_once_t thread_ring_once = PTHREAD_ONCE_INIT;
static int thread_ring_key_err;

static void
shared_ring_put (struct shared_ring *sr)
{
  if (sr && __atomic_sub_fetch (&sr->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    cv_ring_free (sr->ring);
    free (sr);
  }
}

/* pthread_key destructor: the thread exits; its queues may live on. */
static void
thread_ring_exit (void *p)
{
  shared_ring_put (p);
}

static void
thread_ring_key_make (void)
{
  thread_ring_key_err = pthread_key_create (&thread_ring_key, thread_ring_exit);
}

/* The calling thread's ring, with a reference for the caller, made on first
 * use (or when the last one broke) with depth slots. NULL with -errno in
 * *err: logged, except the kernel's refusal to make the ring, for which
 * cv_io_queue_new_shared falls back. */
static struct shared_ring *
thread_ring_get (unsigned depth, int *err)
{
  struct shared_ring *sr = thread_ring;

  if (sr && !__atomic_load_n (&sr->broken, __ATOMIC_ACQUIRE)
      && sr->ring->depth >= depth) {
    __atomic_add_fetch (&sr->refs, 1, __ATOMIC_RELAXED);
    return sr;
  }
  pthread_once (&thread_ring_once, thread_ring_key_make);
  if (thread_ring_key_err) {
    cv_err ("io ring: cannot make per-thread state: %s",
            strerror (thread_ring_key_err));
    *err = -thread_ring_key_err;
    return NULL;
  }
  if (!(sr = calloc (1, sizeof *sr))) {
    cv_err ("io ring: out of memory");
    *err = -ENOMEM;
    return NULL;
  }
  if ((*err = ring_new (depth, true, &sr->ring)) < 0) {
    free (sr);
    return NULL;
  }
  sr->refs = 2; /* the thread's and the caller's */
  if ((*err = -pthread_setspecific (thread_ring_key, sr)) < 0) {
    cv_err ("io ring: cannot attach the ring to this thread: %s",
            strerror (-*err));
    cv_ring_free (sr->ring);
    free (sr);
    return NULL;
  }
  shared_ring_put (thread_ring); /* the old one: broken, or too small */
  thread_ring = sr;
  return sr;
}

/* The backend: a ring per queue, or the thread's ring for a shared queue;
 * every request names the store's fd. */
struct uring_queue {
  struct cv_io_queue base;
  struct cv_io_file *f;
  struct cv_ring *ring;
  struct shared_ring *shared; /* ring is shared->ring; NULL: its own */
  /* Buffered writes, done when queued (see the top of the file), and their
   * results: ndone of them wait to be reaped. */
  struct uring_done {
    uint64_t tag;
    int rc;
  } * done;
  unsigned ndone;
};

static_assert (CV_IO_BROKEN == CV_RING_BROKEN, "one value for a broken queue");

static int
uring_open (const struct cv_io_open_opts *o, struct cv_io **out)
{
  return cv_io_file_open (o, &cv_io_uring_ops, out);
}

static int
uring_queue_new (struct cv_io *io, unsigned depth, bool shared,
                 struct cv_io_queue **out)
{
  CLEANUP_FREE struct uring_queue *q = calloc (1, sizeof *q);
  int err = 0;

  if (!q || !(q->done = calloc (depth ? depth : 1, sizeof *q->done))) {
    cv_err ("io ring: out of memory");
    return -ENOMEM;
  }
  if (shared && depth > 0) {
    if ((q->shared = thread_ring_get (depth, &err)))
      q->ring = q->shared->ring;
  } else
    err = cv_ring_new (depth, &q->ring);
  if (err < 0) {
    free (q->done);
    return err;
  }
  q->f = (struct cv_io_file *) io;
  q->base.depth = depth;
  *out = &STEAL (q)->base;
  return 0;
}

static void
uring_queue_free (struct cv_io_queue *base)
{
  struct uring_queue *q = (struct uring_queue *) base;

  if (q->shared)
    shared_ring_put (q->shared);
  else
    cv_ring_free (q->ring);
  free (q->done);
  free (q);
}

static unsigned
uring_space (const struct cv_io_queue *base)
{
  const struct uring_queue *q = (const struct uring_queue *) base;

  return cv_ring_space (q->ring) - q->ndone;
}

static int
uring_queue_read (struct cv_io_queue *base, void *buf, size_t len, uint64_t off,
                  uint64_t tag)
{
  struct uring_queue *q = (struct uring_queue *) base;

  if (uring_space (base) == 0)
    return -EBUSY;
  return cv_ring_queue_read (q->ring, q->f->fd, buf, len, off, tag);
}

static int
uring_queue_write (struct cv_io_queue *base, const void *buf, size_t len,
                   uint64_t off, bool fua, uint64_t tag)
{
  struct uring_queue *q = (struct uring_queue *) base;

  if (uring_space (base) == 0)
    return -EBUSY;
  if (q->f->direct)
    return cv_ring_queue_write (q->ring, q->f->fd, buf, len, off, fua, tag);
  q->done[q->ndone++] = (struct uring_done){
    .tag = tag,
    .rc = cv_pwrite_all (q->f->fd, buf, len, off, fua ? RWF_DSYNC : 0),
  };
  return 0;
}

static int
uring_queue_flush (struct cv_io_queue *base, uint64_t tag)
{
  struct uring_queue *q = (struct uring_queue *) base;

  if (uring_space (base) == 0)
    return -EBUSY;
  return cv_ring_queue_fdatasync (q->ring, q->f->fd, tag);
}

/* Done at once, like a buffered write: sync_file_range blocks only this
 * thread, and io_uring would hand it to a worker anyway. */
static int
uring_queue_sync_range (struct cv_io_queue *base, uint64_t off, uint64_t len,
                        uint64_t tag)
{
  struct uring_queue *q = (struct uring_queue *) base;

  if (uring_space (base) == 0)
    return -EBUSY;
  q->done[q->ndone++] = (struct uring_done){
    .tag = tag,
    .rc = cv_io_file_sync_range (&q->f->base, off, len),
  };
  return 0;
}

static int
uring_submit (struct cv_io_queue *base)
{
  return cv_ring_submit (((struct uring_queue *) base)->ring);
}

/* Buffered writes first: they are done already. */
static int
uring_reap (struct cv_io_queue *base, uint64_t *tag, bool wait)
{
  struct uring_queue *q = (struct uring_queue *) base;

  if (q->ndone > 0) {
    q->ndone--;
    *tag = q->done[q->ndone].tag;
    return q->done[q->ndone].rc;
  }
  int rc
      = wait ? cv_ring_reap (q->ring, tag) : cv_ring_reap_ready (q->ring, tag);
  if (rc < 0 && *tag == CV_RING_BROKEN && q->shared)
    __atomic_store_n (&q->shared->broken, true, __ATOMIC_RELEASE);
  return rc;
}

const struct cv_io_ops cv_io_uring_ops = {
  .name = "io_uring",
  .open = uring_open,
  .close = cv_io_file_close,
  .size = cv_io_file_size,
  .map = cv_io_file_map,
  .queue_new = uring_queue_new,
  .queue_free = uring_queue_free,
  .space = uring_space,
  .queue_read = uring_queue_read,
  .queue_write = uring_queue_write,
  .queue_flush = uring_queue_flush,
  .queue_sync_range = uring_queue_sync_range,
  .submit = uring_submit,
  .reap = uring_reap,
};

/* The I/O backend interface (lib/io/backend.h), on both backends: batched
 * requests complete in full and each tag comes back once; end of file, a
 * full queue and an empty one are reported as documented. Then the portable
 * backend's fault injection: short transfers still move every byte, the nth
 * matching operation fails with the errno asked for and touches nothing,
 * counting is per operation kind and atomic across threads. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "io/backend.h"
#include "harness.h"
#include "pattern.h"

#define CHUNK (64 * 1024)
#define NCHUNKS 48
#define DEPTH 8

static char path[4096];

/* The test file, resized to len. */
static void
resize (off_t len)
{
  CLEANUP_CLOSE int fd = open (path, O_RDWR | O_CLOEXEC);

  CHECK (fd >= 0 && ftruncate (fd, len) == 0, "truncate %s", path);
}

/* len bytes at off of the test file, read directly. */
static void
peek (void *buf, size_t len, off_t off)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);

  CHECK (pread (fd, buf, len, off) == (ssize_t) len, "pread %s", path);
}

/* A store on the test file with backend kind (NULL if it cannot be made:
 * logged, and a failed check). */
static struct cv_io *
open_store (enum cv_io_kind kind, bool readonly, bool direct,
            struct cv_io_faults *f)
{
  struct cv_io_open_opts o = { .kind = kind,
                               .path = path,
                               .readonly = readonly,
                               .direct = direct,
                               .faults = f };
  struct cv_io *io = NULL;
  int err = cv_io_open (&o, &io);

  CHECK (err == 0, "open %s: %s: %s", path, strerror (-err), harness_logged ());
  return err == 0 ? io : NULL;
}

/* NCHUNKS requests through a DEPTH queue: queue while there is space, submit,
 * reap one (without waiting when ready is set, as long as it says -EAGAIN),
 * repeat. Every tag must come back exactly once. */
static void
run_batch (struct cv_io_queue *q, uint8_t *buf, bool write, bool fua,
           bool ready, unsigned seed)
{
  unsigned seen[NCHUNKS] = { 0 };
  unsigned next = 0, reaped = 0;

  while (reaped < NCHUNKS) {
    uint64_t tag = UINT64_MAX;
    int err;

    while (next < NCHUNKS && cv_io_space (q) > 0) {
      uint64_t off = (uint64_t) next * CHUNK;
      uint8_t *p = buf + (size_t) next * CHUNK;
      err = write ? cv_io_queue_write (q, p, CHUNK, off, fua, next)
                  : cv_io_queue_read (q, p, CHUNK, off, next);
      CHECK (err == 0, "queue chunk %u: %s", next, strerror (-err));
      next++;
    }
    err = cv_io_submit (q);
    CHECK (err == 0, "submit: %s", strerror (-err));
    if (ready) {
      while ((err = cv_io_reap_ready (q, &tag)) == -EAGAIN)
        ;
    } else
      err = cv_io_reap (q, &tag);
    if (err < 0 || tag >= NCHUNKS) {
      CHECK (0, "reap: %s, tag %" PRIu64, strerror (-err), tag);
      return;
    }
    seen[tag]++;
    reaped++;
    if (!write) {
      uint64_t off = tag * CHUNK;
      size_t bad = mismatch (buf + off, CHUNK, off, seed);
      CHECK (bad == CHUNK, "chunk %" PRIu64 " differs at byte %zu", tag, bad);
    }
  }
  for (unsigned i = 0; i < NCHUNKS; i++)
    CHECK (seen[i] == 1, "tag %u reaped %u times", i, seen[i]);
  uint64_t tag;
  CHECK (cv_io_reap (q, &tag) == -ENOENT, "queue should be empty");
  CHECK (cv_io_reap_ready (q, &tag) == -ENOENT, "queue should be empty");
  CHECK (cv_io_space (q) == DEPTH, "space %u", cv_io_space (q));
}

static void
test_batch (struct cv_io_queue *q, uint8_t *out, uint8_t *in)
{
  const size_t len = (size_t) NCHUNKS * CHUNK;

  fill (out, len, 0, 2);
  run_batch (q, out, true, false, false, 2);
  memset (in, 0, len);
  run_batch (q, in, false, false, false, 2);

  /* FUA writes, reaped without waiting. */
  fill (out, len, 0, 3);
  run_batch (q, out, true, true, true, 3);
  memset (in, 0, len);
  run_batch (q, in, false, false, true, 3);
}

/* Reads past the end fail with -EIO; a full queue refuses more (and the
 * synchronous helpers refuse to run on it); flushes complete by tag. */
static void
test_edges (struct cv_io *io, struct cv_io_queue *q, uint8_t *buf)
{
  uint64_t size = 0, tag = 0;

  CHECK (cv_io_size (io, &size) == 0 && size == (uint64_t) NCHUNKS * CHUNK,
         "size %" PRIu64, size);
  harness_log_clear ();
  CHECK (cv_io_pread (q, buf, 4096, size) == -EIO, "read at end of file");
  CHECK (cv_io_pread (q, buf, 8192, size - 4096) == -EIO, "read across it");
  CHECK (cv_io_pread (q, buf, 4096, size - 4096) == 0, "read up to it");
  CHECK (harness_logged ()[0] == '\0', "request errors are not logged: %s",
         harness_logged ());

  CHECK (cv_io_reap (q, &tag) == -ENOENT, "reap on an empty queue");
  for (unsigned i = 0; i < DEPTH; i++)
    CHECK (cv_io_queue_flush (q, 100 + i) == 0, "queue flush %u", i);
  CHECK (cv_io_space (q) == 0, "space %u", cv_io_space (q));
  CHECK (cv_io_queue_flush (q, 99) == -EBUSY, "flush beyond depth");
  CHECK (cv_io_queue_read (q, buf, 512, 0, 99) == -EBUSY, "read");
  CHECK (cv_io_queue_write (q, buf, 512, 0, false, 99) == -EBUSY, "write");
  CHECK (cv_io_pread (q, buf, 512, 0) == -EBUSY, "pread on a busy queue");
  CHECK (cv_io_flush (q) == -EBUSY, "flush on a busy queue");
  CHECK (cv_io_submit (q) == 0, "submit");
  unsigned seen = 0;
  for (unsigned i = 0; i < DEPTH; i++) {
    int err = cv_io_reap (q, &tag);
    CHECK (err == 0 && tag >= 100 && tag < 100 + DEPTH, "reap %u: %d %" PRIu64,
           i, err, tag);
    seen |= 1u << (tag - 100);
  }
  CHECK (seen == (1u << DEPTH) - 1, "flush tags %#x", seen);
  CHECK (cv_io_flush (q) == 0, "flush");
  CHECK (cv_io_queue_error (q) == 0, "queue still good");
}

/* What a write on a read-only store does: fails, by tag. */
static void
test_readonly (enum cv_io_kind kind, uint8_t *buf)
{
  struct cv_io *io = open_store (kind, true, false, NULL);
  struct cv_io_queue *q = NULL;

  if (!io || cv_io_queue_new (io, DEPTH, &q) < 0) {
    CHECK (0, "read-only store");
    cv_io_close (io);
    return;
  }
  CHECK (cv_io_pwrite (q, buf, 4096, 0, false) == -EBADF, "write refused");
  CHECK (cv_io_pread (q, buf, 4096, 0) == 0, "read works");
  cv_io_queue_free (q);
  cv_io_close (io);
}

static void
test_backend (enum cv_io_kind kind, bool direct)
{
  const size_t len = (size_t) NCHUNKS * CHUNK;
  void *outp = NULL, *inp = NULL;
  struct cv_io *io;
  struct cv_io_queue *q = NULL;

  resize ((off_t) len);
  if (!(io = open_store (kind, false, direct, NULL)))
    return;
  CHECK (strcmp (cv_io_name (io), kind == CV_IO_URING ? "io_uring" : "posix")
             == 0,
         "name %s", cv_io_name (io));
  CHECK (cv_io_queue_new (io, DEPTH, &q) == 0, "queue");
  CHECK (posix_memalign (&outp, 4096, len) == 0, "memalign");
  CHECK (posix_memalign (&inp, 4096, len) == 0, "memalign");
  CLEANUP_FREE uint8_t *out = outp;
  CLEANUP_FREE uint8_t *in = inp;
  if (q && out && in) {
    test_batch (q, out, in);
    test_edges (io, q, in);
  }
  cv_io_queue_free (q);
  cv_io_close (io);
  if (!direct)
    test_readonly (kind, out);
}

/* Opening: a missing file and something that has no size are reported. */
static void
test_open_errors (void)
{
  struct cv_io_open_opts o
      = { .kind = CV_IO_POSIX, .path = "/nonexistent/cryptvol" };
  struct cv_io *io = NULL;
  struct cv_io_queue *q = NULL;
  uint64_t size;

  harness_log_clear ();
  CHECK (cv_io_open (&o, &io) == -ENOENT, "missing file");
  CHECK (strstr (harness_logged (), "cannot open volume /nonexistent") != NULL,
         "log: %s", harness_logged ());
  o.path = "/dev/null";
  CHECK (cv_io_open (&o, &io) == 0, "open /dev/null");
  harness_log_clear ();
  CHECK (cv_io_size (io, &size) == -EINVAL, "size of /dev/null");
  CHECK (strstr (harness_logged (), "not a regular file or block device")
             != NULL,
         "log: %s", harness_logged ());
  CHECK (cv_io_queue_new (io, 0, &q) == -EINVAL, "depth 0");
  cv_io_close (io);
}

/* Short transfers: every system call moves at most short_max bytes; the
 * request still completes in full, at the right place. */
static void
test_short (void)
{
  const size_t len = 3 * CHUNK + 512;
  struct cv_io_faults f = { .short_max = 4097 };
  struct cv_io *io = open_store (CV_IO_POSIX, false, false, &f);
  struct cv_io_queue *q = NULL;
  CLEANUP_FREE uint8_t *out = malloc (len);
  CLEANUP_FREE uint8_t *in = calloc (1, len);

  if (!io || cv_io_queue_new (io, DEPTH, &q) < 0 || !out || !in) {
    CHECK (0, "setup");
    cv_io_close (io);
    return;
  }
  fill (out, len, 1000, 7);
  CHECK (cv_io_pwrite (q, out, len, 1000, false) == 0, "short writes");
  f.short_max = 1;
  CHECK (cv_io_pread (q, in, 9000, 1000) == 0, "one-byte reads");
  f.short_max = 333;
  CHECK (cv_io_pread (q, in + 9000, len - 9000, 1000 + 9000) == 0,
         "short reads");
  size_t bad = mismatch (in, len, 1000, 7);
  CHECK (bad == len, "read back differs at byte %zu", bad);
  CHECK (f.seen == 0, "no operation counted without ops: %lu", f.seen);
  cv_io_queue_free (q);
  cv_io_close (io);
}

/* The nth matching operation fails (and count - 1 after it), before touching
 * the file; other kinds are not counted; err 0 means EIO. */
static void
test_nth (void)
{
  struct cv_io_faults f = { .ops = CV_IO_OP_WRITE, .err = ENOSPC };
  struct cv_io *io = open_store (CV_IO_POSIX, false, false, &f);
  struct cv_io_queue *q = NULL;
  uint8_t out[4096], in[4096];
  uint64_t tag;
  int rc[6];

  if (!io || cv_io_queue_new (io, DEPTH, &q) < 0) {
    CHECK (0, "setup");
    cv_io_close (io);
    return;
  }
  memset (out, 0, sizeof out);
  for (unsigned i = 0; i < 6; i++)
    CHECK (cv_io_pwrite (q, out, sizeof out, i * 4096, false) == 0, "zero %u",
           i);
  CHECK (f.seen == 6, "seen %lu", f.seen);
  f.seen = 0;
  f.nth = 3;
  /* Reads and flushes between writes are not counted. */
  CHECK (cv_io_pread (q, in, sizeof in, 0) == 0, "read");
  CHECK (cv_io_flush (q) == 0, "flush");
  fill (out, sizeof out, 0, 8);
  for (unsigned i = 0; i < 6; i++)
    CHECK (cv_io_queue_write (q, out, sizeof out, i * 4096, false, i) == 0,
           "queue %u", i);
  CHECK (cv_io_submit (q) == 0, "submit");
  for (unsigned i = 0; i < 6; i++) {
    int err = cv_io_reap (q, &tag);
    CHECK (tag < 6, "tag %" PRIu64, tag);
    if (tag < 6)
      rc[tag] = err;
  }
  CHECK (rc[2] == -ENOSPC, "third write: %d", rc[2]);
  for (unsigned i = 0; i < 6; i++)
    if (i != 2)
      CHECK (rc[i] == 0, "write %u: %d", i, rc[i]);
  CHECK (f.seen == 6, "seen %lu", f.seen);
  peek (in, sizeof in, 2 * 4096);
  static const uint8_t zero[4096];
  CHECK (memcmp (in, zero, sizeof in) == 0, "failed write touched the file");

  /* Two in a row, with the default errno; restarted by setting seen. */
  f = (struct cv_io_faults){ .ops = CV_IO_OP_READ | CV_IO_OP_FLUSH,
                             .nth = 2,
                             .count = 2 };
  CHECK (cv_io_pread (q, in, sizeof in, 0) == 0, "read 1");
  CHECK (cv_io_flush (q) == -EIO, "flush 2 fails");
  CHECK (cv_io_pread (q, in, sizeof in, 0) == -EIO, "read 3 fails");
  CHECK (cv_io_pread (q, in, sizeof in, 0) == 0, "read 4");
  CHECK (cv_io_pwrite (q, out, sizeof out, 0, true) == 0, "write not counted");
  f.seen = 0;
  CHECK (cv_io_pread (q, in, sizeof in, 0) == 0, "read 1 again");
  CHECK (cv_io_pread (q, in, sizeof in, 0) == -EIO, "read 2 fails again");
  f.nth = 0;
  CHECK (cv_io_pread (q, in, sizeof in, 0) == 0, "nth 0: no failure");
  CHECK (f.seen == 3, "seen %lu", f.seen);
  CHECK (cv_io_queue_error (q) == 0, "request failures leave the queue good");
  cv_io_queue_free (q);
  cv_io_close (io);
}

#define THREADS 4
#define PER_THREAD 200

struct worker {
  struct cv_io *io;
  int failed; /* requests that failed */
};

static void *
worker (void *arg)
{
  struct worker *w = arg;
  struct cv_io_queue *q = NULL;
  uint8_t buf[512];

  if (cv_io_queue_new (w->io, DEPTH, &q) < 0) {
    w->failed = -1;
    return NULL;
  }
  for (unsigned i = 0; i < PER_THREAD; i++)
    if (cv_io_pread (q, buf, sizeof buf, i * 512) < 0)
      w->failed++;
  cv_io_queue_free (q);
  return NULL;
}

/* Threads share the count: exactly count operations fail in all. */
static void
test_threads (void)
{
  struct cv_io_faults f
      = { .ops = CV_IO_OP_READ, .nth = 100, .count = 50, .err = EIO };
  struct cv_io *io = open_store (CV_IO_POSIX, true, false, &f);
  struct worker w[THREADS];
  pthread_t th[THREADS];
  int failed = 0;

  if (!io)
    return;
  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (struct worker){ .io = io };
    CHECK (pthread_create (&th[i], NULL, worker, &w[i]) == 0, "thread");
  }
  for (unsigned i = 0; i < THREADS; i++) {
    pthread_join (th[i], NULL);
    failed += w[i].failed;
  }
  CHECK (f.seen == THREADS * PER_THREAD, "seen %lu", f.seen);
  CHECK (failed == 50, "%d reads failed, expected 50", failed);
  cv_io_close (io);
}

int
main (void)
{
  const char *dir = getenv ("TMPDIR");
  int fd;

  harness_init ();
  snprintf (path, sizeof path, "%s/test-io-backend.XXXXXX",
            dir && *dir ? dir : "/tmp");
  if ((fd = mkstemp (path)) < 0) {
    perror (path);
    return 1;
  }
  close (fd);

  test_open_errors ();
  test_backend (CV_IO_POSIX, false);
  test_short ();
  test_nth ();
  test_threads ();

  /* io_uring and O_DIRECT where this system has them. */
  struct cv_io_open_opts o = { .kind = CV_IO_URING, .path = path };
  struct cv_io *io = NULL;
  harness_log_clear ();
  if (cv_io_open (&o, &io) == 0) {
    cv_io_close (io);
    test_backend (CV_IO_URING, false);
  } else
    printf ("note: io_uring cases skipped: %s", harness_logged ());
  o.kind = CV_IO_POSIX;
  o.direct = true;
  if (cv_io_open (&o, &io) == 0) {
    cv_io_close (io);
    test_backend (CV_IO_POSIX, true);
    if (o.kind = CV_IO_URING, cv_io_open (&o, &io) == 0) {
      cv_io_close (io);
      test_backend (CV_IO_URING, true);
    }
  } else
    printf ("note: no O_DIRECT in %s; direct cases skipped\n", path);
  unlink (path);
  return harness_done ("test-io-backend");
}

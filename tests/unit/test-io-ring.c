/* cv_ring: batched reads and writes complete in full, short transfers are
 * finished internally, and errors come back as the request's -errno. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "io/uring.h"
#include "harness.h"
#include "pattern.h"

#define CHUNK (64 * 1024)
#define NCHUNKS 64
#define DEPTH 16

/* A new empty file in $TMPDIR (or /tmp); its name goes to path so that it
 * can be reopened (O_DIRECT) and removed at the end. */
static int
make_tmp (char *path, size_t size)
{
  const char *dir = getenv ("TMPDIR");
  int fd;

  snprintf (path, size, "%s/test-io-ring.XXXXXX", dir && *dir ? dir : "/tmp");
  fd = mkstemp (path);
  if (fd < 0) {
    perror (path);
    exit (1);
  }
  return fd;
}

static void
test_new_errors (void)
{
  struct cv_ring *r = NULL;

  harness_log_clear ();
  CHECK (cv_ring_new (0, &r) == -EINVAL, "depth 0 must be refused");
  CHECK (strstr (harness_logged (), "io_uring_queue_init: depth 0") != NULL,
         "log: %s", harness_logged ());
  harness_log_clear ();
  CHECK (cv_ring_new (1u << 20, &r) == -EINVAL, "depth 2^20 is above limit");
  CHECK (strstr (harness_logged (), "io_uring_queue_init") != NULL, "log: %s",
         harness_logged ());
  harness_log_clear ();
}

static void
test_roundtrip (struct cv_ring *r, int fd)
{
  const size_t len = 1024 * 1024 + 512;
  CLEANUP_FREE uint8_t *out = malloc (len);
  CLEANUP_FREE uint8_t *in = calloc (1, len);
  size_t bad;

  fill (out, len, 4096, 1);
  CHECK (cv_ring_pwrite (r, fd, out, len, 4096, false) == 0, "pwrite");
  CHECK (cv_ring_pread (r, fd, in, len, 4096) == 0, "pread");
  bad = mismatch (in, len, 4096, 1);
  CHECK (bad == len, "read back differs at byte %zu", bad);

  /* Zero-length requests complete without moving anything. */
  CHECK (cv_ring_pread (r, fd, in, 0, 0) == 0, "empty read");
  CHECK (cv_ring_pwrite (r, fd, out, 0, 0, false) == 0, "empty write");
}

/* NCHUNKS requests through a DEPTH ring: queue while there is space, submit
 * the batch, reap one, repeat. Every tag must come back exactly once. */
static void
run_batch (struct cv_ring *r, int fd, uint8_t *buf, bool write, bool dsync,
           unsigned seed)
{
  unsigned seen[NCHUNKS] = { 0 };
  unsigned next = 0, reaped = 0;

  while (reaped < NCHUNKS) {
    uint64_t tag = UINT64_MAX;
    int err;

    while (next < NCHUNKS && cv_ring_space (r) > 0) {
      uint64_t off = (uint64_t) next * CHUNK;
      uint8_t *p = buf + (size_t) next * CHUNK;
      err = write ? cv_ring_queue_write (r, fd, p, CHUNK, off, dsync, next)
                  : cv_ring_queue_read (r, fd, p, CHUNK, off, next);
      CHECK (err == 0, "queue chunk %u: %s", next, strerror (-err));
      next++;
    }
    err = cv_ring_submit (r);
    CHECK (err == 0, "submit: %s", strerror (-err));
    err = cv_ring_reap (r, &tag);
    CHECK (err == 0, "reap: %s", strerror (-err));
    if (err < 0 || tag >= NCHUNKS) {
      CHECK (0, "reap returned tag %" PRIu64, tag);
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
  CHECK (cv_ring_reap (r, &tag) == -ENOENT, "ring should be empty");
  CHECK (cv_ring_space (r) == DEPTH, "space %u", cv_ring_space (r));
}

static void
test_batch (struct cv_ring *r, int fd)
{
  const size_t len = (size_t) NCHUNKS * CHUNK;
  CLEANUP_FREE uint8_t *out = malloc (len);
  CLEANUP_FREE uint8_t *in = calloc (1, len);

  fill (out, len, 0, 2);
  run_batch (r, fd, out, true, false, 2);
  run_batch (r, fd, in, false, false, 2);

  /* Again with RWF_DSYNC writes. */
  fill (out, len, 0, 3);
  memset (in, 0, len);
  run_batch (r, fd, out, true, true, 3);
  run_batch (r, fd, in, false, false, 3);
}

static void
test_eof (struct cv_ring *r, int fd)
{
  uint8_t out[8192], in[16384];

  CHECK (ftruncate (fd, 0) == 0, "ftruncate");
  fill (out, sizeof out, 0, 4);
  CHECK (cv_ring_pwrite (r, fd, out, sizeof out, 0, false) == 0, "pwrite");
  harness_log_clear ();

  /* Entirely past the end. */
  CHECK (cv_ring_pread (r, fd, in, 4096, 8192) == -EIO, "read at EOF");
  CHECK (cv_ring_pread (r, fd, in, 4096, 1 << 20) == -EIO, "read past EOF");
  /* Straddling the end: a short read of what exists, then 0. */
  memset (in, 0, sizeof in);
  CHECK (cv_ring_pread (r, fd, in, sizeof in, 4096) == -EIO, "straddle EOF");
  CHECK (mismatch (in, 4096, 4096, 4) == 4096, "data before EOF delivered");
  /* Up to the end exactly is fine. */
  CHECK (cv_ring_pread (r, fd, in, 4096, 4096) == 0, "read to EOF");

  /* Tagged through the batch interface too. */
  uint64_t tag = 0;
  CHECK (cv_ring_queue_read (r, fd, in, 4096, 4096, 7) == 0, "queue");
  CHECK (cv_ring_queue_read (r, fd, in + 4096, 8192, 6144, 8) == 0, "queue");
  CHECK (cv_ring_submit (r) == 0, "submit");
  for (int i = 0; i < 2; i++) {
    int err = cv_ring_reap (r, &tag);
    if (tag == 7)
      CHECK (err == 0, "tag 7: %s", strerror (-err));
    else
      CHECK (tag == 8 && err == -EIO, "tag %" PRIu64 ": %d", tag, err);
  }
  CHECK (harness_logged ()[0] == '\0', "request errors are not logged: %s",
         harness_logged ());
}

static void
test_sync (struct cv_ring *r, int fd)
{
  uint8_t out[4096], in[4096];
  uint64_t tag = 0;

  CHECK (cv_ring_fdatasync (r, fd) == 0, "fdatasync");
  CHECK (cv_ring_queue_fdatasync (r, fd, 42) == 0, "queue fdatasync");
  CHECK (cv_ring_reap (r, &tag) == 0 && tag == 42, "reap fdatasync");

  fill (out, sizeof out, 12288, 5);
  CHECK (cv_ring_pwrite (r, fd, out, sizeof out, 12288, true) == 0,
         "dsync pwrite");
  CHECK (cv_ring_pread (r, fd, in, sizeof in, 12288) == 0, "pread");
  CHECK (memcmp (in, out, sizeof in) == 0, "dsync data read back");
}

static void
test_bad_fd (struct cv_ring *r)
{
  uint8_t buf[512] = { 0 };
  int fds[2];

  harness_log_clear ();
  CHECK (cv_ring_pread (r, -1, buf, sizeof buf, 0) == -EBADF, "fd -1");
  CHECK (pipe (fds) == 0, "pipe");
  close (fds[0]);
  close (fds[1]);
  CHECK (cv_ring_pread (r, fds[0], buf, sizeof buf, 0) == -EBADF,
         "closed fd read");
  CHECK (cv_ring_pwrite (r, fds[1], buf, sizeof buf, 0, false) == -EBADF,
         "closed fd write");
  CHECK (cv_ring_fdatasync (r, -1) == -EBADF, "fdatasync fd -1");
  CHECK (harness_logged ()[0] == '\0', "request errors are not logged: %s",
         harness_logged ());
}

static void
test_busy (struct cv_ring *r, int fd)
{
  uint8_t buf[512];
  uint64_t tag;
  unsigned seen[DEPTH] = { 0 };

  CHECK (cv_ring_reap (r, &tag) == -ENOENT, "reap on empty ring");
  for (unsigned i = 0; i < DEPTH; i++)
    CHECK (cv_ring_queue_fdatasync (r, fd, i) == 0, "queue %u", i);
  CHECK (cv_ring_space (r) == 0, "space %u", cv_ring_space (r));
  CHECK (cv_ring_queue_fdatasync (r, fd, 99) == -EBUSY, "queue beyond depth");
  CHECK (cv_ring_queue_read (r, fd, buf, 512, 0, 99) == -EBUSY, "read");
  CHECK (cv_ring_queue_write (r, fd, buf, 512, 0, false, 99) == -EBUSY,
         "write");
  /* A synchronous helper must not swallow queued completions. */
  CHECK (cv_ring_pread (r, fd, buf, 512, 0) == -EBUSY, "pread on busy ring");
  CHECK (cv_ring_fdatasync (r, fd) == -EBUSY, "fdatasync on busy ring");
  CHECK (cv_ring_submit (r) == 0, "submit");
  for (unsigned i = 0; i < DEPTH; i++) {
    int err = cv_ring_reap (r, &tag);
    CHECK (err == 0 && tag < DEPTH, "reap %u: %d tag %" PRIu64, i, err, tag);
    if (err == 0 && tag < DEPTH)
      seen[tag]++;
  }
  for (unsigned i = 0; i < DEPTH; i++)
    CHECK (seen[i] == 1, "tag %u reaped %u times", i, seen[i]);
  CHECK (cv_ring_reap (r, &tag) == -ENOENT, "ring drained");
}

/* A read that straddles the end of the file is short. If the file grows
 * before the rest is asked for, the request completes in full: submit the
 * read (served from the page cache, the kernel completes it short while
 * submitting), extend the file, then reap, which requeues the rest. */
static void
test_short_read (struct cv_ring *r, int fd)
{
  uint8_t out[16384], in[16384];
  uint64_t tag = 0;

  fill (out, sizeof out, 0, 6);
  memset (in, 0, sizeof in);
  CHECK (ftruncate (fd, 0) == 0, "ftruncate");
  CHECK (cv_ring_pwrite (r, fd, out, 4096, 0, false) == 0, "pwrite");
  CHECK (cv_ring_queue_read (r, fd, in, sizeof in, 0, 1) == 0, "queue");
  CHECK (cv_ring_submit (r) == 0, "submit");
  CHECK (cv_pwrite_all (fd, out + 4096, sizeof out - 4096, 4096, 0) == 0,
         "extend");
  CHECK (cv_ring_reap (r, &tag) == 0 && tag == 1, "short read completed");
  CHECK (memcmp (in, out, sizeof in) == 0, "all of it read, in place");
}

/* RLIMIT_FSIZE cuts a write short at the limit; the rest then fails with
 * -EFBIG. What fitted must be on disk, at the right place. */
static void
test_short_write (struct cv_ring *r, int fd)
{
  uint8_t out[16384], in[8192];
  struct rlimit old, lim = { .rlim_cur = 8192 };

  CHECK (getrlimit (RLIMIT_FSIZE, &old) == 0, "getrlimit");
  lim.rlim_max = old.rlim_max;
  CHECK (ftruncate (fd, 0) == 0, "ftruncate");
  fill (out, sizeof out, 4096, 9);
  signal (SIGXFSZ, SIG_IGN);
  CHECK (setrlimit (RLIMIT_FSIZE, &lim) == 0, "setrlimit");
  harness_log_clear ();
  int err = cv_ring_pwrite (r, fd, out, sizeof out, 4096, false);
  CHECK (setrlimit (RLIMIT_FSIZE, &old) == 0, "setrlimit");
  signal (SIGXFSZ, SIG_DFL);
  CHECK (err == -EFBIG, "write beyond RLIMIT_FSIZE: %d", err);
  CHECK (harness_logged ()[0] == '\0', "not logged: %s", harness_logged ());
  CHECK (cv_pread_all (fd, in, sizeof in, 0, NULL) == 0, "file is 8192 bytes");
  CHECK (mismatch (in + 4096, 4096, 4096, 9) == 4096, "first part written");
}

static void
test_direct (struct cv_ring *r, const char *path)
{
  const size_t len = 256 * 1024;
  CLEANUP_CLOSE int fd = open (path, O_RDWR | O_DIRECT);
  void *outp = NULL, *inp = NULL;

  if (fd < 0) {
    printf ("note: O_DIRECT on %s: %s; O_DIRECT case skipped\n", path,
            strerror (errno));
    return;
  }
  CHECK (posix_memalign (&outp, 4096, len) == 0, "memalign");
  CHECK (posix_memalign (&inp, 4096, len) == 0, "memalign");
  CLEANUP_FREE uint8_t *out = outp;
  CLEANUP_FREE uint8_t *in = inp;
  fill (out, len, 65536, 8);
  memset (in, 0, len);
  CHECK (cv_ring_pwrite (r, fd, out, len, 65536, false) == 0, "direct write");
  CHECK (cv_ring_pwrite (r, fd, out, 4096, 65536, true) == 0,
         "direct dsync write");
  CHECK (cv_ring_pread (r, fd, in, len, 65536) == 0, "direct read");
  CHECK (memcmp (in, out, len) == 0, "direct data read back");
}

int
main (void)
{
  struct cv_ring *r = NULL;
  char path[4096];
  CLEANUP_CLOSE int fd = -1;
  int err;

  harness_init ();
  test_new_errors ();

  err = cv_ring_new (DEPTH, &r);
  if (err < 0) {
    /* Already logged with the reason (io_uring disabled, ...). */
    fprintf (stderr, "%s", harness_logged ());
    printf ("io_uring unavailable: %s\n", strerror (-err));
    return err == -EPERM || err == -ENOSYS ? 77 : 1;
  }
  CHECK (cv_ring_space (r) == DEPTH, "space %u", cv_ring_space (r));

  fd = make_tmp (path, sizeof path);
  test_roundtrip (r, fd);
  test_batch (r, fd);
  test_sync (r, fd);
  test_eof (r, fd);
  test_bad_fd (r);
  test_busy (r, fd);
  test_short_read (r, fd);
  test_short_write (r, fd);
  test_direct (r, path);
  unlink (path);

  cv_ring_free (r);
  return harness_done ("test-io-ring");
}

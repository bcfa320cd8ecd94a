/* Whole fd transfers (lib/common/fdio.c): data lands where asked, reads stop
 * short only at end of file, pipes deliver in pieces and are read whole, and
 * each failure comes back as its errno. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "harness.h"

static void
fill (uint8_t *buf, size_t len, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t) (i * 31 + seed);
}

static bool
all_zero (const uint8_t *buf, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (buf[i])
      return false;
  return true;
}

/* Positional: a write at an offset reads back there, and leaves the rest. */
static void
test_positional (int fd)
{
  uint8_t out[10000], in[10000] = { 0 };
  size_t got = 1;

  fill (out, sizeof out, 1);
  CHECK (ftruncate (fd, 0) == 0, "ftruncate");
  CHECK (cv_pwrite_all (fd, out, sizeof out, 4096, 0) == 0, "pwrite");
  CHECK (cv_pwrite_all (fd, out, 1, 0, RWF_DSYNC) == 0, "pwrite RWF_DSYNC");
  CHECK (cv_pread_all (fd, in, sizeof in, 4096, NULL) == 0, "pread");
  CHECK (memcmp (in, out, sizeof in) == 0, "read back what was written");
  CHECK (cv_pread_all (fd, in, 4095, 1, &got) == 0 && got == 4095,
         "pread of the hole: got %zu", got);
  CHECK (all_zero (in, 4095), "the hole reads as zeros");
  CHECK (cv_pread_all (fd, in, 0, 0, NULL) == 0, "empty read");
  CHECK (cv_pwrite_all (fd, out, 0, 0, 0) == 0, "empty write");
}

/* At end of file a read stops short: with got it says how much, without it
 * the short read is -EIO. */
static void
test_eof (int fd)
{
  uint8_t out[100], in[200];
  size_t got = 0;

  fill (out, sizeof out, 2);
  CHECK (ftruncate (fd, 0) == 0, "ftruncate");
  CHECK (cv_pwrite_all (fd, out, sizeof out, 0, 0) == 0, "pwrite");
  CHECK (cv_pread_all (fd, in, sizeof in, 0, &got) == 0, "pread to EOF");
  CHECK (got == 100, "read %zu bytes, want 100", got);
  CHECK (memcmp (in, out, 100) == 0, "the bytes before EOF");
  CHECK (cv_pread_all (fd, in, sizeof in, 60, &got) == 0 && got == 40,
         "straddling EOF: got %zu, want 40", got);
  CHECK (cv_pread_all (fd, in, sizeof in, 100, &got) == 0 && got == 0,
         "at EOF: got %zu", got);
  CHECK (cv_pread_all (fd, in, sizeof in, 1 << 20, &got) == 0 && got == 0,
         "past EOF: got %zu", got);
  CHECK (cv_pread_all (fd, in, sizeof in, 0, NULL) == -EIO,
         "short read without got is -EIO");
  CHECK (cv_pread_all (fd, in, 100, 0, NULL) == 0, "exactly to EOF");

  /* At the file position: the same, and the position moves on. */
  CHECK (lseek (fd, 30, SEEK_SET) == 30, "lseek");
  CHECK (cv_read_all (fd, in, 50, NULL) == 0, "read 50");
  CHECK (memcmp (in, out + 30, 50) == 0, "from the file position");
  CHECK (cv_read_all (fd, in, sizeof in, &got) == 0 && got == 20,
         "the rest: got %zu, want 20", got);
  CHECK (cv_read_all (fd, in, 1, NULL) == -EIO, "at EOF without got");
  CHECK (cv_write_all (fd, out, 10) == 0, "append at the position");
  CHECK (cv_pread_all (fd, in, 10, 100, NULL) == 0 && memcmp (in, out, 10) == 0,
         "written at the position");
}

/* An offset the kernel would take as "the file position" is refused, not
 * served from wherever the file position happens to be. */
static void
test_bad_offset (int fd)
{
  uint8_t b[8] = { 0 };
  size_t got = 99;

  CHECK (ftruncate (fd, 0) == 0 && cv_pwrite_all (fd, "abcdefgh", 8, 0, 0) == 0,
         "setup");
  CHECK (lseek (fd, 0, SEEK_SET) == 0, "lseek");
  CHECK (cv_pread_all (fd, b, sizeof b, UINT64_MAX, &got) == -EINVAL,
         "pread at 2^64-1");
  CHECK (got == 0 && b[0] == 0, "nothing read: got %zu", got);
  CHECK (cv_pread_all (fd, b, 1, (uint64_t) INT64_MAX + 1, NULL) == -EINVAL,
         "pread at 2^63");
  CHECK (cv_pwrite_all (fd, "XXXXXXXX", 8, UINT64_MAX, 0) == -EINVAL,
         "pwrite at 2^64-1");
  CHECK (cv_pread_all (fd, b, 8, 0, NULL) == 0
             && memcmp (b, "abcdefgh", 8) == 0,
         "the file is unchanged");
  CHECK (cv_pread_all (-1, b, 1, 0, &got) == -EBADF && got == 0, "fd -1");
  CHECK (cv_write_all (-1, b, 1) == -EBADF, "write to fd -1");
}

/* RLIMIT_FSIZE cuts a write short; the rest fails with -EFBIG and what fitted
 * is on disk. */
static void
test_short_write (int fd)
{
  uint8_t out[8192], in[8192];
  struct rlimit old, lim = { .rlim_cur = 4096 };
  size_t got = 0;

  CHECK (getrlimit (RLIMIT_FSIZE, &old) == 0, "getrlimit");
  lim.rlim_max = old.rlim_max;
  CHECK (ftruncate (fd, 0) == 0, "ftruncate");
  fill (out, sizeof out, 3);
  signal (SIGXFSZ, SIG_IGN);
  CHECK (setrlimit (RLIMIT_FSIZE, &lim) == 0, "setrlimit");
  int err = cv_pwrite_all (fd, out, sizeof out, 1024, 0);
  CHECK (setrlimit (RLIMIT_FSIZE, &old) == 0, "setrlimit");
  signal (SIGXFSZ, SIG_DFL);
  CHECK (err == -EFBIG, "write beyond RLIMIT_FSIZE: %d", err);
  CHECK (cv_pread_all (fd, in, sizeof in, 0, &got) == 0 && got == 4096,
         "file is %zu bytes, want 4096", got);
  CHECK (memcmp (in + 1024, out, 3072) == 0, "what fitted is on disk");
}

/* A pipe delivers at most its buffer per read: a transfer larger than that
 * is read whole, and to the end when the writer closes early. Positional
 * transfers on a pipe are -ESPIPE; a write with no reader -EPIPE. */
static void
test_pipe (void)
{
  enum { LEN = 1 << 20 };
  CLEANUP_FREE uint8_t *out = malloc (LEN), *in = malloc (LEN + 100);
  int fds[2];
  size_t got = 0;
  int status;

  CHECK (out && in && pipe (fds) == 0, "pipe");
  fill (out, LEN, 4);
  pid_t pid = fork ();
  if (pid == 0) {
    close (fds[0]);
    _exit (cv_write_all (fds[1], out, LEN) == 0 ? 0 : 1);
  }
  close (fds[1]);
  CHECK (cv_read_all (fds[0], in, LEN / 2, NULL) == 0, "first half");
  CHECK (cv_read_all (fds[0], in + LEN / 2, LEN / 2 + 100, &got) == 0,
         "the rest, to EOF");
  CHECK (got == LEN / 2, "got %zu, want %d", got, LEN / 2);
  CHECK (memcmp (in, out, LEN) == 0, "all of it, in order");
  CHECK (waitpid (pid, &status, 0) == pid && WIFEXITED (status)
             && WEXITSTATUS (status) == 0,
         "the writer wrote it whole");
  CHECK (cv_read_all (fds[0], in, 1, NULL) == -EIO, "EOF without got");
  CHECK (cv_pread_all (fds[0], in, 1, 0, NULL) == -ESPIPE, "pread on a pipe");
  close (fds[0]);

  CHECK (pipe (fds) == 0, "pipe");
  CHECK (cv_pwrite_all (fds[1], out, 1, 0, 0) == -ESPIPE, "pwrite on a pipe");
  close (fds[0]);
  signal (SIGPIPE, SIG_IGN);
  CHECK (cv_write_all (fds[1], out, 1) == -EPIPE, "write with no reader");
  signal (SIGPIPE, SIG_DFL);
  close (fds[1]);
}

int
main (void)
{
  CLEANUP_CLOSE int fd = open ("/tmp", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);

  harness_init ();
  CHECK (fd >= 0, "an unnamed file in /tmp: %s", strerror (errno));
  if (fd < 0)
    return harness_done ("test-common-fdio");
  test_positional (fd);
  test_eof (fd);
  test_bad_offset (fd);
  test_short_write (fd);
  test_pipe ();
  return harness_done ("test-common-fdio");
}

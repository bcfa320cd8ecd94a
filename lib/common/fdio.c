/* Whole transfers on file descriptors (see fdio.h). */
#include <errno.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/fdio.h"

/* One loop for all four: at offset off when positional, else at the file
 * position. *got (may be NULL) gets the bytes moved, also on failure. */
static int
xfer (int fd, void *buf, size_t len, bool positional, uint64_t off, int wflags,
      bool write, size_t *got)
{
  size_t done = 0;
  int r = 0;

  /* The kernel would take a larger offset as -1: "at the file position". */
  if (positional && off > INT64_MAX)
    r = -EINVAL;
  while (r == 0 && done < len) {
    struct iovec iov
        = { .iov_base = (char *) buf + done, .iov_len = len - done };
    off_t at = positional ? (off_t) (off + done) : -1;
    ssize_t n = write ? pwritev2 (fd, &iov, 1, at, wflags)
                      : preadv2 (fd, &iov, 1, at, 0);
    if (n < 0 && errno != EINTR)
      r = -errno;
    else if (n == 0)
      break;
    else if (n > 0)
      done += (size_t) n;
  }
  if (got)
    *got = done;
  if (r == 0 && done < len && (write || !got))
    r = -EIO;
  return r;
}

int
cv_pread_all (int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
  return xfer (fd, buf, len, true, off, 0, false, got);
}

int
cv_pwrite_all (int fd, const void *buf, size_t len, uint64_t off, int flags)
{
  return xfer (fd, (void *) buf, len, true, off, flags, true, NULL);
}

int
cv_read_all (int fd, void *buf, size_t len, size_t *got)
{
  return xfer (fd, buf, len, false, 0, 0, false, got);
}

int
cv_write_all (int fd, const void *buf, size_t len)
{
  return xfer (fd, (void *) buf, len, false, 0, 0, true, NULL);
}

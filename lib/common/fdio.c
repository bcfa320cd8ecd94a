/* Whole transfers on file descriptors (see fdio.h). */
#include <errno.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/fdio.h"

/* One loop for all four: positional when off >= 0. */
static int
xfer (int fd, void *buf, size_t len, int64_t off, int wflags, bool write,
      size_t *got)
{
  size_t done = 0;

  while (done < len) {
    struct iovec iov
        = { .iov_base = (char *) buf + done, .iov_len = len - done };
    ssize_t n;
    if (write)
      n = pwritev2 (fd, &iov, 1, off < 0 ? -1 : (off_t) (off + (int64_t) done),
                    wflags);
    else
      n = preadv2 (fd, &iov, 1, off < 0 ? -1 : (off_t) (off + (int64_t) done),
                   0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    done += (size_t) n;
  }
  if (got)
    *got = done;
  return done == len || (got && !write) ? 0 : -EIO;
}

int
cv_pread_all (int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
  return xfer (fd, buf, len, (int64_t) off, 0, false, got);
}

int
cv_pwrite_all (int fd, const void *buf, size_t len, uint64_t off, int flags)
{
  return xfer (fd, (void *) buf, len, (int64_t) off, flags, true, NULL);
}

int
cv_read_all (int fd, void *buf, size_t len, size_t *got)
{
  return xfer (fd, buf, len, -1, 0, false, got);
}

int
cv_write_all (int fd, const void *buf, size_t len)
{
  return xfer (fd, (void *) buf, len, -1, 0, true, NULL);
}

/* Header locks: OFD byte-range locks (fcntl F_OFD_SETLK[W]) on single bytes
 * far beyond any header or data, so they never meet real I/O. OFD locks
 * belong to the open file description: two descriptors from two open(2) calls
 * conflict even within one process, and a lock goes when its descriptor is
 * closed. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/types.h>

#include "common/log.h"
#include "format/header.h"

static_assert (sizeof (off_t) == 8, "64-bit file offsets");

#define LOCK_HEADER_BYTE ((off_t) 1 << 62)
#define LOCK_IN_USE_BYTE (LOCK_HEADER_BYTE + 1)

/* Take (type F_RDLCK/F_WRLCK) or release (F_UNLCK) one lock byte. */
static int
ofd_lock (int fd, short type, off_t byte, bool wait, const char *what)
{
  struct flock fl = {
    .l_type = type,
    .l_whence = SEEK_SET,
    .l_start = byte,
    .l_len = 1,
    .l_pid = 0,
  };
  int r;

  do
    r = fcntl (fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    return 0;
  if (!wait && (errno == EAGAIN || errno == EACCES))
    return -EBUSY;
  int e = errno;
  cv_err ("cannot %s the %s lock: %s%s", type == F_UNLCK ? "release" : "take",
          what, strerror (e),
          e == EBADF && type == F_WRLCK ? " (the file must be open for writing)"
                                        : "");
  return -e;
}

int
cv_lock_header (int fd, bool wait)
{
  return ofd_lock (fd, F_WRLCK, LOCK_HEADER_BYTE, wait, "header write");
}

int
cv_unlock_header (int fd)
{
  return ofd_lock (fd, F_UNLCK, LOCK_HEADER_BYTE, false, "header write");
}

int
cv_lock_in_use (int fd, bool exclusive, bool wait)
{
  return ofd_lock (fd, exclusive ? F_WRLCK : F_RDLCK, LOCK_IN_USE_BYTE, wait,
                   "volume in-use");
}

int
cv_lock_in_use_holder (int fd)
{
  struct flock fl = { .l_type = F_WRLCK,
                      .l_whence = SEEK_SET,
                      .l_start = LOCK_IN_USE_BYTE,
                      .l_len = 1,
                      .l_pid = 0 };

  if (fcntl (fd, F_OFD_GETLK, &fl) < 0) {
    int e = errno;
    cv_err ("cannot test the volume in-use lock: %s", strerror (e));
    return -e;
  }
  return fl.l_type == F_UNLCK ? 0 : fl.l_type == F_RDLCK ? 1 : 2;
}

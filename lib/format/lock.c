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
#include <time.h>
#include <unistd.h>

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

/* Milliseconds of CLOCK_MONOTONIC. */
static uint64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Take one lock byte, retrying a busy lock until wait_ms have passed.
 *
 * Polling F_OFD_SETLK rather than F_OFD_SETLKW under a timer: a blocked
 * F_OFD_SETLKW ends only on a signal, so a timeout would need a timer signal
 * directed at this thread and a handler installed without SA_RESTART, in a
 * library that also runs inside the multi-threaded nbdkit and must not
 * change its signal dispositions. Nor is a blocking wait fairer: the kernel
 * wakes every waiter of a released lock to race for it. The back-off starts
 * at about 1 ms, so that a lock held for a commit (a few milliseconds) is
 * taken soon after it is released, and doubles up to 50 ms, so that twenty
 * waiters cost a few hundred wake-ups a second at most; its start varies
 * with the process so that waiters do not retry in step. */
static int
ofd_lock_for (int fd, short type, off_t byte, unsigned wait_ms,
              const char *what)
{
  uint64_t deadline = now_ms () + wait_ms;
  long delay_us = 1000 + (getpid () % 8) * 100;

  for (;;) {
    int r = ofd_lock (fd, type, byte, false, what);
    uint64_t now;
    if (r != -EBUSY)
      return r;
    now = now_ms ();
    if (now >= deadline)
      return -EBUSY;
    if ((uint64_t) delay_us / 1000 > deadline - now)
      delay_us = (long) (deadline - now) * 1000;
    struct timespec ts = { .tv_sec = delay_us / 1000000,
                           .tv_nsec = (delay_us % 1000000) * 1000 };
    nanosleep (&ts, NULL);
    delay_us = delay_us * 2 > 50000 ? 50000 : delay_us * 2;
  }
}

int
cv_lock_header_for (int fd, unsigned wait_ms)
{
  return ofd_lock_for (fd, F_WRLCK, LOCK_HEADER_BYTE, wait_ms, "header write");
}

int
cv_lock_in_use_for (int fd, bool exclusive, unsigned wait_ms)
{
  return ofd_lock_for (fd, exclusive ? F_WRLCK : F_RDLCK, LOCK_IN_USE_BYTE,
                       wait_ms, "volume in-use");
}

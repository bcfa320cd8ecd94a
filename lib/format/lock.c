/* Header locks: the device's locks (common/dev.h: OFD byte-range locks on
 * a file, which belong to the open file description, so that two
 * descriptors from two open(2) calls conflict even within one process and a
 * lock goes when its descriptor is closed; an RBD image's exclusive lock),
 * named in messages, and waited for with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "format/header.h"

/* Take (type F_RDLCK/F_WRLCK) or release (F_UNLCK) one lock of d. */
static int
dev_lock (struct cv_dev *d, enum cv_dev_lock which, short type, bool wait,
          const char *what)
{
  int e = cv_dev_lock (d, which, type, wait);

  if (e == 0 || e == -EBUSY)
    return e;
  cv_err ("cannot %s the %s lock of %s: %s%s",
          type == F_UNLCK ? "release" : "take", what, d->name, strerror (-e),
          e == -EBADF && type == F_WRLCK
              ? " (the file must be open for writing)"
              : "");
  return e;
}

int
cv_lock_header (struct cv_dev *d, bool wait)
{
  return dev_lock (d, CV_DEV_LOCK_HEADER, F_WRLCK, wait, "header write");
}

int
cv_unlock_header (struct cv_dev *d)
{
  return dev_lock (d, CV_DEV_LOCK_HEADER, F_UNLCK, false, "header write");
}

int
cv_lock_in_use (struct cv_dev *d, bool exclusive, bool wait)
{
  return dev_lock (d, CV_DEV_LOCK_IN_USE, exclusive ? F_WRLCK : F_RDLCK, wait,
                   "volume in-use");
}

int
cv_lock_in_use_holder (struct cv_dev *d)
{
  return cv_dev_holder (d, NULL, 0);
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
 * Polling a try-lock (F_OFD_SETLK on a file) rather than F_OFD_SETLKW under a
 * timer: a blocked
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
dev_lock_for (struct cv_dev *d, enum cv_dev_lock which, short type,
              unsigned wait_ms, const char *what)
{
  uint64_t deadline = now_ms () + wait_ms;
  long delay_us = 1000 + (getpid () % 8) * 100;

  for (;;) {
    int r = dev_lock (d, which, type, false, what);
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
cv_lock_header_for (struct cv_dev *d, unsigned wait_ms)
{
  return dev_lock_for (d, CV_DEV_LOCK_HEADER, F_WRLCK, wait_ms, "header write");
}

int
cv_lock_in_use_for (struct cv_dev *d, bool exclusive, unsigned wait_ms)
{
  return dev_lock_for (d, CV_DEV_LOCK_IN_USE, exclusive ? F_WRLCK : F_RDLCK,
                       wait_ms, "volume in-use");
}

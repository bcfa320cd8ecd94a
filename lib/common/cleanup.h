/* Scope-bound cleanup, as in nbdkit and systemd: a variable declared with one
 * of these is released on every return path. Hand ownership back with STEAL().
 */
#ifndef CV_CLEANUP_H
#define CV_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void
cv_freep (void *p)
{
  free (*(void **) p);
}

static inline void
cv_closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

static inline void
cv_fclosep (FILE **f)
{
  if (*f)
    fclose (*f);
}

#define CLEANUP_FREE __attribute__ ((cleanup (cv_freep)))
#define CLEANUP_CLOSE __attribute__ ((cleanup (cv_closep)))
#define CLEANUP_FCLOSE __attribute__ ((cleanup (cv_fclosep)))

/* Take the value out of a cleanup variable so that it is not released. */
#define STEAL(p)                                                               \
  ({                                                                           \
    __typeof__ (p) steal_tmp_ = (p);                                           \
    (p) = (__typeof__ (p)) 0;                                                  \
    steal_tmp_;                                                                \
  })
#define STEAL_FD(fd)                                                           \
  ({                                                                           \
    int steal_fd_ = (fd);                                                      \
    (fd) = -1;                                                                 \
    steal_fd_;                                                                 \
  })

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

#endif

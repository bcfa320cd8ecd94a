/* Whole transfers on file descriptors: the one place that loops over short
 * reads and writes and EINTR. Each returns 0 or -errno; none logs (the caller
 * knows what the bytes are and names them). */
#ifndef CV_FDIO_H
#define CV_FDIO_H

#include <stddef.h>
#include <stdint.h>

/* Read up to len bytes at off into buf, stopping early only at end of file.
 * *got (may be NULL) gets the bytes read, also on failure. With got == NULL,
 * end of file before len bytes is -EIO. An offset beyond INT64_MAX is
 * -EINVAL. */
int cv_pread_all (int fd, void *buf, size_t len, uint64_t off, size_t *got);
/* Write all len bytes at off; flags are pwritev2's (RWF_DSYNC). A write that
 * makes no progress is -EIO; an offset beyond INT64_MAX is -EINVAL. What was
 * written before a failure stays written. */
int cv_pwrite_all (int fd, const void *buf, size_t len, uint64_t off,
                   int flags);
/* The same at the file position (pipes, terminals, sockets). */
int cv_read_all (int fd, void *buf, size_t len, size_t *got);
int cv_write_all (int fd, const void *buf, size_t len);

#endif

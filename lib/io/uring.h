/* The io_uring engine under the io_uring backend (uring.c; the backend
 * interface is backend.h): one ring per thread, batched submission. Exposed
 * for its unit test.
 *
 * Usage: queue many requests (each with a caller tag), submit once, then reap
 * completions one at a time with cv_ring_reap. The ring completes every
 * request in full: short transfers and -EAGAIN are requeued for the rest
 * internally, so a reaped request has either transferred all its bytes or
 * failed. A ring is used by one thread only. fd must be seekable (a file or
 * block device): the rest of a short transfer is asked for at the advanced
 * offset, which pipes and sockets refuse with -ESPIPE. */
#ifndef CV_URING_H
#define CV_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cv_ring;

/* A ring with room for depth requests in flight (depth >= 1, rounded up to a
 * power of two by the kernel). Returns 0 or -errno (logged). */
int cv_ring_new (unsigned depth, struct cv_ring **out);
void cv_ring_free (struct cv_ring *r);

/* How many more requests can be queued before one must be reaped. */
unsigned cv_ring_space (const struct cv_ring *r);

/* Queue a read of len bytes at off of fd into buf. -EBUSY if no space. */
int cv_ring_queue_read (struct cv_ring *r, int fd, void *buf, size_t len,
                        uint64_t off, uint64_t tag);
/* Queue a write; dsync makes it durable on completion (RWF_DSYNC). */
int cv_ring_queue_write (struct cv_ring *r, int fd, const void *buf, size_t len,
                         uint64_t off, bool dsync, uint64_t tag);
/* Queue fdatasync(fd) (IORING_OP_FSYNC with IORING_FSYNC_DATASYNC). */
int cv_ring_queue_fdatasync (struct cv_ring *r, int fd, uint64_t tag);

/* Submit everything queued. Returns 0 or -errno. */
int cv_ring_submit (struct cv_ring *r);

/* Wait for the next request to complete in full. Sets *tag and returns 0 if
 * it succeeded, or the request's -errno (-EIO for a read that hit end of
 * file) with *tag set. Returns -ENOENT if nothing is in flight. A -errno with
 * *tag == CV_RING_BROKEN (logged) means the ring itself failed with nothing
 * left in the kernel: free it (dropping what is queued) and make a new one. */
#define CV_RING_BROKEN UINT64_MAX
int cv_ring_reap (struct cv_ring *r, uint64_t *tag);
/* The same without waiting: -EAGAIN if no request has completed yet. */
int cv_ring_reap_ready (struct cv_ring *r, uint64_t *tag);

/* Synchronous helpers: one request, queued, submitted and reaped. The ring
 * must have nothing in flight (-EBUSY otherwise). */
int cv_ring_pread (struct cv_ring *r, int fd, void *buf, size_t len,
                   uint64_t off);
int cv_ring_pwrite (struct cv_ring *r, int fd, const void *buf, size_t len,
                    uint64_t off, bool dsync);
int cv_ring_fdatasync (struct cv_ring *r, int fd);

#endif

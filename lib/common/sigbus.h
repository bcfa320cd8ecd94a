/* A SIGBUS guard for reads from a shared file mapping. When the file is
 * truncated underneath, or the page cache cannot read a page in (I/O error),
 * touching the mapping raises SIGBUS in the touching thread; unguarded, that
 * kills the whole server. cv_sigbus_run turns such a fault, inside the range
 * the calling thread declared, into an error return of that one call, in any
 * thread; every other SIGBUS stays what it was (a crash, or the handler that
 * was installed before ours). */
#ifndef CV_SIGBUS_H
#define CV_SIGBUS_H

#include <stddef.h>
#include <stdint.h>

/* Run fn (arg), which reads [lo, lo + len) (and writes only memory of its
 * own), with SIGBUS on that range caught. Returns fn's result, or -EFAULT if
 * a read of the range faulted: fn was abandoned there, *fault (if not NULL)
 * gets the faulting offset within the range, and the stack fn and the signal
 * used is wiped (it held its registers: key schedules). fn must not return
 * -EFAULT itself, must not nest another cv_sigbus_run, and must take no lock
 * nor allocate: it may be abandoned at any instruction. The process-wide
 * handler is installed on first use; SIGBUS is unblocked in the calling
 * thread on its first use. */
int cv_sigbus_run (const void *lo, size_t len, int (*fn) (void *arg), void *arg,
                   uint64_t *fault);

#endif

/* Key material in its own type, in locked, non-dumpable, wiped memory.
 * Every secret (DEK, KEK, passphrase, PIN, derived keys) lives in a cv_key. */
#ifndef CV_SECMEM_H
#define CV_SECMEM_H

#include <stddef.h>
#include <stdint.h>

struct cv_key {
  size_t len;  /* bytes in b[] */
  uint8_t b[]; /* the secret; in mlock'ed, MADV_DONTDUMP pages */
};

/* Allocate a zeroed key of len bytes (len >= 1) in secure pages.
 * Returns 0 or -ENOMEM. If the pages cannot be locked (RLIMIT_MEMLOCK) the key
 * is still returned and a warning is logged once. */
int cv_key_new (size_t len, struct cv_key **out);
/* A new secure copy of len bytes at p. */
int cv_key_from (const void *p, size_t len, struct cv_key **out);
/* Wipe, unlock and free k. NULL is allowed. */
void cv_key_free (struct cv_key *k);
/* Lock every live key's pages, and the secure heap's (secheap.h), again: memory
 * locks are not inherited across fork(2), so the nbdkit plugin calls this in
 * .after_fork. Returns 0 or -errno.
 */
int cv_key_relock_all (void);
/* Wipe len bytes at p in a way the compiler cannot elide. */
void cv_wipe (void *p, size_t len);

static inline void
cv_key_freep (struct cv_key **k)
{
  cv_key_free (*k);
}
#define CLEANUP_KEY __attribute__ ((cleanup (cv_key_freep)))

#endif

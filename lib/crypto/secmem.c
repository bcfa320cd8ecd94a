/* Secure memory for key material: each cv_key lives in its own anonymous
 * mapping, locked (mlock), excluded from core dumps (MADV_DONTDUMP) and wiped
 * before it is unmapped. Live keys are listed so their pages can be locked
 * again in a forked child (locks are not inherited across fork). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "crypto/secheap.h"
#include "secmem.h"

struct region {
  struct region *next;
  size_t maplen;
  struct cv_key key; /* must be last: flexible array */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct region *live;
static bool warned_mlock;

void
cv_wipe (void *p, size_t len)
{
  OPENSSL_cleanse (p, len);
}

/* Lock one region, warning once if the limit does not allow it. */
static void
lock_region (struct region *r)
{
  if (mlock (r, r->maplen) == 0)
    return;
  if (!warned_mlock) {
    warned_mlock = true;
    cv_warn ("cannot lock key memory (mlock: %s): keys may be swapped out; "
             "raise RLIMIT_MEMLOCK (ulimit -l) to prevent it",
             strerror (errno));
  }
}

int
cv_key_new (size_t len, struct cv_key **out)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  size_t need = sizeof (struct region) + len;
  size_t maplen = (need + page - 1) / page * page;

  if (len == 0)
    return -EINVAL;
  struct region *r = mmap (NULL, maplen, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED)
    return -ENOMEM;
  madvise (r, maplen, MADV_DONTDUMP);
  r->maplen = maplen;
  r->key.len = len;

  pthread_mutex_lock (&lock);
  lock_region (r);
  r->next = live;
  live = r;
  pthread_mutex_unlock (&lock);
  *out = &r->key;
  return 0;
}

int
cv_key_from (const void *p, size_t len, struct cv_key **out)
{
  int rc = cv_key_new (len, out);

  if (rc == 0)
    memcpy ((*out)->b, p, len);
  return rc;
}

void
cv_key_free (struct cv_key *k)
{
  if (!k)
    return;
  struct region *r
      = (struct region *) ((char *) k - offsetof (struct region, key));

  pthread_mutex_lock (&lock);
  for (struct region **pp = &live; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  pthread_mutex_unlock (&lock);
  size_t maplen = r->maplen;
  cv_wipe (r, maplen);
  munlock (r, maplen);
  munmap (r, maplen);
}

int
cv_key_relock_all (void)
{
  pthread_mutex_lock (&lock);
  for (struct region *r = live; r; r = r->next)
    lock_region (r);
  pthread_mutex_unlock (&lock);
  cv_secheap_relock ();
  return 0;
}

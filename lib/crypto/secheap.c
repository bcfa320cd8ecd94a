/* The secure heap (secheap.h): a first-fit allocator of 64-byte blocks over
 * one reserved mapping.
 *
 * Why our own: OpenSSL's secure heap (CRYPTO_secure_malloc) is used only for
 * bignums and some keys, never for cipher contexts, and libgcrypt's own
 * secure pool is locked but not excluded from core dumps. Both libraries let
 * their allocator be replaced, so their contexts come here. Allocations are
 * rare (a context per thread and key), so a bitmap scan is enough.
 *
 * The mapping is reserved whole (MAP_NORESERVE: untouched pages cost
 * nothing) so that "is this ours" is a range check, which the hooks make on
 * every free of either library. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gcrypt.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "crypto/secheap.h"
#include "crypto/secmem.h"

#define HEAP_BYTES ((size_t) 64 << 20) /* ~20,000 XTS engines */
#define BLK 64
#define NBLK (HEAP_BYTES / BLK)
#define HDR 16 /* before each block run: its length in blocks */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint8_t *heap;            /* NULL: the reservation failed */
static uint64_t used[NBLK / 64]; /* one bit per block */
static size_t hint;              /* no free block below it */
static size_t locked;            /* bytes from heap, page aligned, mlock'ed */
static bool warned_full, warned_lock, warned_ossl;
static bool ossl_hooked;        /* CRYPTO_set_mem_functions succeeded */
static __thread unsigned scope; /* OpenSSL allocations go here while > 0 */

static void
reserve (void)
{
  void *p = mmap (NULL, HEAP_BYTES, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

  if (p == MAP_FAILED) {
    cv_warn ("cannot reserve the secure heap for cipher contexts (mmap: "
             "%s)",
             strerror (errno));
    return;
  }
  madvise (p, HEAP_BYTES, MADV_DONTDUMP);
  heap = p;
}

static bool
bit (size_t b)
{
  return used[b / 64] >> (b % 64) & 1;
}

static void
set_bits (size_t b, size_t n, bool on)
{
  for (size_t i = b; i < b + n; i++) {
    if (on)
      used[i / 64] |= 1ULL << (i % 64);
    else
      used[i / 64] &= ~(1ULL << (i % 64));
  }
}

/* Lock the pages up to byte end of the heap, once each (lock held). */
static void
lock_to (size_t end)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);

  end = (end + page - 1) / page * page;
  if (end <= locked)
    return;
  if (mlock (heap + locked, end - locked) != 0 && !warned_lock) {
    warned_lock = true;
    cv_warn ("cannot lock the memory of cipher contexts (mlock: %s): key "
             "schedules may be swapped out; raise RLIMIT_MEMLOCK (ulimit -l)",
             strerror (errno));
  }
  locked = end;
}

void *
cv_secheap_alloc (size_t n)
{
  size_t need = (n + HDR + BLK - 1) / BLK, run = 0, b;
  uint8_t *p = NULL;

  pthread_once (&once, reserve);
  if (!heap || n > HEAP_BYTES - HDR)
    return NULL;
  pthread_mutex_lock (&lock);
  for (b = hint; b < NBLK && run < need; b++)
    run = bit (b) ? 0 : run + 1;
  if (run == need) {
    size_t first = b - need;
    set_bits (first, need, true);
    if (first == hint)
      hint = b;
    lock_to (b * BLK);
    p = heap + first * BLK;
    memcpy (p, &need, sizeof need);
    p += HDR;
  } else if (!warned_full) {
    warned_full = true;
    cv_err ("the secure heap for cipher contexts (%zu MiB) is full",
            HEAP_BYTES >> 20);
  }
  pthread_mutex_unlock (&lock);
  return p;
}

bool
cv_secheap_owns (const void *p)
{
  return heap && (const uint8_t *) p >= heap
         && (const uint8_t *) p < heap + HEAP_BYTES;
}

/* Bytes usable in the block run of p. */
static size_t
usable (const void *p)
{
  size_t n;

  memcpy (&n, (const uint8_t *) p - HDR, sizeof n);
  return n * BLK - HDR;
}

void
cv_secheap_free (void *p)
{
  uint8_t *start = (uint8_t *) p - HDR;
  size_t n, first = (size_t) (start - heap) / BLK;

  memcpy (&n, start, sizeof n);
  cv_wipe (start, n * BLK);
  pthread_mutex_lock (&lock);
  set_bits (first, n, false);
  if (first < hint)
    hint = first;
  pthread_mutex_unlock (&lock);
}

/* realloc for a block that may be ours; new blocks of ours stay ours. */
static void *
secure_realloc (void *p, size_t n)
{
  void *q;

  if (!cv_secheap_owns (p))
    return realloc (p, n);
  if (n <= usable (p))
    return p;
  if (!(q = cv_secheap_alloc (n)))
    return NULL;
  memcpy (q, p, usable (p));
  cv_secheap_free (p);
  return q;
}

void
cv_secheap_relock (void)
{
  pthread_mutex_lock (&lock);
  if (heap && locked && mlock (heap, locked) != 0 && !warned_lock) {
    warned_lock = true;
    cv_warn ("cannot lock the memory of cipher contexts again after fork "
             "(mlock: %s)",
             strerror (errno));
  }
  pthread_mutex_unlock (&lock);
}

/* OpenSSL's allocator: to the secure heap inside a scope, else malloc. */
static void *
ossl_malloc (size_t n, const char *file, int line)
{
  return scope ? cv_secheap_alloc (n) : malloc (n);
}

static void *
ossl_realloc (void *p, size_t n, const char *file, int line)
{
  if (!p)
    return ossl_malloc (n, file, line);
  return secure_realloc (p, n);
}

static void
ossl_free (void *p, const char *file, int line)
{
  if (cv_secheap_owns (p))
    cv_secheap_free (p);
  else
    free (p);
}

/* At load, before anything in the process can have allocated through
 * OpenSSL (which then refuses a new allocator). */
__attribute__ ((constructor)) static void
hook_openssl (void)
{
  ossl_hooked = CRYPTO_set_mem_functions (ossl_malloc, ossl_realloc, ossl_free);
}

bool
cv_secheap_scope_begin (void)
{
  if (!ossl_hooked) {
    pthread_mutex_lock (&lock);
    if (!warned_ossl)
      cv_warn ("OpenSSL allocated memory before cryptvol was loaded, so its "
               "cipher contexts cannot be kept out of core dumps; use "
               "xts-engine=gcrypt");
    warned_ossl = true;
    pthread_mutex_unlock (&lock);
    return false;
  }
  scope++;
  return true;
}

void
cv_secheap_scope_end (void)
{
  if (ossl_hooked)
    scope--;
}

static void
gc_free (void *p)
{
  if (cv_secheap_owns (p))
    cv_secheap_free (p);
  else
    free (p);
}

static int
gc_is_secure (const void *p)
{
  return cv_secheap_owns (p);
}

void
cv_secheap_hook_gcrypt (void)
{
  gcry_set_allocation_handler (malloc, cv_secheap_alloc, gc_is_secure,
                               secure_realloc, gc_free);
}

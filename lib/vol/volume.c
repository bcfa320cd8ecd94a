/* The volume data path: sectors of the data area are AES-256-XTS encrypted;
 * requests are split into chunks queued together on the calling thread's I/O
 * queue so that I/O and crypto overlap; reads of a mapped data file decrypt
 * straight from the mapping instead (cv_read_path). Unaligned edges are
 * read-modify-written under a striped per-sector lock. Which backend stores
 * the ciphertext (lib/io/backend.h) is not known here. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/sigbus.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "io/backend.h"
#include "vol-internal.h"
#include "volume.h"

/* Bytes per queued I/O: v->chunk, the store's cv_io_chunk (128 KiB for
 * files, 1 MiB for RBD). Bounce chunks per thread: NSLOTS (512 KiB for a
 * file), of which writes completed as soon as they are queued (buffered
 * ones, by both file backends) touch one chunk. nbdkit runs 16 threads per
 * connection, each with its own. */
#define NSLOTS 4
#define QUEUE_DEPTH 32 /* requests in flight per thread */
#define ALIGN 4096     /* bounce alignment, enough for O_DIRECT */
/* Reads from the mapping decrypt this much at a time (or a sector, if
 * larger) while the next as much is prefetched. */
#define MAP_UNIT 4096
/* A queue tag carries the chunk index and the bounce slot it uses. */
#define TAG_SLOT_SHIFT 40
#define TAG_CHUNK_MASK ((1ULL << TAG_SLOT_SHIFT) - 1)

/* A cache line: thread states are aligned to it and padded to a multiple of
 * it, so that one thread's per-request writes (its counts) never share a line
 * with another's state. */
#define CACHE_LINE 64

/* What one thread needs for I/O on one volume, made on its first request. */
struct __attribute__ ((aligned (CACHE_LINE))) cv_thr {
  struct cv_thr *next;  /* in v->thrs (v->thr_lock) */
  struct cv_thr *tnext; /* in the thread's list (thread_key): its owner's */
  struct cv_vol *v;
  uint64_t vid; /* v->id: v may be closed and its address reused */
  /* Set (under thr_global) when v dropped this state: its resources are
   * freed, and its owner frees the rest when it next walks its list. */
  bool dead;
  struct cv_io_queue *q;
  struct cv_xts *xts;     /* keyed with v->dek */
  struct cv_xts *xts_old; /* keyed with v->odek, during a DEK rotation */
  uint64_t gen;           /* v->gen when the engines were keyed */
  uint8_t *bounce;        /* NSLOTS * v->chunk, aligned; made on first use */
  uint8_t *edge;          /* one sector, aligned */
  /* During a DEK rotation: the data-area range of the request in flight
   * (v->rl_m guards them), which the rotation's step waits for. */
  bool rl_on, rl_write;
  uint64_t rl_lo, rl_hi;
  /* Requests served and bytes moved by this thread: written by it alone,
   * summed by cv_vol_counts, folded into the volume's totals when the
   * thread's state is freed. Per thread, so that a request writes no cache
   * line that other threads write too. */
  struct cv_vol_counts n;
};

/* Per-thread state: each thread keeps a list of its states, one per volume
 * it has served (thread_key; a process may serve a thousand volumes, more
 * than there are pthread keys), and each volume the list of its threads'
 * states (v->thrs). The thread's list is only walked by its thread; a volume
 * that drops a state (close, a rotation's phases) frees what it holds and
 * marks it dead, and its owner unlinks and frees it on its next walk or at
 * exit. thr_global orders a thread's exit against a volume dropping its
 * states, so neither sees the other's memory after it is freed. */
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static int thread_key_err;
static pthread_mutex_t thr_global = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_vid = 1; /* atomic */

/* Free what a thread's state holds for its volume (not the state). */
static void
thr_release (struct cv_thr *t)
{
  cv_io_queue_free (t->q);
  cv_xts_free (t->xts);
  cv_xts_free (t->xts_old);
  free (t->bounce);
  free (t->edge);
  t->q = NULL;
  t->xts = t->xts_old = NULL;
  t->bounce = t->edge = NULL;
}

/* Unlink t from the volume's threads and keep its counts in the volume's
 * totals (thr_lock held). */
static void
thr_unlink (struct cv_vol *v, struct cv_thr **pp)
{
  struct cv_thr *t = *pp;

  *pp = t->next;
  v->gone.served += t->n.served;
  v->gone.bytes_read += t->n.bytes_read;
  v->gone.bytes_written += t->n.bytes_written;
}

/* pthread_key destructor: a worker thread exits (its connection closed);
 * its states leave their volumes. */
static void
thr_exit (void *p)
{
  struct cv_thr *t = p, *next;

  pthread_mutex_lock (&thr_global);
  for (; t; t = next) {
    next = t->tnext;
    if (!t->dead) {
      struct cv_vol *v = t->v;
      pthread_mutex_lock (&v->thr_lock);
      for (struct cv_thr **pp = &v->thrs; *pp; pp = &(*pp)->next)
        if (*pp == t) {
          thr_unlink (v, pp);
          break;
        }
      pthread_mutex_unlock (&v->thr_lock);
      thr_release (t);
    }
    free (t);
  }
  pthread_mutex_unlock (&thr_global);
}

static void
thread_key_make (void)
{
  thread_key_err = pthread_key_create (&thread_key, thr_exit);
}

/* The calling thread's state for v, or NULL; states of closed volumes met
 * on the way are freed. */
static struct cv_thr *
thr_find (struct cv_vol *v)
{
  struct cv_thr *head = pthread_getspecific (thread_key), *found = NULL;
  bool changed = false;

  for (struct cv_thr **pp = &head; *pp;) {
    struct cv_thr *t = *pp;
    if (__atomic_load_n (&t->dead, __ATOMIC_ACQUIRE)) {
      *pp = t->tnext;
      free (t);
      changed = true;
      continue;
    }
    if (t->vid == v->id)
      found = t;
    pp = &t->tnext;
  }
  if (changed)
    pthread_setspecific (thread_key, head);
  return found;
}

/* Make the calling thread's state. Returns 0 or -errno (logged). */
static int
thr_new (struct cv_vol *v, struct cv_thr **out)
{
  struct cv_thr *t = aligned_alloc (CACHE_LINE, sizeof *t);
  int rc;

  if (!t) {
    cv_err ("%s: out of memory for this thread's I/O state", v->path);
    return -ENOMEM;
  }
  *t = (struct cv_thr){ 0 };
  t->v = v;
  t->vid = v->id;
  t->gen = v->gen;
  if ((rc = cv_io_queue_new_shared (v->io, QUEUE_DEPTH, &t->q)) < 0
      || (rc = cv_xts_new (v->xts_impl, v->dek->b, v->ss, &t->xts)) < 0
      || (v->odek
          && (rc = cv_xts_new (v->xts_impl, v->odek->b, v->ss, &t->xts_old))
                 < 0))
    goto fail;
  if ((rc = posix_memalign ((void **) &t->edge, ALIGN, v->ss)) != 0) {
    t->edge = NULL;
    cv_err ("%s: out of memory for this thread's sector buffer", v->path);
    rc = -rc;
    goto fail;
  }
  t->tnext = pthread_getspecific (thread_key);
  if ((rc = pthread_setspecific (thread_key, t)) != 0) {
    cv_err ("%s: cannot attach I/O state to this thread: %s", v->path,
            strerror (rc));
    rc = -rc;
    goto fail;
  }
  pthread_mutex_lock (&v->thr_lock);
  t->next = v->thrs;
  v->thrs = t;
  pthread_mutex_unlock (&v->thr_lock);
  *out = t;
  return 0;

fail:
  thr_release (t);
  free (t);
  return rc;
}

/* Key t's engines with the volume's current keys (after a resume). */
static int
thr_rekey (struct cv_thr *t)
{
  struct cv_vol *v = t->v;
  int rc;

  cv_xts_free (t->xts);
  cv_xts_free (t->xts_old);
  t->xts = t->xts_old = NULL;
  if ((rc = cv_xts_new (v->xts_impl, v->dek->b, v->ss, &t->xts)) < 0
      || (v->odek
          && (rc = cv_xts_new (v->xts_impl, v->odek->b, v->ss, &t->xts_old))
                 < 0))
    return rc;
  t->gen = v->gen;
  return 0;
}

/* The calling thread's state, made on first use; a queue that failed is
 * replaced, engines keyed at another generation re-keyed. The caller holds
 * v->klock for reading with the key usable. Returns 0 or -errno (logged). */
static int
thr_get (struct cv_vol *v, struct cv_thr **out)
{
  struct cv_thr *t = thr_find (v);
  int rc;

  if (!t)
    return thr_new (v, out);
  if (t->gen != v->gen && (rc = thr_rekey (t)) < 0)
    return rc;
  if (t->q && cv_io_queue_error (t->q) < 0) {
    cv_io_queue_free (t->q);
    t->q = NULL;
  }
  if (!t->q && (rc = cv_io_queue_new_shared (v->io, QUEUE_DEPTH, &t->q)) < 0)
    return rc;
  *out = t;
  return 0;
}

/* The bounce slots, allocated on first use (untouched pages cost no RSS). */
static uint8_t *
thr_bounce (struct cv_thr *t)
{
  if (!t->bounce
      && posix_memalign ((void **) &t->bounce, ALIGN, NSLOTS * t->v->chunk)
             != 0) {
    t->bounce = NULL;
    cv_err ("%s: out of memory for the bounce buffer", t->v->path);
  }
  return t->bounce;
}

/* Report an I/O error once, with the file and the data-area offset: unless
 * the thread's queue itself failed, which its backend has reported. */
static int
io_fail (struct cv_thr *t, const char *op, uint64_t off, int rc)
{
  if (cv_io_queue_error (t->q) == 0)
    cv_err ("%s: %s at offset %llu: %s", t->v->path, op,
            (unsigned long long) off,
            rc == -EIO ? "I/O error or end of file" : strerror (-rc));
  return rc;
}

/* Read the sector-aligned range [off, off+len) of the data area into buf and
 * decrypt it. Chunks are queued together and each is decrypted as soon as it
 * arrives. With O_DIRECT (or an unaligned buf) the ciphertext lands in the
 * bounce slots and is decrypted from there into buf: no extra copy. */
static int
read_aligned (struct cv_thr *t, struct cv_xts *x, uint8_t *buf, uint64_t off,
              uint64_t len)
{
  struct cv_vol *v = t->v;
  const size_t chunk = v->chunk;
  bool bounce = v->direct && ((uintptr_t) buf % ALIGN || len % 512);
  uint8_t *slots = bounce ? thr_bounce (t) : NULL;
  uint64_t nchunks = (len + chunk - 1) / chunk, queued = 0, done = 0;
  unsigned maxq = bounce ? NSLOTS : QUEUE_DEPTH;
  unsigned free_slots = NSLOTS, slotstack[NSLOTS];
  int rc = 0;

  if (bounce && !slots)
    return -ENOMEM;
  for (unsigned i = 0; i < NSLOTS; i++)
    slotstack[i] = i;

  while (done < queued || (rc == 0 && queued < nchunks)) {
    /* Queue as many chunks as there is room for. */
    while (rc == 0 && queued < nchunks && queued - done < maxq
           && cv_io_space (t->q) > 0) {
      uint64_t coff = queued * chunk;
      size_t clen = len - coff < chunk ? len - coff : chunk;
      uint8_t *dst = buf + coff;
      unsigned s = 0;
      if (bounce) {
        s = slotstack[--free_slots];
        dst = slots + (size_t) s * chunk;
      }
      int r = cv_io_queue_read (t->q, dst, clen, v->data_offset + off + coff,
                                (uint64_t) s << TAG_SLOT_SHIFT | queued);
      if (r < 0) {
        rc = io_fail (t, "read", off + coff, r);
        if (bounce)
          slotstack[free_slots++] = s;
        break;
      }
      queued++;
    }
    if (done == queued)
      break;
    int r = cv_io_submit (t->q);
    if (r < 0)
      return r; /* the queue failed (logged); nothing is in flight */

    uint64_t tag;
    r = cv_io_reap (t->q, &tag);
    if (tag == CV_IO_BROKEN)
      return r; /* logged; nothing is in flight */
    done++;
    uint64_t coff = (tag & TAG_CHUNK_MASK) * chunk;
    size_t clen = len - coff < chunk ? len - coff : chunk;
    uint8_t *src = buf + coff;
    if (bounce) {
      unsigned s = (unsigned) (tag >> TAG_SLOT_SHIFT);
      src = slots + (size_t) s * chunk;
      slotstack[free_slots++] = s;
    }
    if (r < 0) {
      if (rc == 0)
        rc = io_fail (t, "read", off + coff, r);
      continue;
    }
    if (rc == 0
        && cv_xts_decrypt (x, buf + coff, src, (off + coff) / v->ss,
                           clen / v->ss)
               < 0)
      rc = -EIO;
  }
  return rc;
}

/* One read from the mapping: len bytes (whole sectors) at src, the first
 * being sector first, decrypted into dst. */
struct map_job {
  struct cv_xts *x;
  uint8_t *dst;
  const uint8_t *src;
  uint64_t first;
  size_t len;
  unsigned ss;
};

/* Decrypt a map_job unit by unit, prefetching the next unit's cache lines
 * while the current one is decrypted: the data comes from the page cache
 * once, into the cipher, and leaves it into dst. Runs under cv_sigbus_run:
 * returns 0 or -EIO (the engine failed, logged). */
static int
map_decrypt (void *arg)
{
  const struct map_job *j = arg;
  size_t unit = j->ss > MAP_UNIT ? j->ss : MAP_UNIT;

  for (size_t o = 0; o < j->len; o += unit) {
    size_t n = j->len - o < unit ? j->len - o : unit;
    size_t next = j->len - o - n < unit ? j->len - o - n : unit;
    for (size_t c = 0; c < next; c += 64)
      __builtin_prefetch (j->src + o + n + c, 0, 3);
    int rc = cv_xts_decrypt (j->x, j->dst + o, j->src + o, j->first + o / j->ss,
                             n / j->ss);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Decrypt the sector-aligned range [off, off+len) of the data area from the
 * mapping into dst. A SIGBUS there (the file was truncated underneath, or
 * the page could not be read in) fails this request alone: dst is wiped and
 * -EIO returned, logged with the offset. Returns 0 or -EIO. */
static int
map_read (struct cv_thr *t, struct cv_xts *x, uint8_t *dst, uint64_t off,
          uint64_t len)
{
  struct cv_vol *v = t->v;
  struct map_job j = { .x = x,
                       .dst = dst,
                       .src = v->map + off,
                       .first = off / v->ss,
                       .len = len,
                       .ss = v->ss };
  uint64_t at = 0;
  int rc = cv_sigbus_run (j.src, len, map_decrypt, &j, &at);

  if (rc != -EFAULT)
    return rc;
  cv_wipe (dst, len);
  cv_err ("%s: read at offset %llu: the data file ends before the volume "
          "(truncated while served?) or cannot be read there (I/O error); "
          "check the file",
          v->path, (unsigned long long) (off + at));
  return -EIO;
}

/* Encrypt the sector-aligned range from src (NULL: zeros) and write it at
 * [off, off+len) of the data area: each chunk is encrypted into a free bounce
 * slot and queued; while slots are free, the next one is encrypted as the
 * earlier ones are written. Writes that complete as soon as they are queued
 * hand their slot back at once, so one slot serves the whole request. */
static int
write_aligned (struct cv_thr *t, struct cv_xts *x, const uint8_t *src,
               uint64_t off, uint64_t len, bool fua)
{
  struct cv_vol *v = t->v;
  const size_t chunk = v->chunk;
  uint8_t *slots;
  uint64_t nchunks = (len + chunk - 1) / chunk, queued = 0, done = 0;
  unsigned free_slots = NSLOTS, slotstack[NSLOTS];
  int rc = 0;

  if (!(slots = thr_bounce (t)))
    return -ENOMEM;
  for (unsigned i = 0; i < NSLOTS; i++)
    slotstack[i] = i;

  while (done < queued || (rc == 0 && queued < nchunks)) {
    bool more = rc == 0 && queued < nchunks && free_slots > 0
                && cv_io_space (t->q) > 0;
    if (more) {
      uint64_t coff = queued * chunk;
      size_t clen = len - coff < chunk ? len - coff : chunk;
      unsigned s = slotstack[--free_slots];
      uint8_t *dst = slots + (size_t) s * chunk;
      if (!src)
        memset (dst, 0, clen);
      int r = cv_xts_encrypt (x, dst, src ? src + coff : dst,
                              (off + coff) / v->ss, clen / v->ss);
      if (r == 0)
        r = cv_io_queue_write (t->q, dst, clen, v->data_offset + off + coff,
                               fua, (uint64_t) s << TAG_SLOT_SHIFT | queued);
      if (r == 0)
        r = cv_io_submit (t->q);
      if (r < 0) {
        rc = io_fail (t, "write", off + coff, r);
        slotstack[free_slots++] = s;
      } else
        queued++;
    }
    if (done == queued)
      break;
    /* Wait only when no more can be queued. */
    uint64_t tag;
    int r = more ? cv_io_reap_ready (t->q, &tag) : cv_io_reap (t->q, &tag);
    if (r == -EAGAIN)
      continue;
    if (tag == CV_IO_BROKEN)
      return r; /* logged; nothing is in flight */
    done++;
    slotstack[free_slots++] = (unsigned) (tag >> TAG_SLOT_SHIFT);
    if (r < 0 && rc == 0)
      rc = io_fail (t, "write", off + (tag & TAG_CHUNK_MASK) * chunk, r);
  }
  return rc;
}

/* The engine for the sector at data-area offset off: during a DEK rotation,
 * sectors from the boundary on are still under the old DEK. */
static struct cv_xts *
engine (struct cv_thr *t, uint64_t off)
{
  return off < __atomic_load_n (&t->v->boundary, __ATOMIC_ACQUIRE) ? t->xts
                                                                   : t->xts_old;
}

/* Bytes of whole sectors from off (sector aligned) within count that are under
 * one DEK: a run never crosses the rotation boundary. */
static uint64_t
aligned_run (struct cv_vol *v, uint64_t off, uint32_t count)
{
  uint64_t len = count / v->ss * v->ss;
  uint64_t b = __atomic_load_n (&v->boundary, __ATOMIC_ACQUIRE);

  if (off < b && b - off < len)
    len = b - off;
  return len;
}

static bool
overlaps (uint64_t lo1, uint64_t hi1, uint64_t lo2, uint64_t hi2)
{
  return lo1 < hi2 && lo2 < hi1;
}

/* Must a request (a write, or a read) on [lo, hi) wait for the held range?
 * (rl_m held.) */
static bool
range_blocks (const struct cv_vol *v, uint64_t lo, uint64_t hi, bool write)
{
  return v->rl_held && (write || v->rl_all)
         && overlaps (lo, hi, v->rl_lo, v->rl_hi);
}

/* During a DEK rotation, before a request's first byte moves: record its
 * range [lo, hi) once the rotation step's range does not block it. So a
 * request never sees a hotzone half rewritten, and the step never rewrites
 * a sector under a request. Outside a rotation nothing is recorded: the
 * rotation is adopted under klock held for writing, with no request in
 * flight. */
static void
range_enter (struct cv_thr *t, uint64_t lo, uint64_t hi, bool write)
{
  struct cv_vol *v = t->v;

  if (!v->odek)
    return;
  pthread_mutex_lock (&v->rl_m);
  if (range_blocks (v, lo, hi, write))
    v->rl_waits++;
  while (range_blocks (v, lo, hi, write))
    pthread_cond_wait (&v->rl_cv, &v->rl_m);
  t->rl_on = true;
  t->rl_write = write;
  t->rl_lo = lo;
  t->rl_hi = hi;
  pthread_mutex_unlock (&v->rl_m);
}

static void
range_leave (struct cv_thr *t)
{
  struct cv_vol *v = t->v;

  if (!t->rl_on)
    return;
  pthread_mutex_lock (&v->rl_m);
  t->rl_on = false;
  if (v->rl_held)
    pthread_cond_broadcast (&v->rl_cv);
  pthread_mutex_unlock (&v->rl_m);
}

/* Does a request in flight that the held range blocks overlap it? (rl_m
 * held.) */
static bool
range_busy (struct cv_vol *v)
{
  bool busy = false;

  pthread_mutex_lock (&v->thr_lock);
  for (struct cv_thr *t = v->thrs; t && !busy; t = t->next)
    busy = t->rl_on && range_blocks (v, t->rl_lo, t->rl_hi, t->rl_write);
  pthread_mutex_unlock (&v->thr_lock);
  return busy;
}

void
cv_vol_range_lock (struct cv_vol *v, uint64_t lo, uint64_t hi, bool all)
{
  pthread_mutex_lock (&v->rl_m);
  v->rl_held = true;
  v->rl_all = all;
  v->rl_waits = 0;
  v->rl_lo = lo;
  v->rl_hi = hi;
  while (range_busy (v))
    pthread_cond_wait (&v->rl_cv, &v->rl_m);
  pthread_mutex_unlock (&v->rl_m);
}

void
cv_vol_range_reads (struct cv_vol *v, bool block)
{
  pthread_mutex_lock (&v->rl_m);
  v->rl_all = block;
  if (block)
    while (range_busy (v))
      pthread_cond_wait (&v->rl_cv, &v->rl_m);
  else
    pthread_cond_broadcast (&v->rl_cv);
  pthread_mutex_unlock (&v->rl_m);
}

void
cv_vol_range_unlock (struct cv_vol *v)
{
  pthread_mutex_lock (&v->rl_m);
  v->rl_held = false;
  v->rl_waits_last = v->rl_waits;
  pthread_cond_broadcast (&v->rl_cv);
  pthread_mutex_unlock (&v->rl_m);
}

static pthread_mutex_t *
stripe_of (struct cv_vol *v, uint64_t sector)
{
  return &v->stripe[(sector * 0x9E3779B97F4A7C15ULL) >> 54 & (NSTRIPES - 1)];
}

/* Read sector sec and decrypt it into the thread's edge buffer (which the
 * caller wipes when done). */
static int
read_sector (struct cv_thr *t, struct cv_xts *x, uint64_t sec)
{
  struct cv_vol *v = t->v;

  if (v->map)
    return map_read (t, x, t->edge, sec * v->ss, v->ss);
  int rc = cv_io_pread (t->q, t->edge, v->ss, v->data_offset + sec * v->ss);

  if (rc < 0)
    return io_fail (t, "read", sec * v->ss, rc);
  return cv_xts_decrypt (x, t->edge, t->edge, sec, 1);
}

/* Read-modify-write part of one sector: put len bytes from src (NULL: zeros)
 * at byte skip within sector sec, under that sector's stripe lock. */
static int
rmw_sector (struct cv_thr *t, struct cv_xts *x, uint64_t sec, size_t skip,
            const uint8_t *src, size_t len, bool fua)
{
  struct cv_vol *v = t->v;
  uint64_t off = sec * v->ss;
  pthread_mutex_t *m = stripe_of (v, sec);
  int rc;

  pthread_mutex_lock (m);
  if ((rc = read_sector (t, x, sec)) == 0) {
    if (src)
      memcpy (t->edge + skip, src, len);
    else
      memset (t->edge + skip, 0, len);
    rc = cv_xts_encrypt (x, t->edge, t->edge, sec, 1);
    if (rc == 0
        && (rc = cv_io_pwrite (t->q, t->edge, v->ss, v->data_offset + off, fua))
               < 0)
      rc = io_fail (t, "write", off, rc);
  }
  cv_wipe (t->edge, v->ss);
  pthread_mutex_unlock (m);
  return rc;
}

/* Check [off, off+count) lies in the volume, and that the volume serves
 * data (not after a rotation step it could not finish: see v->stale, which
 * rotate.c reported when it happened). */
static int
check_range (struct cv_vol *v, const char *op, uint32_t count, uint64_t off,
             int err)
{
  if (v->stale) {
    cv_debug ("%s: %s refused: reopen the volume to finish its rotation step",
              v->path, op);
    return -EIO;
  }
  if (off > v->size || count > v->size - off) {
    cv_err ("%s: %s of %u bytes at offset %llu is beyond the end of the "
            "volume (%llu bytes)",
            v->path, op, count, (unsigned long long) off,
            (unsigned long long) v->size);
    return err;
  }
  return 0;
}

/* Begin a request: hold the key state for reading until key_leave. While
 * revoked the request is refused (-EPERM; the revocation was logged once). */
static int
key_enter (struct cv_vol *v)
{
  pthread_rwlock_rdlock (&v->klock);
  if (v->state == CV_KEY_REVOKED) {
    pthread_rwlock_unlock (&v->klock);
    __atomic_add_fetch (&v->refused, 1, __ATOMIC_RELAXED);
    return -EPERM;
  }
  return 0;
}

/* End a request begun by key_enter; return rc, counted in v->failed when
 * it is an error (a refusal never gets here). */
static int
key_leave (struct cv_vol *v, int rc)
{
  pthread_rwlock_unlock (&v->klock);
  if (rc < 0)
    __atomic_add_fetch (&v->failed, 1, __ATOMIC_RELAXED);
  return rc;
}

/* Count a request served by t that moved count bytes (*bytes: one of t->n's
 * byte counts, or NULL). Only t's thread writes t->n; cv_vol_counts reads
 * it from another, hence the atomic stores (plain ones underneath: no
 * locked instruction). */
static void
count_served (struct cv_thr *t, uint64_t *bytes, uint32_t count)
{
  __atomic_store_n (&t->n.served, t->n.served + 1, __ATOMIC_RELAXED);
  if (bytes)
    __atomic_store_n (bytes, *bytes + count, __ATOMIC_RELAXED);
}

static int
read_sectors (struct cv_thr *t, uint8_t *p, uint32_t count, uint64_t off)
{
  struct cv_vol *v = t->v;
  int rc;

  while (count > 0) {
    uint64_t sec = off / v->ss;
    size_t skip = off % v->ss;
    if (skip || count < v->ss) {
      /* Partial sector: decrypt it whole, copy out the part asked for. */
      size_t n = v->ss - skip < count ? v->ss - skip : count;
      if ((rc = read_sector (t, engine (t, off), sec)) < 0)
        return rc;
      memcpy (p, t->edge + skip, n);
      cv_wipe (t->edge, v->ss);
      p += n, off += n, count -= n;
      continue;
    }
    uint64_t len = aligned_run (v, off, count);
    rc = v->map ? map_read (t, engine (t, off), p, off, len)
                : read_aligned (t, engine (t, off), p, off, len);
    if (rc < 0)
      return rc;
    p += len, off += len, count -= len;
  }
  return 0;
}

static int
read_range (struct cv_vol *v, void *buf, uint32_t count, uint64_t off)
{
  struct cv_thr *t;
  int rc = check_range (v, "read", count, off, -EIO);

  if (rc < 0 || (rc = thr_get (v, &t)) < 0)
    return rc;
  range_enter (t, off, off + count, false);
  rc = read_sectors (t, buf, count, off);
  range_leave (t);
  if (rc < 0)
    cv_wipe (buf, count); /* what was decrypted before the failure */
  else
    count_served (t, &t->n.bytes_read, count);
  return rc;
}

/* Write (src) or zero (src == NULL) any byte range. */
static int
write_sectors (struct cv_thr *t, const uint8_t *src, uint32_t count,
               uint64_t off, bool fua)
{
  struct cv_vol *v = t->v;
  int rc;

  while (count > 0) {
    uint64_t sec = off / v->ss;
    size_t skip = off % v->ss;
    if (skip || count < v->ss) {
      size_t n = v->ss - skip < count ? v->ss - skip : count;
      if ((rc = rmw_sector (t, engine (t, off), sec, skip, src, n, fua)) < 0)
        return rc;
      if (src)
        src += n;
      off += n, count -= n;
      continue;
    }
    uint64_t len = aligned_run (v, off, count);
    if ((rc = write_aligned (t, engine (t, off), src, off, len, fua)) < 0)
      return rc;
    if (src)
      src += len;
    off += len, count -= len;
  }
  return 0;
}

static int
write_range (struct cv_vol *v, const uint8_t *src, uint32_t count, uint64_t off,
             bool fua)
{
  struct cv_thr *t;
  int rc = check_range (v, src ? "write" : "zero", count, off, -ENOSPC);

  if (rc < 0 || (rc = thr_get (v, &t)) < 0)
    return rc;
  range_enter (t, off, off + count, true);
  rc = write_sectors (t, src, count, off, fua);
  range_leave (t);
  if (rc == 0)
    count_served (t, &t->n.bytes_written, count);
  return rc;
}

int
cv_vol_pread (struct cv_vol *v, void *buf, uint32_t count, uint64_t off)
{
  int rc = key_enter (v);

  if (rc < 0)
    return rc;
  return key_leave (v, read_range (v, buf, count, off));
}

int
cv_vol_pwrite (struct cv_vol *v, const void *buf, uint32_t count, uint64_t off,
               bool fua)
{
  int rc = key_enter (v);

  if (rc < 0)
    return rc;
  return key_leave (v, write_range (v, buf, count, off, fua));
}

int
cv_vol_zero (struct cv_vol *v, uint32_t count, uint64_t off, bool fua)
{
  int rc = key_enter (v);

  if (rc < 0)
    return rc;
  return key_leave (v, write_range (v, NULL, count, off, fua));
}

int
cv_vol_flush (struct cv_vol *v)
{
  struct cv_thr *t;
  int rc = key_enter (v);

  if (rc < 0)
    return rc;
  if ((rc = thr_get (v, &t)) < 0)
    return key_leave (v, rc);
  if ((rc = cv_io_flush (t->q)) < 0 && cv_io_queue_error (t->q) == 0)
    cv_err ("%s: flush: %s", v->path, strerror (-rc));
  if (rc == 0)
    count_served (t, NULL, 0);
  return key_leave (v, rc);
}

/* Refuse a header older than the volume (its seal sector) before a sector
 * is served; write a seal that lags its header again (a commit interrupted
 * between the two). */
static int
check_seal (const struct cv_vol_opts *o, struct cv_dev *dd, bool attached,
            const struct cv_header *h, const struct cv_key *dek)
{
  bool behind;
  int rc = cv_seal_check (dd, attached, h, dek, &behind);

  if (rc == 0 && behind && !o->readonly
      && cv_seal_write (dd, attached, h, dek) == 0)
    cv_info ("%s: the seal sector lagged the header (a header update was "
             "interrupted); written again",
             o->path);
  return rc;
}

/* The message for an in-use lock held elsewhere (-EBUSY). */
static void
in_use_busy (const struct cv_vol_opts *o, const char *hname)
{
  if (o->exclusive)
    cv_err ("%s is in use (being served, or changed by another "
            "cryptvol-keymgr); stop the server first",
            hname);
  else
    cv_err ("%s: cryptvol-keymgr is changing this volume offline "
            "(rotate-dek, restore-header or shred); try again when it ends",
            hname);
}

int
cv_vol_open (const struct cv_vol_opts *o, struct cv_vol **out)
{
  const char *hname = o->header_path ? o->header_path : o->path;
  const struct cv_io_open_opts io_opts = { .kind = o->io,
                                           .path = o->path,
                                           .rbd = o->rbd,
                                           .readonly = o->readonly,
                                           .direct = o->direct,
                                           .faults = o->faults };
  struct cv_io *io = NULL;
  struct cv_dev *hdev = NULL, *ddev = NULL;
  bool attached = hname == o->path;
  struct cv_header *hdr = NULL;
  struct cv_key *dek = NULL;
  struct cv_creds *kept = NULL;
  int64_t wrap_id = -1;
  uint64_t fsize, doff, size, mlen;
  const uint8_t *mbase, *map = NULL;
  unsigned valid, ss;
  enum cv_xts_impl impl;
  int rc;

  if ((rc = cv_io_open (&io_opts, &io)) < 0)
    return rc;
  if ((rc = cv_dev_open (hname, "header", o->readonly, o->rbd, &hdev)) < 0)
    goto fail;
  if ((rc = cv_lock_in_use (hdev, o->exclusive, false)) == -EBUSY)
    in_use_busy (o, hname);
  /* Unlocked first: the geometry is read from the copy that authenticates
   * (cv_unlock may set a tampered copy aside for the other). */
  if (rc < 0 || (rc = cv_hdr_read (hdev, &hdr, &valid)) < 0
      || (rc = cv_unlock (hdr, hname, o->creds, o->wraps, &dek, &wrap_id)) < 0
      || (rc = cv_io_size (io, &fsize)) < 0)
    goto fail;
  doff = cv_hdr_data_offset (hdr);
  size = cv_hdr_size (hdr);
  ss = cv_hdr_sector_size (hdr);
  if (fsize < doff || fsize - doff < size) {
    cv_err ("%s is %llu bytes, shorter than its header says (data offset "
            "%llu + size %llu); is it the right file, or was it truncated?",
            o->path, (unsigned long long) fsize, (unsigned long long) doff,
            (unsigned long long) size);
    rc = -EINVAL;
    goto fail;
  }
  if (o->read_path != CV_READ_PREAD && cv_io_map (io, &mbase, &mlen) == 0
      && mlen >= doff + size)
    map = mbase + doff;
  else if (o->read_path == CV_READ_MAP) {
    cv_err ("%s: read-path=map needs a regular file opened without "
            "direct=true; use read-path=auto or read-path=pread",
            o->path);
    rc = -ENOTSUP;
    goto fail;
  }
  if (o->direct && (doff % 4096 || ss < 4096))
    cv_warn ("%s: direct=true with sector size %u and data offset %llu: "
             "devices with 4096-byte logical blocks will refuse I/O",
             o->path, ss, (unsigned long long) doff);

  if ((rc = cv_xts_pick (o->xts_impl, ss, &impl)) < 0
      || (!attached
          && (rc
              = cv_dev_open (o->path, "data file", o->readonly, o->rbd, &ddev))
                 < 0)
      || (rc = check_seal (o, attached ? hdev : ddev, attached, hdr, dek)) < 0
      || (o->keep_creds && (rc = cv_creds_copy (o->creds, &kept)) < 0))
    goto fail;

  struct cv_vol *v = calloc (1, sizeof *v);
  if (!v || !(v->path = strdup (o->path)) || !(v->hname = strdup (hname))
      || !(v->uuid = strdup (cv_hdr_uuid (hdr)))) {
    if (v) {
      free (v->path);
      free (v->hname);
    }
    free (v);
    cv_err ("%s: out of memory", o->path);
    rc = -ENOMEM;
    goto fail;
  }
  v->io = io;
  v->ddev = attached ? hdev : ddev;
  v->hdev = hdev;
  v->readonly = o->readonly;
  v->hdr = hdr;
  v->dek = dek;
  v->size = v->boundary = size;
  v->data_offset = doff;
  v->ss = ss;
  v->chunk = cv_io_chunk (io);
  v->xts_impl = impl;
  v->direct = o->direct;
  v->map = map;
  v->creds = kept;
  cv_vol_key_init (v, wrap_id);
  pthread_mutex_init (&v->thr_lock, NULL);
  pthread_mutex_init (&v->rl_m, NULL);
  pthread_cond_init (&v->rl_cv, NULL);
  cv_rot_engine_init (v);
  for (unsigned i = 0; i < NSTRIPES; i++)
    pthread_mutex_init (&v->stripe[i], NULL);
  v->id = __atomic_fetch_add (&next_vid, 1, __ATOMIC_RELAXED);
  pthread_once (&thread_key_once, thread_key_make);
  if ((rc = thread_key_err) != 0) {
    cv_err ("%s: cannot make per-thread state: %s", o->path, strerror (rc));
    cv_vol_close (v);
    return -rc;
  }
  if ((rc = cv_rot_open (v)) < 0) {
    cv_vol_close (v);
    return rc;
  }
  *out = v;
  return 0;

fail:
  cv_io_close (io);
  cv_dev_close (ddev);
  cv_dev_close (hdev);
  cv_hdr_free (hdr);
  cv_key_free (dek);
  cv_creds_free (kept);
  return rc;
}

void
cv_vol_close (struct cv_vol *v)
{
  if (!v)
    return;
  cv_vol_rotate_stop (v);
  cv_vol_drop_threads (v);
  cv_vol_key_fini (v);
  for (unsigned i = 0; i < NSTRIPES; i++)
    pthread_mutex_destroy (&v->stripe[i]);
  pthread_mutex_destroy (&v->thr_lock);
  pthread_mutex_destroy (&v->rl_m);
  pthread_cond_destroy (&v->rl_cv);
  cv_rot_engine_fini (v);
  cv_io_close (v->io);
  if (v->ddev != v->hdev)
    cv_dev_close (v->ddev);
  cv_dev_close (v->hdev);
  cv_hdr_free (v->hdr);
  cv_key_free (v->dek);
  cv_key_free (v->odek);
  free (v->path);
  free (v->hname);
  free (v->uuid);
  free (v);
}

void
cv_vol_wipe_threads (struct cv_vol *v)
{
  pthread_mutex_lock (&v->thr_lock);
  for (struct cv_thr *t = v->thrs; t; t = t->next) {
    cv_xts_free (t->xts);
    cv_xts_free (t->xts_old);
    t->xts = t->xts_old = NULL;
  }
  pthread_mutex_unlock (&v->thr_lock);
}

/* Each state's owner frees the state itself (thr_find, thr_exit): it is in
 * the owner's list. */
void
cv_vol_drop_threads (struct cv_vol *v)
{
  pthread_mutex_lock (&thr_global);
  pthread_mutex_lock (&v->thr_lock);
  while (v->thrs) {
    struct cv_thr *t = v->thrs;
    thr_unlink (v, &v->thrs);
    thr_release (t);
    __atomic_store_n (&t->dead, true, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock (&v->thr_lock);
  pthread_mutex_unlock (&thr_global);
  /* The caller's own dead states go now (the rest at their next request or
   * exit). */
  thr_find (v);
}

void
cv_vol_counts (struct cv_vol *v, struct cv_vol_counts *n)
{
  pthread_mutex_lock (&v->thr_lock);
  *n = v->gone;
  for (struct cv_thr *t = v->thrs; t; t = t->next) {
    n->served += __atomic_load_n (&t->n.served, __ATOMIC_RELAXED);
    n->bytes_read += __atomic_load_n (&t->n.bytes_read, __ATOMIC_RELAXED);
    n->bytes_written += __atomic_load_n (&t->n.bytes_written, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock (&v->thr_lock);
}

const struct cv_header *
cv_vol_header (const struct cv_vol *v)
{
  return v->hdr;
}

const struct cv_key *
cv_vol_dek (const struct cv_vol *v)
{
  return v->dek;
}

uint64_t
cv_vol_size (const struct cv_vol *v)
{
  return v->size;
}

unsigned
cv_vol_sector_size (const struct cv_vol *v)
{
  return v->ss;
}

const char *
cv_vol_uuid (const struct cv_vol *v)
{
  return v->uuid;
}

const char *
cv_vol_path (const struct cv_vol *v)
{
  return v->path;
}

int
cv_vol_after_fork (struct cv_vol *v)
{
  return cv_key_relock_all ();
}

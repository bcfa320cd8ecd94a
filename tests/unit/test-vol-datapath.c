/* The lib/vol data path against a plaintext model: writes, zeroes and reads
 * at every sector and chunk edge, requests beyond the end, for both sector
 * sizes, buffered (reads from the file's mapping and by pread) and O_DIRECT;
 * a mapped file truncated underneath. */
#include <pthread.h>

#include "test-vol-model.h"

/* 3 chunks and 2 pages: chunk edges inside, a short last chunk. */
#define VOLSIZE (3 * CHUNK + 2 * 4096)

/* An operation succeeded, said nothing, and the volume is still the model. */
static void
op_ok (struct vm *m, int rc, const char *op, uint64_t off, uint32_t len)
{
  char what[96];

  snprintf (what, sizeof what, "%s %u at %llu (ss %u%s)", op, len,
            (unsigned long long) off, m->ss, m->direct ? ", direct" : "");
  CHECK (rc == 0 && error_lines () == 0, "%s: rc %d: %s", what, rc,
         harness_logged ());
  vm_check (m, what);
}

/* Writes, zeroes and reads of ranges starting and ending on each side of
 * every edge: the first and last byte of a sector, one byte, two sectors,
 * a chunk and more, the last sector of the volume, nothing at all. */
static void
edges (struct vm *m)
{
  const uint64_t ss = m->ss, sz = m->size;
  const uint64_t edge[] = { 0, ss, 2 * ss, CHUNK, 2 * CHUNK, sz - ss, sz };
  const int64_t delta[] = { -1, 0, 1, (int64_t) ss / 2 };
  const uint64_t len[]
      = { 0,          1,         ss - 1,        ss, ss + 1, 2 * ss,
          2 * ss + 1, CHUNK - 1, CHUNK + ss + 1 };
  unsigned n = 0;

  for (size_t e = 0; e < sizeof edge / sizeof *edge; e++)
    for (size_t d = 0; d < sizeof delta / sizeof *delta; d++)
      for (size_t l = 0; l < sizeof len / sizeof *len; l++)
        for (int end = 0; end < 2; end++) {
          /* The range starts (end = 0) or ends (end = 1) at edge + delta. */
          int64_t at = (int64_t) edge[e] + delta[d];
          int64_t off = end ? at - (int64_t) len[l] : at;
          if (off < 0 || (uint64_t) off + len[l] > sz)
            continue;
          uint32_t c = (uint32_t) len[l];
          n++;
          if (n % 3 == 0)
            op_ok (m, vm_zero (m, (uint64_t) off, c), "zero", (uint64_t) off,
                   c);
          else
            op_ok (m, vm_write (m, (uint64_t) off, c, n & 1), "write",
                   (uint64_t) off, c);
          /* Read the range and a byte more on each side where there is. */
          uint64_t roff = off > 0 ? (uint64_t) off - 1 : 0;
          uint64_t rend = (uint64_t) off + c < sz ? (uint64_t) off + c + 1 : sz;
          op_ok (m, vm_read (m, roff, (uint32_t) (rend - roff), n & 2), "read",
                 roff, (uint32_t) (rend - roff));
        }
  CHECK (n > 200, "only %u edge ranges", n);
  vm_check_disk (m, "after the edge cases");
}

/* Requests that do not fit fail with the documented errno and one error,
 * change nothing, and touch nothing after the data area. */
static void
beyond_end (struct vm *m)
{
  const uint64_t ss = m->ss, sz = m->size;
  const struct {
    uint64_t off;
    uint32_t len;
  } bad[] = {
    { sz - ss, (uint32_t) (2 * ss) },
    { sz - 1, 2 },
    { sz, 1 },
    { sz + ss, 0 },
    { 0, (uint32_t) (sz + 1) },
    { UINT64_MAX - 1, 2 },
    { UINT64_MAX, UINT32_MAX },
  };

  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint64_t off = bad[i].off;
    uint32_t len = bad[i].len;
    /* Writes and reads need a buffer: up to the scratch buffer's size. */
    bool buffered = len <= m->size + ALIGNMENT;
    int rc;

    if (buffered) {
      harness_log_clear ();
      rc = cv_vol_pwrite (m->v, m->buf, len, off, false);
      CHECK (rc == -ENOSPC && error_lines () == 1
                 && strstr (harness_logged (), "beyond the end"),
             "write %u at %llu: rc %d, log: %s", len, (unsigned long long) off,
             rc, harness_logged ());
      harness_log_clear ();
      rc = cv_vol_pread (m->v, m->buf, len, off);
      CHECK (rc == -EIO && error_lines () == 1,
             "read %u at %llu: rc %d, log: %s", len, (unsigned long long) off,
             rc, harness_logged ());
    }
    harness_log_clear ();
    rc = cv_vol_zero (m->v, len, off, false);
    CHECK (rc == -ENOSPC && error_lines () == 1,
           "zero %u at %llu: rc %d, log: %s", len, (unsigned long long) off, rc,
           harness_logged ());
    vm_check (m, "after a request beyond the end");
  }
  /* Nothing, at the very end, is fine. */
  op_ok (m, vm_write (m, sz, 0, false), "write", sz, 0);
  op_ok (m, vm_zero (m, sz, 0), "zero", sz, 0);
  op_ok (m, vm_read (m, sz, 0, false), "read", sz, 0);
  harness_log_clear ();
  op_ok (m, cv_vol_flush (m->v), "flush", 0, 0);
  vm_check_disk (m, "after requests beyond the end");
}

#define NTHREADS 4

struct worker {
  pthread_t tid;
  struct vm *m;
  unsigned id;
  int failures;
};

/* Thread id owns bytes [id * ss/4, (id + 1) * ss/4) of each of 8 sectors
 * around a chunk edge, and writes parts of them again and again: every
 * write is a read-modify-write of a sector the other threads are changing
 * too. The model's bytes of each thread are its own. */
static void *
worker (void *arg)
{
  struct worker *w = arg;
  struct vm *m = w->m;
  const uint64_t q = m->ss / NTHREADS, first = CHUNK / m->ss - 4;
  uint8_t buf[1024];

  for (unsigned r = 0; r < 40; r++)
    for (uint64_t s = first; s < first + 8; s++) {
      uint64_t off = s * m->ss + w->id * q + r % 3;
      uint32_t len = (uint32_t) q - 3;
      memset (buf, (int) (w->id * 64 + r), len);
      if (cv_vol_pwrite (m->v, buf, len, off, false) == 0)
        memcpy (m->model + off, buf, len);
      else
        w->failures++;
    }
  return NULL;
}

/* Threads writing different bytes of the same sectors at once lose none of
 * them (the per-sector locks of the read-modify-write). */
static void
concurrent_rmw (struct vm *m)
{
  struct worker w[NTHREADS];
  char what[64];

  harness_log_clear ();
  for (unsigned i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker){ .m = m, .id = i };
    if (pthread_create (&w[i].tid, NULL, worker, &w[i]) != 0)
      exit (99);
  }
  for (unsigned i = 0; i < NTHREADS; i++) {
    pthread_join (w[i].tid, NULL);
    CHECK (w[i].failures == 0, "thread %u: %d writes failed", i, w[i].failures);
  }
  CHECK (error_lines () == 0, "concurrent writes: %s", harness_logged ());
  snprintf (what, sizeof what, "after concurrent writes (ss %u%s)", m->ss,
            m->direct ? ", direct" : "");
  vm_check (m, what);
  vm_check_disk (m, what);
}

/* The same volume closed and opened again reads the same. */
static void
reopen (struct vm *m)
{
  vm_close (m);
  vm_open (m);
  vm_check (m, "after reopening");
}

/* What cv_vol_open refuses, with one error each: a missing file, a volume
 * in use by another opener, a file shorter than its header says. Leaves the
 * volume closed and cut short. */
static void
open_errors (struct vm *m)
{
  struct vm other = *m;
  int rc;

  snprintf (other.path, sizeof other.path, "%s/missing", vm_dir);
  harness_log_clear ();
  rc = vm_open_opts (&other, false, false);
  CHECK (rc == -ENOENT && error_lines () == 1
             && strstr (harness_logged (), other.path),
         "open a missing file: %d: %s", rc, harness_logged ());

  /* m is open: an exclusive open is refused; and the other way round. */
  other = *m;
  harness_log_clear ();
  rc = vm_open_opts (&other, false, true);
  CHECK (rc == -EBUSY && error_lines () == 1
             && strstr (harness_logged (), "in use"),
         "exclusive open of a volume in use: %d: %s", rc, harness_logged ());
  if (rc == 0)
    vm_close (&other);
  vm_close (m);
  CHECK (vm_open_opts (m, false, true) == 0, "exclusive open");
  harness_log_clear ();
  rc = vm_open_opts (&other, false, false);
  CHECK (rc == -EBUSY && error_lines () == 1
             && strstr (harness_logged (), "offline"),
         "open of a volume opened exclusively: %d: %s", rc, harness_logged ());
  vm_close (m);

  CHECK (truncate (m->path, m->doff + m->size - 1) == 0, "truncate");
  harness_log_clear ();
  rc = vm_open_opts (m, false, false);
  CHECK (rc == -EINVAL && error_lines () == 1
             && strstr (harness_logged (), "shorter than its header says"),
         "open a truncated volume: %d: %s", rc, harness_logged ());
  if (rc == 0)
    vm_close (m);
}

/* read-path=map where there is no mapping (O_DIRECT) is refused at open,
 * with one error saying what to do. */
static void
map_refused (struct vm *m)
{
  struct vm other = *m;
  int rc;

  other.read_path = CV_READ_MAP;
  harness_log_clear ();
  rc = vm_open_opts (&other, false, false);
  CHECK (rc == -ENOTSUP && error_lines () == 1
             && strstr (harness_logged (), "read-path=pread"),
         "read-path=map with O_DIRECT: %d: %s", rc, harness_logged ());
  if (rc == 0)
    vm_close (&other);
}

struct reader {
  pthread_t tid;
  struct vm *m;
  unsigned id;
  uint64_t cut; /* data-area offset where the file now ends */
  int wrong;    /* reads that did not end as they should */
};

/* Read ranges on both sides of the cut and across it: those before it read
 * the model; the others fail with -EIO and leave no plaintext behind. */
static void *
reader (void *arg)
{
  struct reader *r = arg;
  struct vm *m = r->m;
  const uint32_t len = 3 * 4096 + 100;
  uint8_t *buf = malloc (len);

  if (!buf)
    exit (99);
  for (unsigned i = 0; i < 200; i++) {
    uint64_t off = (i * 7919 + r->id * 4096 + 17) % (m->size - len);
    memset (buf, 0xAA, len);
    int rc = cv_vol_pread (m->v, buf, len, off);
    bool zeroed = true;
    for (uint32_t k = 0; k < len && zeroed; k++)
      zeroed = buf[k] == 0;
    if (off + len <= r->cut ? rc != 0 || memcmp (buf, m->model + off, len)
                            : rc != -EIO || !zeroed)
      r->wrong++;
  }
  free (buf);
  return NULL;
}

/* A mapped volume whose file is truncated while threads read: reads past
 * the new end fail with -EIO and an error naming the file, reads before it
 * are right; once the bytes are written back, everything reads right. */
static void
truncated_underneath (struct vm *m)
{
  struct reader r[NTHREADS];
  const uint64_t cut = m->size / 2 / 4096 * 4096;
  const size_t tail = m->size - cut;
  uint8_t *saved = malloc (tail);
  CLEANUP_CLOSE int fd = open (m->path, O_RDWR | O_CLOEXEC);

  if (!saved || fd < 0
      || pread (fd, saved, tail, m->doff + cut) != (ssize_t) tail)
    exit (99);
  vm_close (m);
  m->read_path = CV_READ_MAP;
  vm_open (m);
  CHECK (ftruncate (fd, m->doff + cut) == 0, "truncate");
  harness_log_clear ();
  for (unsigned i = 0; i < NTHREADS; i++) {
    r[i] = (struct reader){ .m = m, .id = i, .cut = cut };
    if (pthread_create (&r[i].tid, NULL, reader, &r[i]) != 0)
      exit (99);
  }
  for (unsigned i = 0; i < NTHREADS; i++) {
    pthread_join (r[i].tid, NULL);
    CHECK (r[i].wrong == 0,
           "thread %u: %d reads wrong with the file cut at %llu", i, r[i].wrong,
           (unsigned long long) cut);
  }
  CHECK (error_lines () > 0 && strstr (harness_logged (), m->path)
             && strstr (harness_logged (), "truncated while served"),
         "the failed reads said why: %s", harness_logged ());
  CHECK (pwrite (fd, saved, tail, m->doff + cut) == (ssize_t) tail, "restore");
  free (saved);
  vm_check (m, "after restoring a file truncated underneath");
}

int
main (void)
{
  vm_init ();
  for (int direct = 0; direct < 2; direct++)
    for (unsigned ss = 512; ss <= 4096; ss *= 8)
      for (int rp = CV_READ_AUTO; rp <= CV_READ_PREAD; rp += 2) {
        struct vm m;
        if (direct && rp != CV_READ_AUTO)
          continue;
        vm_create (&m, ss, VOLSIZE, direct);
        m.read_path = rp;
        vm_close (&m);
        vm_open (&m);
        vm_check (&m, "after filling");
        vm_check_disk (&m, "after filling");
        edges (&m);
        beyond_end (&m);
        concurrent_rmw (&m);
        reopen (&m);
        if (direct)
          map_refused (&m);
        else if (rp == CV_READ_AUTO)
          truncated_underneath (&m);
        if (!direct && ss == 512 && rp == CV_READ_AUTO)
          open_errors (&m);
        vm_destroy (&m);
      }
  vm_cleanup ();
  return harness_done ("test-vol-datapath");
}

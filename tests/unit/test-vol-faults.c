/* The lib/vol data path on the portable I/O backend with injected faults:
 * each backend operation of a request fails in turn (the error reaches the
 * caller once, nothing outside the request's range changes, the next
 * request on the same thread is served), and short transfers of every size
 * give the same results as whole ones. */
#include <pthread.h>

#include "test-vol-model.h"

#define VOLSIZE (3 * CHUNK + 2 * 4096)
#define ALL_OPS (CV_IO_OP_READ | CV_IO_OP_WRITE | CV_IO_OP_FLUSH)

static struct cv_io_faults faults;
static uint8_t *data; /* what a write writes */

enum op { WRITE, ZERO, READ, FLUSH };
static const char *const op_name[] = { "write", "zero", "read", "flush" };

/* Arm the fault settings: fail operations nth to nth + count - 1 (counted
 * from now) with err; nth = 0 disarms, still counting. */
static void
arm (unsigned long nth, unsigned long count, int err)
{
  faults.ops = ALL_OPS;
  faults.nth = nth;
  faults.count = count;
  faults.err = err;
  __atomic_store_n (&faults.seen, 0, __ATOMIC_SEQ_CST);
}

/* Perform op on [off, off+len) (a write writes data; a read lands at an
 * odd address of m->buf and is compared with the model). The model follows
 * on success. */
static int
request (struct vm *m, enum op op, uint64_t off, uint32_t len)
{
  uint8_t *p = m->buf + 1;
  int rc = 0;

  harness_log_clear ();
  switch (op) {
  case WRITE:
    if ((rc = cv_vol_pwrite (m->v, data, len, off, false)) == 0)
      memcpy (m->model + off, data, len);
    break;
  case ZERO:
    if ((rc = cv_vol_zero (m->v, len, off, false)) == 0)
      memset (m->model + off, 0, len);
    break;
  case READ:
    if ((rc = cv_vol_pread (m->v, p, len, off)) == 0)
      CHECK (memcmp (p, m->model + off, len) == 0,
             "read %u at %llu differs from the model", len,
             (unsigned long long) off);
    break;
  case FLUSH:
    rc = cv_vol_flush (m->v);
    break;
  }
  return rc;
}

/* After a failed write or zero of [off, off+len): outside the range the
 * volume is as before; inside, each sector's part of the range holds either
 * all its old or all its new bytes. The model takes what is there. */
static void
check_failed_range (struct vm *m, enum op op, uint64_t off, uint32_t len,
                    const char *what)
{
  uint8_t *got = m->buf;
  int rc = cv_vol_pread (m->v, got, (uint32_t) m->size, 0);

  CHECK (rc == 0, "%s: read back: %d: %s", what, rc, harness_logged ());
  if (rc < 0)
    return;
  long long d = first_diff (got, m->model, off);
  long long e
      = first_diff (got + off + len, m->model + off + len, m->size - off - len);
  CHECK (d < 0 && e < 0,
         "%s: bytes outside the range changed (first at %lld before, %lld "
         "after)",
         what, d, e);
  for (uint64_t a = off; a < off + len;) {
    uint64_t b = (a / m->ss + 1) * m->ss;
    if (b > off + len)
      b = off + len;
    bool old = memcmp (got + a, m->model + a, b - a) == 0;
    bool new = true;
    for (uint64_t i = a; i < b && new; i++)
      new = got[i] == (op == WRITE ? data[i - off] : 0);
    CHECK (old || new, "%s: bytes %llu-%llu are neither old nor new", what,
           (unsigned long long) a, (unsigned long long) b - 1);
    a = b;
  }
  memcpy (m->model + off, got + off, len);
}

/* Fail each backend operation of the request in turn, then all of them. */
static void
sweep (struct vm *m, enum op op, uint64_t off, uint32_t len)
{
  char what[128];

  rnd_fill (data, len);
  arm (0, 0, 0);
  CHECK (request (m, op, off, len) == 0, "%s %u at %llu: %s", op_name[op], len,
         (unsigned long long) off, harness_logged ());
  unsigned long n = faults.seen;
  CHECK (n >= 1, "%s %u at %llu: no backend operation counted", op_name[op],
         len, (unsigned long long) off);
  for (unsigned long i = 1; i <= n + 1; i++) {
    /* i = n + 1: every operation fails, not only one. */
    bool all = i == n + 1;
    snprintf (what, sizeof what, "%s %u at %llu (ss %u%s), %s %lu of %lu",
              op_name[op], len, (unsigned long long) off, m->ss,
              m->direct ? ", direct" : "", all ? "all failing from" : "failing",
              all ? 1 : i, n);
    rnd_fill (data, len);
    struct cv_vol_status st0, st1;
    cv_vol_get_status (m->v, &st0);
    arm (all ? 1 : i, all ? 1000 : 1, EIO);
    int rc = request (m, op, off, len);
    arm (0, 0, 0);
    cv_vol_get_status (m->v, &st1);
    CHECK (rc == -EIO && error_lines () == 1
               && strstr (harness_logged (), m->path),
           "%s: rc %d, %d error lines: %s", what, rc, error_lines (),
           harness_logged ());
    CHECK (st1.failed == st0.failed + 1 && st1.served == st0.served
               && st1.refused == st0.refused,
           "%s: counted as failed (%llu -> %llu), not served", what,
           (unsigned long long) st0.failed, (unsigned long long) st1.failed);
    if (rc == 0 || op == READ || op == FLUSH)
      vm_check (m, what);
    else
      check_failed_range (m, op, off, len, what);
    /* The same thread's next request is served. */
    rnd_fill (data, len);
    rc = request (m, op, off, len);
    CHECK (rc == 0 && error_lines () == 0, "%s, then again: %d: %s", what, rc,
           harness_logged ());
    vm_check (m, what);
  }
  vm_check_disk (m, "after the fault sweep");
}

/* Requests of each shape: sector-aligned over chunk edges, unaligned with
 * read-modify-written edges, inside one sector, over two sectors, the whole
 * volume; each op. */
static void
sweeps (struct vm *m)
{
  const uint64_t ss = m->ss;
  const struct {
    uint64_t off;
    uint32_t len;
  } shape[] = {
    { CHUNK - 2 * ss, (uint32_t) (2 * CHUNK + ss) },
    { CHUNK - ss - 7, (uint32_t) (CHUNK + 2 * ss + 11) },
    { ss + 5, 3 },
    { 2 * ss - 1, 2 },
    { 0, VOLSIZE },
  };

  for (size_t s = 0; s < sizeof shape / sizeof *shape; s++)
    for (enum op op = WRITE; op <= READ; op++)
      sweep (m, op, shape[s].off, shape[s].len);
  sweep (m, FLUSH, 0, 0);
}

/* A write failing with ENOSPC says so, once. */
static void
enospc (struct vm *m)
{
  rnd_fill (data, 3 * m->ss);
  arm (1, 1, ENOSPC);
  int rc = request (m, WRITE, m->ss / 2, 2 * (uint32_t) m->ss);
  arm (0, 0, 0);
  CHECK (rc == -ENOSPC && error_lines () == 1
             && strstr (harness_logged (), strerror (ENOSPC)),
         "write failing with ENOSPC: %d: %s", rc, harness_logged ());
  check_failed_range (m, WRITE, m->ss / 2, 2 * (uint32_t) m->ss,
                      "after ENOSPC");
}

#define NTHREADS 4
#define ROUNDS 6

struct worker {
  pthread_t tid;
  struct vm *m;
  unsigned id;
  int failed;  /* requests that failed */
  int bad_err; /* ... with something other than -EIO */
  int retry;   /* the result of writing again after a failure */
};

/* The region thread id writes: its quarter of the volume less 100 bytes at
 * each end (unaligned edges, and bytes between regions nobody writes). */
static void
region (const struct vm *m, unsigned id, uint64_t *off, uint32_t *len)
{
  uint64_t q = m->size / NTHREADS;

  *off = id * q + 100;
  *len = (uint32_t) (q - 200);
}

static void *
worker (void *arg)
{
  struct worker *w = arg;
  uint64_t off;
  uint32_t len;
  uint8_t *buf;

  region (w->m, w->id, &off, &len);
  if (!(buf = malloc (len)))
    exit (99);
  memset (buf, (int) (w->id + 1), len);
  for (unsigned r = 0; r < ROUNDS; r++) {
    int rc = cv_vol_pwrite (w->m->v, buf, len, off, false);
    w->failed += rc < 0;
    w->bad_err += rc < 0 && rc != -EIO;
  }
  /* The same thread's next request is served. */
  if (w->failed)
    w->retry = cv_vol_pwrite (w->m->v, buf, len, off, false);
  free (buf);
  return NULL;
}

/* Threads writing their own regions while one backend operation, whichever
 * thread performs it, fails: exactly one request gets the error, one error
 * is logged, and every region ends as its thread last wrote it. */
static void
threads_one_fault (struct vm *m, unsigned long nth)
{
  struct worker w[NTHREADS];
  int failed = 0;
  char what[80];

  snprintf (what, sizeof what, "%d threads, operation %lu failing (ss %u%s)",
            NTHREADS, nth, m->ss, m->direct ? ", direct" : "");
  harness_log_clear ();
  arm (nth, 1, EIO);
  for (unsigned i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker){ .m = m, .id = i };
    if (pthread_create (&w[i].tid, NULL, worker, &w[i]) != 0)
      exit (99);
  }
  for (unsigned i = 0; i < NTHREADS; i++) {
    pthread_join (w[i].tid, NULL);
    failed += w[i].failed;
    CHECK (w[i].bad_err == 0 && w[i].retry == 0,
           "%s: thread %u: %d failures not EIO, retry %d", what, i,
           w[i].bad_err, w[i].retry);
  }
  arm (0, 0, 0);
  CHECK (failed == 1 && error_lines () == 1, "%s: %d failed requests: %s", what,
         failed, harness_logged ());
  for (unsigned i = 0; i < NTHREADS; i++) {
    uint64_t off;
    uint32_t len;
    region (m, i, &off, &len);
    memset (m->model + off, (int) (i + 1), len);
  }
  vm_check (m, what);
  vm_check_disk (m, what);
}

/* Every read and write system call moving at most max bytes: requests of
 * each shape give what the model says. */
static void
short_transfers (struct vm *m, size_t max)
{
  const uint64_t ss = m->ss;
  char what[64];

  snprintf (what, sizeof what, "short transfers of %zu (ss %u%s)", max, m->ss,
            m->direct ? ", direct" : "");
  arm (0, 0, 0);
  faults.short_max = max;
  for (enum op op = WRITE; op <= READ; op++) {
    rnd_fill (data, VOLSIZE);
    CHECK (request (m, op, CHUNK - ss - 7, CHUNK + 2 * ss + 11) == 0
               && request (m, op, 2 * ss - 1, 2) == 0
               && request (m, op, CHUNK, 2 * (uint32_t) ss) == 0,
           "%s: %s: %s", what, op_name[op], harness_logged ());
  }
  CHECK (request (m, FLUSH, 0, 0) == 0, "%s: flush", what);
  vm_check (m, what);
  faults.short_max = 0;
  vm_check_disk (m, what);
}

int
main (void)
{
  vm_init ();
  data = malloc (VOLSIZE);
  if (!data)
    return 99;
  for (int direct = 0; direct < 2; direct++)
    for (unsigned ss = 512; ss <= 4096; ss *= 8) {
      struct vm m;
      vm_create (&m, ss, VOLSIZE, direct);
      vm_close (&m);
      m.io = CV_IO_POSIX;
      m.faults = &faults;
      m.read_path = CV_READ_PREAD; /* reads through the backend's faults */
      vm_open (&m);
      vm_check (&m, "opened with faults");
      sweeps (&m);
      enospc (&m);
      threads_one_fault (&m, 1);
      threads_one_fault (&m, 13);
      /* O_DIRECT moves whole logical blocks only. */
      const size_t buffered[] = { 1, 7, 512, 4097 }, odirect[] = { 512, 4608 };
      const size_t *max = direct ? odirect : buffered;
      size_t nmax = direct ? 2 : 4;
      for (size_t i = 0; i < nmax; i++)
        short_transfers (&m, max[i]);
      vm_destroy (&m);
    }
  free (data);
  vm_cleanup ();
  return harness_done ("test-vol-faults");
}

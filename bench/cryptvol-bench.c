/* cryptvol-bench: an NBD load generator on libnbd's asynchronous API, and a
 * micro-benchmark of cryptvol's XTS engine.
 *
 *   cryptvol-bench [OPTIONS] URI          I/O against an NBD server
 *   cryptvol-bench --mode xts [OPTIONS]   the XTS engine, no server
 *   cryptvol-bench --mode xts --one-call --engine gcrypt|openssl
 *                                         the library alone, one call per
 *                                         1 MiB data unit (its best case)
 *
 * I/O modes: seq-read, seq-write (1 MiB requests by default), rand-read,
 * rand-write, mixed (4 KiB, 70% reads). Each of --conns connections keeps
 * --qd requests in flight; all connections are driven by one thread polling
 * their sockets, so the client costs one core at most. Requests completed in
 * the first --warmup seconds are not counted. One JSON object is printed on
 * stdout: MiB/s, IOPS, latency p50/p99 in microseconds, errors, and
 * all_bytes: what every request moved, the warm-up's included.
 *
 * Example, against nbdkit:
 *   nbdkit -U /tmp/sock memory 1G &
 *   cryptvol-bench --mode rand-read --qd 32 --conns 4 \
 *     'nbd+unix:///?socket=/tmp/sock' */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <gcrypt.h>
#include <libnbd.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/xts.h"

enum mode { SEQ_READ, SEQ_WRITE, RAND_READ, RAND_WRITE, MIXED, XTS };

static const char *const mode_names[]
    = { "seq-read", "seq-write", "rand-read", "rand-write", "mixed", "xts" };

struct opts {
  enum mode mode;
  unsigned qd;
  size_t bs; /* request size; 0: the mode's default */
  unsigned conns;
  double duration;
  double warmup;
  unsigned sector_size;      /* xts mode */
  enum cv_xts_impl xts_impl; /* xts mode: --engine */
  bool one_call;             /* xts mode: one library call per --bs */
  const char *uri;
};

struct conn;

/* One request slot: its buffer and when it was issued. */
struct slot {
  struct conn *c;
  uint8_t *buf;
  double start;
  bool busy;
  bool write;
};

struct conn {
  struct nbd_handle *h;
  struct slot *slots;
  unsigned inflight;
  uint64_t pos; /* sequential modes: next offset */
  uint64_t rng;
};

/* What the run measured, after the warm-up; all_ops counts the warm-up's
 * requests too (all the server did, for its CPU per byte). */
struct stats {
  double measure_start;
  uint64_t ops, all_ops, errors;
  float *lat; /* microseconds, one per counted request */
  size_t nlat, cap;
};

static struct stats st;
static uint64_t export_size;

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* User CPU seconds of the calling thread so far: what `openssl speed`
 * divides by, and what another process on the same core does not inflate. */
static double
user_secs (void)
{
  struct rusage ru;

  getrusage (RUSAGE_THREAD, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

static uint64_t
xorshift (uint64_t *s)
{
  uint64_t x = *s;

  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static void
record_latency (double us)
{
  if (st.nlat == st.cap) {
    size_t cap = st.cap ? st.cap * 2 : 65536;
    float *p = realloc (st.lat, cap * sizeof *p);
    if (!p) {
      perror ("realloc");
      exit (EXIT_FAILURE);
    }
    st.lat = p, st.cap = cap;
  }
  st.lat[st.nlat++] = (float) us;
}

/* libnbd calls this when a request completes; returning 1 retires it. */
static int
completed (void *user_data, int *error)
{
  struct slot *s = user_data;
  double t = now ();

  s->busy = false;
  s->c->inflight--;
  if (*error) {
    st.errors++;
    return 1;
  }
  st.all_ops++;
  if (s->start >= st.measure_start) {
    st.ops++;
    record_latency ((t - s->start) * 1e6);
  }
  return 1;
}

/* Issue the next request of the workload on slot s. */
static int
issue (const struct opts *o, struct slot *s, double t)
{
  struct conn *c = s->c;
  uint64_t off;
  bool write;
  int64_t r;

  switch (o->mode) {
  case SEQ_READ:
  case SEQ_WRITE:
    if (c->pos + o->bs > export_size)
      c->pos = 0;
    off = c->pos;
    c->pos += o->bs;
    write = o->mode == SEQ_WRITE;
    break;
  default:
    off = xorshift (&c->rng) % (export_size / o->bs) * o->bs;
    write = o->mode == RAND_WRITE
            || (o->mode == MIXED && xorshift (&c->rng) % 100 >= 70);
    break;
  }
  s->busy = true;
  s->write = write;
  s->start = t;
  c->inflight++;
  nbd_completion_callback cb = { .callback = completed, .user_data = s };
  if (write)
    r = nbd_aio_pwrite (c->h, s->buf, o->bs, off, cb, 0);
  else
    r = nbd_aio_pread (c->h, s->buf, o->bs, off, cb, 0);
  if (r == -1) {
    fprintf (stderr, "cryptvol-bench: %s\n", nbd_get_error ());
    return -1;
  }
  return 0;
}

static int
cmp_float (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;

  return (x > y) - (x < y);
}

static double
percentile (double p)
{
  if (st.nlat == 0)
    return 0;
  size_t i = (size_t) (p / 100.0 * (st.nlat - 1) + 0.5);
  return st.lat[i];
}

/* Run the I/O workload; print its JSON. */
static int
run_io (const struct opts *o)
{
  struct conn *conns = calloc (o->conns, sizeof *conns);
  struct pollfd *pfd = calloc (o->conns, sizeof *pfd);
  uint64_t bytes_counted = 0;

  if (!conns || !pfd) {
    perror ("calloc");
    return -1;
  }
  for (unsigned i = 0; i < o->conns; i++) {
    struct conn *c = &conns[i];
    c->h = nbd_create ();
    if (!c->h || nbd_connect_uri (c->h, o->uri) == -1) {
      fprintf (stderr, "cryptvol-bench: %s: %s\n", o->uri, nbd_get_error ());
      return -1;
    }
    if (i == 0) {
      int64_t sz = nbd_get_size (c->h);
      if (sz < (int64_t) o->bs * o->conns) {
        fprintf (stderr, "cryptvol-bench: export too small\n");
        return -1;
      }
      export_size = (uint64_t) sz;
    }
    c->rng = 0x9E3779B97F4A7C15ULL * (i + 1);
    c->pos = export_size / o->conns * i / o->bs * o->bs;
    c->slots = calloc (o->qd, sizeof *c->slots);
    if (!c->slots) {
      perror ("calloc");
      return -1;
    }
    for (unsigned j = 0; j < o->qd; j++) {
      struct slot *s = &c->slots[j];
      s->c = c;
      if (posix_memalign ((void **) &s->buf, 4096, o->bs) != 0) {
        perror ("posix_memalign");
        return -1;
      }
      for (size_t k = 0; k < o->bs; k += 8) {
        uint64_t x = xorshift (&c->rng);
        memcpy (s->buf + k, &x, 8);
      }
    }
  }

  double t = now ();
  st.measure_start = t + o->warmup;
  double end = st.measure_start + o->duration;
  for (;;) {
    bool running = t < end, any = false;
    for (unsigned i = 0; i < o->conns; i++) {
      struct conn *c = &conns[i];
      for (unsigned j = 0; running && j < o->qd; j++)
        if (!c->slots[j].busy && issue (o, &c->slots[j], t) < 0)
          return -1;
      unsigned dir = nbd_aio_get_direction (c->h);
      pfd[i].fd = nbd_aio_get_fd (c->h);
      pfd[i].events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0)
                      | (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
      pfd[i].revents = 0;
      any |= c->inflight > 0;
    }
    if (!running && !any)
      break;
    if (poll (pfd, o->conns, 10000) < 0 && errno != EINTR) {
      perror ("poll");
      return -1;
    }
    for (unsigned i = 0; i < o->conns; i++) {
      int r = 0;
      if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
        r = nbd_aio_notify_read (conns[i].h);
      else if (pfd[i].revents & POLLOUT)
        r = nbd_aio_notify_write (conns[i].h);
      if (r == -1) {
        fprintf (stderr, "cryptvol-bench: %s\n", nbd_get_error ());
        return -1;
      }
    }
    t = now ();
  }
  /* Requests issued before end completed after it; count the time they took
   * so that ops / seconds stays honest. */
  double secs = t - st.measure_start;
  bytes_counted = st.ops * o->bs;
  for (unsigned i = 0; i < o->conns; i++) {
    nbd_shutdown (conns[i].h, 0);
    nbd_close (conns[i].h);
  }
  qsort (st.lat, st.nlat, sizeof *st.lat, cmp_float);
  printf ("{\"mode\": \"%s\", \"qd\": %u, \"bs\": %zu, \"conns\": %u, "
          "\"seconds\": %.3f, \"ops\": %" PRIu64 ", \"bytes\": %" PRIu64 ", "
          "\"iops\": %.1f, \"mib_s\": %.2f, \"lat_p50_us\": %.1f, "
          "\"lat_p99_us\": %.1f, \"errors\": %" PRIu64 ", "
          "\"all_bytes\": %" PRIu64 "}\n",
          mode_names[o->mode], o->qd, o->bs, o->conns, secs, st.ops,
          bytes_counted, st.ops / secs, bytes_counted / secs / 1048576.0,
          percentile (50), percentile (99), st.errors, st.all_ops * o->bs);
  return st.errors ? -1 : 0;
}

/* What the xts mode times: one step processes len bytes of buf in place,
 * from data unit index `unit` on. Returns 0 or -1 (reported). */
struct xts_timed {
  const char *what; /* "engine" or "one-call" */
  enum cv_xts_impl impl;
  int (*step) (struct xts_timed *t, uint8_t *buf, size_t len, uint64_t unit);
  unsigned sector_size; /* engine: its data unit */
  struct cv_xts *x;     /* engine */
  gcry_cipher_hd_t gh;  /* one-call, libgcrypt */
  EVP_CIPHER_CTX *ctx;  /* one-call, OpenSSL */
};

/* A step through cryptvol's engine: len bytes as sector_size units. */
static int
engine_step (struct xts_timed *t, uint8_t *buf, size_t len, uint64_t unit)
{
  return cv_xts_encrypt (t->x, buf, buf, unit * (len / t->sector_size),
                         len / t->sector_size);
}

/* The 16-byte little-endian tweak of data unit `unit`. */
static void
unit_tweak (uint64_t unit, uint8_t tweak[16])
{
  memset (tweak, 0, 16);
  for (int i = 0; i < 8; i++)
    tweak[i] = (uint8_t) (unit >> (8 * i));
}

/* A step as one libgcrypt call: len bytes as one data unit. */
static int
gcrypt_call_step (struct xts_timed *t, uint8_t *buf, size_t len, uint64_t unit)
{
  uint8_t tweak[16];
  gcry_error_t e;

  unit_tweak (unit, tweak);
  if ((e = gcry_cipher_setiv (t->gh, tweak, sizeof tweak))
      || (e = gcry_cipher_encrypt (t->gh, buf, len, NULL, 0))) {
    fprintf (stderr, "cryptvol-bench: libgcrypt XTS: %s\n", gcry_strerror (e));
    return -1;
  }
  return 0;
}

/* A step as one OpenSSL EVP call: len bytes as one data unit. */
static int
openssl_call_step (struct xts_timed *t, uint8_t *buf, size_t len, uint64_t unit)
{
  uint8_t tweak[16];
  int outl;

  unit_tweak (unit, tweak);
  if (!EVP_EncryptInit_ex2 (t->ctx, NULL, NULL, tweak, NULL)
      || !EVP_EncryptUpdate (t->ctx, buf, &outl, buf, (int) len)) {
    fprintf (stderr, "cryptvol-bench: OpenSSL aes-256-xts failed\n");
    return -1;
  }
  return 0;
}

/* Key the library impl directly for one AES-256-XTS data unit per call (the
 * library's own best case, for the engine to be compared with). Returns 0
 * or -1 (reported). */
static int
one_call_setup (struct xts_timed *t, const uint8_t key[CV_DEK_LEN])
{
  gcry_error_t e;

  t->what = "one-call";
  if (t->impl == CV_XTS_GCRYPT) {
    if (!gcry_control (GCRYCTL_INITIALIZATION_FINISHED_P)) {
      gcry_check_version (NULL);
      gcry_control (GCRYCTL_INITIALIZATION_FINISHED, 0);
    }
    if ((e = gcry_cipher_open (&t->gh, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_XTS,
                               0))
        || (e = gcry_cipher_setkey (t->gh, key, CV_DEK_LEN))) {
      fprintf (stderr, "cryptvol-bench: libgcrypt XTS: %s\n",
               gcry_strerror (e));
      return -1;
    }
    t->step = gcrypt_call_step;
    return 0;
  }
  t->ctx = EVP_CIPHER_CTX_new ();
  if (!t->ctx
      || !EVP_EncryptInit_ex2 (t->ctx, EVP_aes_256_xts (), key, NULL, NULL)) {
    fprintf (stderr, "cryptvol-bench: OpenSSL aes-256-xts: cannot key\n");
    return -1;
  }
  t->step = openssl_call_step;
  return 0;
}

/* The xts mode: encrypt a buffer of --bs bytes in place for --duration
 * seconds, either through cryptvol's engine in --sector-size units (--bs 64
 * KiB by default: a cached working set, as `openssl speed` uses) or, with
 * --one-call, as one data unit per library call (--bs 1 MiB by default),
 * with the library --engine names; print bytes per second of wall time and
 * per user CPU second (as `openssl speed` counts) as JSON. */
static int
run_xts (const struct opts *o)
{
  const size_t len = o->bs ? o->bs : o->one_call ? 1024 * 1024 : 64 * 1024;
  struct xts_timed t = { .what = "engine",
                         .step = engine_step,
                         .sector_size = o->sector_size };
  uint8_t key[CV_DEK_LEN];
  CLEANUP_FREE uint8_t *buf = NULL;
  uint64_t rng = 1, bytes = 0, unit = 0;
  int r = -1;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) xorshift (&rng);
  if (len < 16 || (!o->one_call && len % o->sector_size)) {
    fprintf (stderr, "cryptvol-bench: --bs must be a multiple of %u\n",
             o->sector_size);
    return -1;
  }
  cv_log_set_debug (true); /* says if the engine takes its slow path */
  if (o->one_call) {
    t.impl = o->xts_impl;
    if ((t.impl == CV_XTS_AUTO && cv_xts_pick (t.impl, 4096, &t.impl) < 0)
        || one_call_setup (&t, key) < 0)
      goto out;
  } else {
    if (cv_xts_new (o->xts_impl, key, o->sector_size, &t.x) < 0)
      goto out;
    t.impl = cv_xts_impl_of (t.x);
  }
  if (posix_memalign ((void **) &buf, 4096, len) != 0) {
    perror ("posix_memalign");
    goto out;
  }
  memset (buf, 0x5a, len);
  double start = now (), end = start, user0 = user_secs ();
  while (end - start < o->duration) {
    for (int i = 0; i < 64; i++, unit++) {
      if (t.step (&t, buf, len, unit) < 0)
        goto out;
      bytes += len;
    }
    end = now ();
  }
  const double user = user_secs () - user0;
  printf ("{\"mode\": \"xts\", \"what\": \"%s\", \"impl\": \"%s\", "
          "\"sector_size\": %u, \"seconds\": %.3f, \"bs\": %zu, "
          "\"bytes\": %" PRIu64 ", \"bytes_per_s\": %.0f, \"user_s\": %.3f, "
          "\"bytes_per_user_s\": %.0f}\n",
          t.what, cv_xts_impl_name (t.impl),
          o->one_call ? (unsigned) len : o->sector_size, end - start, len,
          bytes, bytes / (end - start), user, user > 0 ? bytes / user : 0);
  r = 0;
out:
  cv_xts_free (t.x);
  gcry_cipher_close (t.gh);
  EVP_CIPHER_CTX_free (t.ctx);
  return r;
}

static void
usage (FILE *f)
{
  fprintf (
      f, "usage: cryptvol-bench [OPTIONS] NBD-URI\n"
         "       cryptvol-bench --mode xts [--sector-size 512|4096] "
         "[--duration S]\n"
         "  --mode M         seq-read seq-write rand-read rand-write mixed "
         "xts\n"
         "  --qd N           requests in flight per connection (32)\n"
         "  --bs BYTES       request size (1 MiB sequential, 4 KiB random)\n"
         "  --conns N        connections (1)\n"
         "  --duration S     seconds measured (5)\n"
         "  --warmup S       seconds run before measuring (0.5)\n"
         "  --sector-size N  xts mode: 512 or 4096 (4096)\n"
         "  --engine E       xts mode: auto, openssl or gcrypt (auto)\n"
         "  --one-call       xts mode: time the --engine library itself, one\n"
         "                   call over --bs bytes (1 MiB) as one data unit\n");
}

int
main (int argc, char **argv)
{
  static const struct option longopts[]
      = { { "mode", required_argument, NULL, 'm' },
          { "qd", required_argument, NULL, 'q' },
          { "bs", required_argument, NULL, 'b' },
          { "conns", required_argument, NULL, 'c' },
          { "duration", required_argument, NULL, 'd' },
          { "warmup", required_argument, NULL, 'w' },
          { "sector-size", required_argument, NULL, 's' },
          { "engine", required_argument, NULL, 'e' },
          { "one-call", no_argument, NULL, '1' },
          { "help", no_argument, NULL, 'h' },
          { NULL, 0, NULL, 0 } };
  struct opts o = { .mode = RAND_READ,
                    .qd = 32,
                    .conns = 1,
                    .duration = 5,
                    .warmup = 0.5,
                    .sector_size = 4096 };
  int c;

  while ((c = getopt_long (argc, argv, "m:q:b:c:d:w:s:e:1h", longopts, NULL))
         != -1) {
    switch (c) {
    case 'm': {
      size_t i;
      for (i = 0; i < sizeof mode_names / sizeof *mode_names; i++)
        if (strcmp (optarg, mode_names[i]) == 0)
          break;
      if (i == sizeof mode_names / sizeof *mode_names) {
        fprintf (stderr, "cryptvol-bench: unknown mode %s\n", optarg);
        return 2;
      }
      o.mode = (enum mode) i;
      break;
    }
    case 'q':
      o.qd = (unsigned) strtoul (optarg, NULL, 0);
      break;
    case 'b':
      o.bs = strtoull (optarg, NULL, 0);
      break;
    case 'c':
      o.conns = (unsigned) strtoul (optarg, NULL, 0);
      break;
    case 'd':
      o.duration = strtod (optarg, NULL);
      break;
    case 'w':
      o.warmup = strtod (optarg, NULL);
      break;
    case 's':
      o.sector_size = (unsigned) strtoul (optarg, NULL, 0);
      break;
    case 'e':
      if (cv_xts_impl_parse (optarg, &o.xts_impl) < 0) {
        fprintf (stderr,
                 "cryptvol-bench: --engine %s: expected auto, "
                 "openssl or gcrypt\n",
                 optarg);
        return 2;
      }
      break;
    case '1':
      o.one_call = true;
      break;
    case 'h':
      usage (stdout);
      return 0;
    default:
      usage (stderr);
      return 2;
    }
  }
  if (o.mode == XTS)
    return run_xts (&o) < 0 ? 1 : 0;
  if (optind != argc - 1 || o.qd == 0 || o.conns == 0 || o.duration <= 0) {
    usage (stderr);
    return 2;
  }
  o.uri = argv[optind];
  if (o.bs == 0)
    o.bs = o.mode == SEQ_READ || o.mode == SEQ_WRITE ? 1024 * 1024 : 4096;
  return run_io (&o) < 0 ? 1 : 0;
}

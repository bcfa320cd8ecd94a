/* The RBD store (lib/io/rbd.c) against a real cluster: rbd: names parsed
 * strictly; images created; the header device and the data-path queues
 * moving every byte at any offset and size, at any queue depth, checked
 * against an in-memory model; flush and FUA; the ends of the image; the
 * header and commit locks between devices; RBD's exclusive lock between
 * processes (a second writer refused naming the holder, a reader allowed,
 * takeover fencing the old holder); one lock owner for the device and store
 * of one image; no use after fork; and, last, a cluster that dies: requests
 * fail within the timeout instead of hanging.
 *
 * Needs a cluster: tests/integration/test-rbd-backend.sh starts one and runs
 * this with CV_TEST_CEPH=1, CEPH_CONF and CEPH_KEYRING set, and CEPH_DIR (the
 * cluster's directory, stopped by the last test). Without CV_TEST_CEPH it
 * skips (77). "test-io-rbd holder PATH" is the child of the lock test. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "common/cleanup.h"
#include "io/backend.h"
#include "io/io-internal.h"
#include "harness.h"
#include "pattern.h"

#define IMG_SIZE (8u << 20)

static struct cv_rbd_opts opts = { .timeout_s = 10 };
static char prefix[64]; /* "rbd:rbd/t<pid>-" */

static double
now (void)
{
  struct timespec t;

  clock_gettime (CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec + t.tv_nsec / 1e9;
}

/* A new image name of this run into buf. */
static const char *
new_name (char *buf, size_t len)
{
  static unsigned n;

  snprintf (buf, len, "%s%u", prefix, ++n);
  return buf;
}

static bool
logged (const char *s)
{
  return strstr (harness_logged (), s) != NULL;
}

/* --- names --------------------------------------------------------------- */

static void
test_parse (void)
{
  static const struct {
    const char *path, *pool, *ns, *image;
  } good[] = {
    { "rbd:p/i", "p", "", "i" },
    { "rbd:pool/ns/image", "pool", "ns", "image" },
    { "rbd:a.b-c_d/e f", "a.b-c_d", "", "e f" },
  };
  static const struct {
    const char *path, *msg;
  } bad[] = {
    { "file.img", "not an RBD volume" },
    { "rbd:", "no image name" },
    { "rbd:pool", "no image name" },
    { "rbd:/img", "the pool name is empty" },
    { "rbd:pool/", "the image name is empty" },
    { "rbd:pool//img", "the namespace name is empty" },
    { "rbd:p/n/i/x", "too many '/'" },
    { "rbd:p/i@snap", "snapshots are not supported" },
    { "rbd:p/i\n", "control character 0x0a" },
    { "rbd:p/\x7fi", "control character 0x7f" },
  };
  struct cv_rbd_spec s;
  char longname[400];
  int rc;

  for (size_t i = 0; i < ARRAY_SIZE (good); i++) {
    rc = cv_rbd_parse (good[i].path, &s);
    CHECK (rc == 0 && strcmp (s.pool, good[i].pool) == 0
               && strcmp (s.ns, good[i].ns) == 0
               && strcmp (s.image, good[i].image) == 0,
           "%s: %d %s|%s|%s", good[i].path, rc, s.pool, s.ns, s.image);
  }
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    harness_log_clear ();
    rc = cv_rbd_parse (bad[i].path, &s);
    CHECK (rc == -EINVAL && logged (bad[i].msg), "%s: %d, log: %s", bad[i].path,
           rc, harness_logged ());
    CHECK (!strchr (harness_logged (), '\x7f')
               && !strstr (harness_logged (), "i\n\n"),
           "raw control characters in the message: %s", harness_logged ());
  }
  /* Each component below CV_RBD_NAME_MAX bytes. */
  snprintf (longname, sizeof longname, "rbd:p/%0*d", CV_RBD_NAME_MAX - 1, 0);
  CHECK (cv_rbd_parse (longname, &s) == 0, "a 255-byte image name");
  snprintf (longname, sizeof longname, "rbd:p/%0*d", CV_RBD_NAME_MAX, 0);
  harness_log_clear ();
  CHECK (cv_rbd_parse (longname, &s) == -EINVAL
             && logged ("the image name is 256 bytes long"),
         "a 256-byte image name: %s", harness_logged ());
  snprintf (longname, sizeof longname, "rbd:%0*d/i", CV_RBD_NAME_MAX, 0);
  harness_log_clear ();
  CHECK (cv_rbd_parse (longname, &s) == -EINVAL && logged ("the pool name is"),
         "a 256-byte pool name: %s", harness_logged ());
  CHECK (cv_rbd_is_path ("rbd:x") && !cv_rbd_is_path ("rbdx")
             && !cv_rbd_is_path (NULL),
         "cv_rbd_is_path");
}

/* --- creating and opening ------------------------------------------------ */

static void
test_create_open (void)
{
  char name[128], bad[160];
  struct cv_dev *d = NULL;
  struct cv_io *io = NULL;
  uint64_t size = 0;
  int rc;

  new_name (name, sizeof name);
  CHECK ((rc = cv_rbd_create (name, &opts, IMG_SIZE)) == 0, "create %s: %s",
         name, harness_logged ());
  harness_log_clear ();
  /* Not logged: keymgr create formats the image that exists. */
  CHECK (cv_rbd_create (name, &opts, IMG_SIZE) == -EEXIST
             && !harness_logged ()[0],
         "create twice: %s", harness_logged ());

  /* What a user mistypes. */
  harness_log_clear ();
  CHECK (cv_rbd_create ("rbd:nopool/x", &opts, IMG_SIZE) == -ENOENT
             && logged ("has no pool nopool"),
         "create in a missing pool: %s", harness_logged ());
  harness_log_clear ();
  snprintf (bad, sizeof bad, "%s-missing", name);
  CHECK (cv_rbd_dev_open (bad, &opts, false, &d) == -ENOENT
             && logged ("no such image"),
         "open a missing image: %s", harness_logged ());
  harness_log_clear ();
  CHECK (cv_rbd_create ("rbd:p/i@s", &opts, IMG_SIZE) == -EINVAL,
         "create a snapshot name");

  /* A store and a device: the size, one image. */
  struct cv_io_open_opts o = { .path = name, .rbd = &opts };
  CHECK ((rc = cv_io_open (&o, &io)) == 0, "cv_io_open %s: %s", name,
         harness_logged ());
  if (rc == 0) {
    CHECK (strcmp (cv_io_name (io), "rbd") == 0, "backend %s", cv_io_name (io));
    CHECK (cv_io_size (io, &size) == 0 && size == IMG_SIZE, "size %" PRIu64,
           size);
    const uint8_t *base;
    uint64_t len;
    CHECK (cv_io_map (io, &base, &len) == -ENOTSUP, "no mapping");
    struct cv_io_queue *q = NULL;
    harness_log_clear ();
    CHECK (cv_io_queue_new (io, 0, &q) == -EINVAL && logged ("depth 0"),
           "depth 0: %s", harness_logged ());
    cv_io_close (io);
  }
  CHECK ((rc = cv_dev_open (name, "volume", false, &opts, &d)) == 0,
         "cv_dev_open %s: %s", name, harness_logged ());
  if (rc == 0) {
    CHECK (strcmp (d->ops->name, "rbd") == 0 && d->fd == -1
               && !cv_dev_is_file (d),
           "an rbd device");
    CHECK (cv_dev_resize (d, 2 * IMG_SIZE) == 0 && cv_dev_size (d, &size) == 0
               && size == 2 * IMG_SIZE,
           "resize: %" PRIu64, size);
    cv_dev_close (d);
  }
}

/* --- the data path against a model --------------------------------------- */

struct range {
  uint64_t off;
  size_t len;
  bool write;
  uint8_t *buf;
};

static unsigned long long rnd_state = 88172645463325252ull;
static uint64_t
rnd (void)
{
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

/* rounds batches of random reads and writes, none overlapping another of
 * its batch, at any offset and length up to maxlen, through a queue of
 * depth; writes go to the model, reads are checked against it. */
static void
model_run (struct cv_io *io, uint8_t *model, unsigned depth, unsigned rounds,
           size_t maxlen)
{
  struct cv_io_queue *q = NULL;
  struct range *r = calloc (depth, sizeof *r);
  int rc;

  CHECK ((rc = cv_io_queue_new (io, depth, &q)) == 0, "queue %u: %s", depth,
         harness_logged ());
  if (rc < 0 || !r) {
    free (r);
    return;
  }
  for (unsigned i = 0; i < depth; i++)
    r[i].buf = malloc (maxlen);
  for (unsigned round = 0; round < rounds; round++) {
    unsigned n = 1 + (unsigned) (rnd () % depth);
    for (unsigned i = 0; i < n; i++) {
      bool overlaps;
      do {
        r[i].len = 1 + (size_t) (rnd () % maxlen);
        /* Some at the very end of the image. */
        r[i].off = rnd () % 8 == 0 ? IMG_SIZE - r[i].len
                                   : rnd () % (IMG_SIZE - r[i].len + 1);
        overlaps = false;
        for (unsigned j = 0; j < i; j++)
          if (r[i].off < r[j].off + r[j].len && r[j].off < r[i].off + r[i].len)
            overlaps = true;
      } while (overlaps);
      r[i].write = rnd () % 2;
      if (r[i].write) {
        for (size_t k = 0; k < r[i].len; k++)
          r[i].buf[k] = (uint8_t) rnd ();
        memcpy (model + r[i].off, r[i].buf, r[i].len);
        rc = cv_io_queue_write (q, r[i].buf, r[i].len, r[i].off,
                                rnd () % 4 == 0, i);
      } else {
        memset (r[i].buf, 0xee, r[i].len);
        rc = cv_io_queue_read (q, r[i].buf, r[i].len, r[i].off, i);
      }
      CHECK (rc == 0, "queue: %s", strerror (-rc));
    }
    CHECK (cv_io_space (q) == depth - n, "space %u of %u with %u queued",
           cv_io_space (q), depth, n);
    CHECK (cv_io_submit (q) == 0, "submit");
    bool seen[64] = { false };
    for (unsigned i = 0; i < n; i++) {
      uint64_t tag = UINT64_MAX;
      rc = cv_io_reap (q, &tag);
      if (rc != 0 || tag >= n || seen[tag]) {
        CHECK (0, "reap: %s, tag %" PRIu64, strerror (-rc), tag);
        continue;
      }
      seen[tag] = true;
      if (!r[tag].write)
        CHECK (memcmp (r[tag].buf, model + r[tag].off, r[tag].len) == 0,
               "read of %zu at %" PRIu64 " differs from the model", r[tag].len,
               r[tag].off);
    }
    uint64_t tag;
    CHECK (cv_io_reap (q, &tag) == -ENOENT, "empty after the batch");
  }
  for (unsigned i = 0; i < depth; i++)
    free (r[i].buf);
  free (r);
  cv_io_queue_free (q);
}

/* The whole image through the header device against the model. */
static void
model_check (struct cv_dev *d, const uint8_t *model)
{
  uint8_t *buf = malloc (IMG_SIZE);
  int rc = cv_dev_pread (d, buf, IMG_SIZE, 0, NULL);

  CHECK (rc == 0 && memcmp (buf, model, IMG_SIZE) == 0,
         "the image read through the device differs from the model (%d)", rc);
  free (buf);
}

static void
test_data_path (void)
{
  char name[128];
  struct cv_io *io = NULL;
  struct cv_dev *d = NULL;
  uint8_t *model = calloc (1, IMG_SIZE);
  int rc;

  new_name (name, sizeof name);
  CHECK (cv_rbd_create (name, &opts, IMG_SIZE) == 0, "create");
  struct cv_io_open_opts o = { .path = name, .rbd = &opts };
  if ((rc = cv_io_open (&o, &io)) < 0) {
    CHECK (0, "open %s: %s", name, harness_logged ());
    free (model);
    return;
  }
  /* The device of the same image shares its handle: no second lock. */
  harness_log_clear ();
  CHECK ((rc = cv_dev_open (name, "volume", false, &opts, &d)) == 0,
         "device and store of one image: %s", harness_logged ());
  if (rc == 0)
    CHECK (cv_dev_holder (d, NULL, 0) == 0, "we hold the lock ourselves");

  model_run (io, model, 1, 40, 9000);
  model_run (io, model, 8, 60, 70000);
  model_run (io, model, 32, 20, 300000);
  model_run (io, model, 64, 10, 4096);
  if (d) {
    model_check (d, model);
    /* Device writes are seen by the queues. */
    uint8_t b[5000];
    for (size_t i = 0; i < sizeof b; i++)
      b[i] = (uint8_t) (i * 13);
    CHECK (cv_dev_pwrite (d, b, sizeof b, 12345, true) == 0, "dev pwrite");
    memcpy (model + 12345, b, sizeof b);
    CHECK (cv_dev_flush (d) == 0, "dev flush");
    model_run (io, model, 4, 30, 20000);
  }

  /* Flush, FUA, sync_range; synchronous helpers. */
  struct cv_io_queue *q = NULL;
  CHECK (cv_io_queue_new (io, 4, &q) == 0, "queue");
  if (q) {
    uint8_t w[4096], r[4096];
    uint64_t tag;
    memset (w, 0x5c, sizeof w);
    CHECK (cv_io_queue_write (q, w, sizeof w, 4096, true, 1) == 0
               && cv_io_queue_flush (q, 2) == 0
               && cv_io_queue_write (q, w, sizeof w, 3 * 4096, true, 3) == 0,
           "queue FUA writes and a flush");
    unsigned seen = 0;
    for (int i = 0; i < 3; i++) {
      /* Reaped without submit: reap starts what is queued. */
      rc = cv_io_reap (q, &tag);
      CHECK (rc == 0 && tag >= 1 && tag <= 3, "reap: %d %" PRIu64, rc, tag);
      if (rc == 0 && tag <= 3)
        seen |= 1u << tag;
    }
    CHECK (seen == 0xe, "every tag once: %x", seen);
    memcpy (model + 4096, w, sizeof w);
    memcpy (model + 3 * 4096, w, sizeof w);
    CHECK (cv_io_pread (q, r, sizeof r, 3 * 4096) == 0
               && memcmp (r, w, sizeof r) == 0,
           "FUA write read back");
    CHECK (cv_io_sync_range (q, 0, 8192) == 0 && cv_io_flush (q) == 0
               && cv_io_pwrite (q, w, 100, 7, true) == 0,
           "sync_range, flush, pwrite");
    memcpy (model + 7, w, 100);

    /* A full queue, an empty one, nothing ready. */
    for (int i = 0; i < 4; i++)
      CHECK (cv_io_queue_read (q, r, 512, 0, i) == 0, "fill the queue");
    CHECK (cv_io_queue_read (q, r, 512, 0, 9) == -EBUSY, "full: -EBUSY");
    CHECK (cv_io_space (q) == 0, "space 0");
    CHECK (cv_io_submit (q) == 0, "submit");
    int ready = 0;
    while (ready < 4) {
      rc = cv_io_reap_ready (q, &tag);
      if (rc == -EAGAIN)
        continue;
      CHECK (rc == 0, "reap_ready: %d", rc);
      ready++;
    }
    CHECK (cv_io_reap_ready (q, &tag) == -ENOENT, "nothing queued: -ENOENT");

    /* The ends of the image. */
    uint8_t big[8192];
    CHECK (cv_io_pread (q, big, 4096, IMG_SIZE - 100) == -EIO,
           "a read across the end: -EIO");
    CHECK (cv_io_pread (q, big, 10, IMG_SIZE + 4096) == -EIO,
           "a read beyond the end: -EIO");
    CHECK (cv_io_pwrite (q, big, 4096, IMG_SIZE - 100, false) == -ENOSPC,
           "a write across the end: -ENOSPC");
    CHECK (cv_io_pread (q, big, 100, IMG_SIZE - 100) == 0,
           "a read up to the end");

    /* Freed with requests in flight: waits for them, as librbd still
     * writes into their buffers and calls back with them (reads: with the
     * default writearound cache, librbd completes writes at once). */
    uint8_t *mib = malloc (4 << 20);
    for (int i = 0; i < 4; i++)
      cv_io_queue_read (q, mib + ((size_t) i << 20), 1 << 20,
                        (uint64_t) i << 20, i);
    cv_io_submit (q);
    cv_io_queue_free (q);
    CHECK (memcmp (mib, model, 4 << 20) == 0,
           "the reads in flight at cv_io_queue_free completed");
    free (mib);
  }
  if (d) {
    /* The device at the end. */
    uint8_t b[4096];
    size_t got = 0;
    CHECK (cv_dev_pread (d, b, sizeof b, IMG_SIZE - 96, &got) == 0 && got == 96
               && memcmp (b, model + IMG_SIZE - 96, 96) == 0,
           "device read clipped at the end: %zu", got);
    CHECK (cv_dev_pread (d, b, sizeof b, IMG_SIZE + 1, &got) == 0 && got == 0,
           "device read beyond the end");
    CHECK (cv_dev_pread (d, b, sizeof b, IMG_SIZE - 96, NULL) == -EIO,
           "device read across the end without got: -EIO");
    CHECK (cv_dev_pwrite (d, b, sizeof b, IMG_SIZE - 96, false) == -ENOSPC,
           "device write across the end: -ENOSPC");
    model_check (d, model);
    cv_dev_close (d);
  }
  cv_io_close (io);
  free (model);
}

/* --- read-only opens and the process-local locks ------------------------- */

/* Take d's header lock, waiting: first without, to see that it is held,
 * then say so and wait. */
static bool waiting;
static void *
lock_waiter (void *d)
{
  int busy = cv_dev_lock (d, CV_DEV_LOCK_HEADER, F_WRLCK, false);
  __atomic_store_n (&waiting, true, __ATOMIC_SEQ_CST);
  if (busy != -EBUSY)
    return d;
  return cv_dev_lock (d, CV_DEV_LOCK_HEADER, F_WRLCK, true) == 0 ? NULL : d;
}

static void
test_readonly_and_locks (void)
{
  char name[128];
  struct cv_dev *w = NULL, *w2 = NULL, *ro = NULL;
  struct cv_io *rio = NULL;
  uint8_t b[512] = { 1 };
  uint64_t tag;
  int rc;

  new_name (name, sizeof name);
  CHECK (cv_rbd_create (name, &opts, IMG_SIZE) == 0, "create");
  /* A read-only image of its own (nothing open yet). */
  CHECK ((rc = cv_rbd_dev_open (name, &opts, true, &ro)) == 0, "open ro: %s",
         harness_logged ());
  if (rc < 0)
    return;
  CHECK (cv_dev_holder (ro, NULL, 0) == 0, "no holder");
  CHECK (cv_dev_pwrite (ro, b, sizeof b, 0, false) == -EROFS,
         "write on read-only: -EROFS");
  CHECK (cv_dev_resize (ro, 1 << 20) == -EROFS, "resize read-only: -EROFS");
  harness_log_clear ();
  CHECK (cv_dev_lock (ro, CV_DEV_LOCK_IN_USE, F_WRLCK, false) == -EBADF
             && logged ("open read-only"),
         "in-use write lock on read-only: %s", harness_logged ());
  CHECK (cv_dev_lock (ro, CV_DEV_LOCK_IN_USE, F_RDLCK, false) == 0
             && cv_dev_lock (ro, CV_DEV_LOCK_IN_USE, F_UNLCK, false) == 0,
         "in-use shared lock on read-only");

  /* Writers: header and commit locks exclude each other between devices. */
  CHECK (cv_rbd_dev_open (name, &opts, false, &w) == 0
             && cv_rbd_dev_open (name, &opts, false, &w2) == 0,
         "two writable devices: %s", harness_logged ());
  if (w && w2) {
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_IN_USE, F_WRLCK, false) == 0,
           "in-use on a writable image");
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_HEADER, F_WRLCK, false) == 0,
           "header lock");
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_HEADER, F_WRLCK, false) == 0,
           "header lock again (held)");
    CHECK (cv_dev_lock (w2, CV_DEV_LOCK_HEADER, F_WRLCK, false) == -EBUSY,
           "header lock of another device: -EBUSY");
    CHECK (cv_dev_lock (w2, CV_DEV_LOCK_HEADER, F_RDLCK, false) == -EBUSY,
           "shared header lock of another device: -EBUSY");
    CHECK (cv_dev_lock (w2, CV_DEV_LOCK_COMMIT, F_WRLCK, false) == 0,
           "commit lock is another lock");
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_HEADER, F_RDLCK, false) == 0
               && cv_dev_lock (w2, CV_DEV_LOCK_HEADER, F_RDLCK, false) == 0,
           "shared header locks together");
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_HEADER, F_UNLCK, false) == 0
               && cv_dev_lock (w2, CV_DEV_LOCK_HEADER, F_WRLCK, true) == 0,
           "upgrade once the other released");
    cv_dev_close (w2); /* releases its locks */
    w2 = NULL;
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_HEADER, F_WRLCK, false) == 0
               && cv_dev_lock (w, CV_DEV_LOCK_COMMIT, F_WRLCK, true) == 0,
           "the closed device's locks are gone");
    CHECK (cv_dev_holder (ro, NULL, 0) == 0,
           "our own exclusive lock is nobody else's");
    /* A waiter blocks until the holder releases. */
    CHECK (cv_rbd_dev_open (name, &opts, false, &w2) == 0, "open");
    pthread_t th;
    pthread_create (&th, NULL, lock_waiter, w2);
    /* Released once the waiter found it held (or gave up: a failed
     * check). */
    while (!__atomic_load_n (&waiting, __ATOMIC_SEQ_CST))
      sched_yield ();
    CHECK (cv_dev_lock (w, CV_DEV_LOCK_HEADER, F_UNLCK, false) == 0, "release");
    void *res;
    pthread_join (th, &res);
    CHECK (res == NULL, "the waiter got the lock");
    cv_dev_close (w2);
    w2 = NULL;
  }
  /* A read-only store sharing the writable image: writes refused. */
  struct cv_io_open_opts o = { .path = name, .rbd = &opts, .readonly = true };
  CHECK (cv_io_open (&o, &rio) == 0, "read-only store");
  if (rio) {
    struct cv_io_queue *q = NULL;
    CHECK (cv_io_queue_new (rio, 2, &q) == 0, "queue");
    if (q) {
      CHECK (cv_io_queue_write (q, b, sizeof b, 0, false, 5) == 0
                 && cv_io_submit (q) == 0 && cv_io_reap (q, &tag) == -EROFS
                 && tag == 5,
             "write through a read-only store: -EROFS");
      CHECK (cv_io_pread (q, b, sizeof b, 0) == 0, "read through it");
      cv_io_queue_free (q);
    }
    cv_io_close (rio);
  }
  cv_dev_close (w2);
  cv_dev_close (w);
  cv_dev_close (ro);
}

/* An image without the exclusive-lock feature: no writable open. */
static void
test_no_lock_feature (void)
{
  char name[128];
  struct cv_dev *d = NULL;
  rados_t r;
  rados_ioctx_t io;
  int rc;

  new_name (name, sizeof name);
  CHECK (rados_create (&r, NULL) == 0 && rados_conf_read_file (r, NULL) == 0
             && rados_conf_parse_env (r, NULL) == 0 && rados_connect (r) == 0
             && rados_ioctx_create (r, "rbd", &io) == 0,
         "connect");
  int order = 22;
  CHECK ((rc = rbd_create2 (io, strchr (name, '/') + 1, IMG_SIZE,
                            RBD_FEATURE_LAYERING, &order))
             == 0,
         "rbd_create2: %d", rc);
  rados_ioctx_destroy (io);
  rados_shutdown (r);
  harness_log_clear ();
  CHECK (cv_rbd_dev_open (name, &opts, false, &d) == -EINVAL
             && logged ("no exclusive-lock feature")
             && logged ("rbd feature enable rbd/"),
         "writable open: %s", harness_logged ());
  CHECK (cv_rbd_dev_open (name, &opts, true, &d) == 0
             && cv_dev_holder (d, NULL, 0) == 0,
         "read-only open: nobody holds a lock that does not exist: %s",
         harness_logged ());
  cv_dev_close (d);
}

/* --- the exclusive lock between processes -------------------------------- */

/* The child: hold path (and other, another image of the same cluster) open
 * for writing; on "write\n", write through the device and through a queue
 * of path, and through other's device, and report the three results. */
static int
holder (const char *path, const char *other)
{
  struct cv_dev *d = NULL, *d2 = NULL;
  struct cv_io *io = NULL;
  struct cv_io_queue *q = NULL;
  struct cv_io_open_opts o = { .path = path, .rbd = &opts };
  char line[64];
  uint8_t b[4096];

  if (cv_rbd_dev_open (path, &opts, false, &d) < 0 || cv_io_open (&o, &io) < 0
      || cv_io_queue_new (io, 2, &q) < 0
      || cv_rbd_dev_open (other, &opts, false, &d2) < 0) {
    printf ("failed\n");
    fflush (stdout);
    return 1;
  }
  printf ("ready\n");
  fflush (stdout);
  if (!fgets (line, sizeof line, stdin))
    return 1;
  memset (b, 0x77, sizeof b);
  int a = cv_dev_pwrite (d, b, sizeof b, 0, true);
  int c = cv_io_pwrite (q, b, sizeof b, 8192, true);
  int e = cv_dev_pwrite (d2, b, sizeof b, 0, true);
  printf ("%d %d %d\n", a, c, e);
  fflush (stdout);
  _exit (0); /* blocklisted: do not wait for a goodbye to the cluster */
}

static void
test_exclusive_lock (void)
{
  const char *self = "/proc/self/exe";
  char name[128], other[128], who[256] = "", line[64] = "";
  int in[2], out[2];
  struct cv_dev *ro = NULL, *d = NULL;
  uint8_t zero[4096] = { 0 }, b[4096];
  pid_t pid;
  int rc;

  new_name (name, sizeof name);
  new_name (other, sizeof other);
  CHECK (cv_rbd_create (name, &opts, IMG_SIZE) == 0
             && cv_rbd_create (other, &opts, IMG_SIZE) == 0,
         "create");
  if (pipe (in) < 0 || pipe (out) < 0)
    abort ();
  if ((pid = fork ()) == 0) {
    dup2 (in[0], 0);
    dup2 (out[1], 1);
    close (in[1]);
    close (out[0]);
    execl (self, self, "holder", name, other, (char *) NULL);
    _exit (127);
  }
  close (in[0]);
  close (out[1]);
  FILE *from = fdopen (out[0], "r");
  CHECK (fgets (line, sizeof line, from) && strcmp (line, "ready\n") == 0,
         "child: %s", line);

  /* A reader is let in and sees the holder. */
  CHECK ((rc = cv_rbd_dev_open (name, &opts, true, &ro)) == 0,
         "read-only open while held: %s", harness_logged ());
  if (rc == 0) {
    CHECK (cv_dev_holder (ro, who, sizeof who) == 1
               && strncmp (who, "client.", 7) == 0,
           "holder: '%s'", who);
    CHECK (cv_dev_pread (ro, b, sizeof b, 0, NULL) == 0, "read while held");
  }
  /* A second writer is refused, naming the holder and what to do. */
  harness_log_clear ();
  struct cv_io *io = NULL;
  struct cv_io_open_opts o = { .path = name, .rbd = &opts };
  CHECK (cv_io_open (&o, &io) == -EBUSY && who[0] && logged (who)
             && logged ("takeover=true"),
         "second writer: %s", harness_logged ());
  /* The read-only handle does not make a writer of us either. */
  harness_log_clear ();
  CHECK (cv_rbd_dev_open (name, &opts, false, &d) == -EBUSY,
         "second writer (dev): %s", harness_logged ());

  /* Takeover: the old holder is fenced. */
  struct cv_rbd_opts t = opts;
  t.takeover = true;
  harness_log_clear ();
  double t0 = now ();
  CHECK ((rc = cv_rbd_dev_open (name, &t, false, &d)) == 0
             && logged ("warning: ") && logged (who),
         "takeover: %s", harness_logged ());
  cv_debug ("takeover took %.2f s", now () - t0);
  if (write (in[1], "write\n", 6) != 6)
    abort ();
  int a = 0, c = 0, e = 0;
  CHECK (fgets (line, sizeof line, from)
             && sscanf (line, "%d %d %d", &a, &c, &e) == 3,
         "child's report: %s", line);
  CHECK (a == -ESHUTDOWN && c == -ESHUTDOWN,
         "the old holder's writes fail with -ESHUTDOWN (blocklisted): %s, %s",
         strerror (-a), strerror (-c));
  /* Only the image taken over is fenced: the blocklist names a client
   * (address and nonce), so each image has its own. */
  CHECK (e == 0, "the old holder's other image still works: %s", strerror (-e));
  if (rc == 0) {
    CHECK (cv_dev_pread (d, b, sizeof b, 0, NULL) == 0
               && memcmp (b, zero, sizeof b) == 0
               && cv_dev_pread (d, b, sizeof b, 8192, NULL) == 0
               && memcmp (b, zero, sizeof b) == 0,
           "none of the old holder's late writes landed");
    memset (b, 0x42, sizeof b);
    CHECK (cv_dev_pwrite (d, b, sizeof b, 0, true) == 0,
           "the new holder writes");
    cv_dev_close (d);
  }
  fclose (from);
  close (in[1]);
  waitpid (pid, NULL, 0);
  cv_dev_close (ro);
}

/* No use after fork: a child is refused. */
static void
test_fork (void)
{
  char name[128];
  struct cv_dev *d = NULL;
  int status = -1;

  new_name (name, sizeof name);
  CHECK (cv_rbd_create (name, &opts, IMG_SIZE) == 0, "create");
  CHECK (cv_rbd_dev_open (name, &opts, true, &d) == 0, "open");
  pid_t pid = fork ();
  if (pid == 0) {
    struct cv_dev *c = NULL;
    harness_log_clear ();
    int rc = cv_rbd_dev_open (name, &opts, true, &c);
    int rc2 = cv_rbd_create ("rbd:rbd/x", &opts, 1);
    _exit (rc == -ENOTSUP && rc2 == -ENOTSUP && logged ("after fork") ? 0 : 1);
  }
  waitpid (pid, &status, 0);
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0,
         "an open in a child after fork is refused (-ENOTSUP)");
  cv_dev_close (d);
}

/* Connection errors: a configuration that is not there, an unknown client. */
static void
test_connect_errors (void)
{
  char name[128];
  struct cv_dev *d = NULL;
  struct cv_rbd_opts o = opts;

  new_name (name, sizeof name);
  o.conf = "/nonexistent/ceph.conf";
  harness_log_clear ();
  CHECK (cv_rbd_dev_open (name, &o, true, &d) < 0
             && logged ("cannot read the Ceph configuration /nonexistent"),
         "missing conf: %s", harness_logged ());
  o = opts;
  o.id = "nobody";
  harness_log_clear ();
  CHECK (cv_rbd_dev_open (name, &o, true, &d) < 0
             && logged ("cannot connect to the Ceph cluster as client.nobody"),
         "unknown client: %s", harness_logged ());
}

/* Last: the cluster dies under an open store; requests fail within the
 * timeout rather than hang. */
#define T 1 /* seconds */
static void
test_timeout (void)
{
  const char *dir = getenv ("CEPH_DIR"), *src = getenv ("CV_SRCDIR");
  char name[128], cmd[1024];
  struct cv_io *io = NULL;
  struct cv_dev *ro = NULL, *d = NULL;
  struct cv_io_queue *q = NULL;
  struct cv_rbd_opts o = opts;
  uint8_t b[4096] = { 0 };

  if (!dir || !src) {
    CHECK (0, "CEPH_DIR and CV_SRCDIR must be set");
    return;
  }
  o.timeout_s = T;
  new_name (name, sizeof name);
  CHECK (cv_rbd_create (name, &o, IMG_SIZE) == 0, "create");
  struct cv_io_open_opts oo = { .path = name, .rbd = &o };
  /* The read-only device first: a handle of its own, which asks the
   * cluster who holds the lock. */
  CHECK (cv_rbd_dev_open (name, &o, true, &ro) == 0
             && cv_io_open (&oo, &io) == 0 && cv_io_queue_new (io, 2, &q) == 0
             && cv_io_pwrite (q, b, sizeof b, 0, false) == 0
             && cv_rbd_dev_open (name, &o, false, &d) == 0,
         "open: %s", harness_logged ());
  if (!q || !ro || !d)
    return;
  snprintf (cmd, sizeof cmd, "'%s/tests/ceph/cluster.sh' stop '%s'", src, dir);
  CHECK (system (cmd) == 0, "stop the cluster");

  /* A write and a read in flight together. */
  uint8_t r[4096];
  uint64_t tag;
  double t0 = now ();
  CHECK (cv_io_queue_write (q, b, sizeof b, 4096, false, 1) == 0
             && cv_io_queue_read (q, r, sizeof r, 1 << 20, 2) == 0
             && cv_io_submit (q) == 0,
         "queue");
  for (int i = 0; i < 2; i++) {
    int rc = cv_io_reap (q, &tag);
    double t = now () - t0;
    CHECK (rc == -ETIMEDOUT && t < T + 5, "%s: %s after %.1f s",
           tag == 1 ? "write" : "read", strerror (-rc), t);
  }
  printf ("  a write and a read failed after %.1f s\n", now () - t0);
  int rc;
  double t;
  t0 = now ();
  harness_log_clear ();
  rc = cv_dev_holder (ro, NULL, 0);
  t = now () - t0;
  printf ("  holder failed after %.1f s\n", t);
  CHECK (rc < 0 && t < T + 5 && logged ("cannot list the holders"),
         "holder: %s after %.1f s: %s", strerror (-rc), t, harness_logged ());
  /* The header device's synchronous calls. */
  t0 = now ();
  rc = cv_dev_pread (ro, b, sizeof b, 0, NULL);
  t = now () - t0;
  CHECK (rc == -ETIMEDOUT && t < T + 5, "dev read: %s after %.1f s",
         strerror (-rc), t);
  t0 = now ();
  rc = cv_dev_pwrite (d, b, sizeof b, 0, false);
  t = now () - t0;
  CHECK (rc == -ETIMEDOUT && t < T + 5, "dev write: %s after %.1f s",
         strerror (-rc), t);
  cv_dev_close (d);
  d = NULL;
  /* A new connection (another timeout: another cluster handle). */
  o.timeout_s = T + 1;
  t0 = now ();
  harness_log_clear ();
  rc = cv_rbd_dev_open (name, &o, true, &d);
  t = now () - t0;
  printf ("  connecting failed after %.1f s\n", t);
  CHECK (rc == -ETIMEDOUT && t < T + 1 + 5 && logged ("cannot connect"),
         "connect: %s after %.1f s: %s", strerror (-rc), t, harness_logged ());
  t0 = now ();
  cv_io_queue_free (q);
  cv_io_close (io);
  cv_dev_close (ro);
  t = now () - t0;
  printf ("  closing took %.1f s\n", t);
  CHECK (t < 3 * T + 5, "closing took %.1f s", t);
}

/* "pattern PATH": the whole image written through a queue of depth 8 in
 * pieces of odd sizes with pattern(off, 5), for rbd export to check. */
static int
write_pattern (const char *path)
{
  struct cv_io_open_opts o = { .path = path, .rbd = &opts };
  struct cv_io *io = NULL;
  struct cv_io_queue *q = NULL;
  uint64_t size = 0, off = 0, tag;
  static uint8_t buf[8][100003];
  unsigned n = 0;
  int rc = 0;

  if (cv_io_open (&o, &io) < 0 || cv_io_size (io, &size) < 0
      || cv_io_queue_new (io, 8, &q) < 0)
    return 1;
  while (rc == 0 && (off < size || n > 0)) {
    while (off < size && cv_io_space (q) > 0) {
      size_t len = size - off < sizeof buf[0] ? size - off : sizeof buf[0];
      unsigned slot = 8 - cv_io_space (q);
      /* Slots are reused only once every request is reaped. */
      fill (buf[slot], len, off, 5);
      rc = cv_io_queue_write (q, buf[slot], len, off, false, slot);
      off += len;
      n++;
    }
    cv_io_submit (q);
    while (rc == 0 && n > 0) {
      rc = cv_io_reap (q, &tag);
      n--;
    }
  }
  if (rc == 0)
    rc = cv_io_flush (q);
  cv_io_queue_free (q);
  cv_io_close (io);
  return rc == 0 ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (!getenv ("CV_TEST_CEPH")) {
    printf ("SKIP: needs a cluster (run by test-rbd-backend)\n");
    return 77;
  }
  if (argc == 4 && strcmp (argv[1], "holder") == 0)
    return holder (argv[2], argv[3]);
  if (argc == 3 && strcmp (argv[1], "pattern") == 0)
    return write_pattern (argv[2]);
  if (argc == 4 && strcmp (argv[1], "create") == 0)
    return cv_rbd_create (argv[2], &opts, strtoull (argv[3], NULL, 0) << 20)
               ? 1
               : 0;
  harness_init ();
  snprintf (prefix, sizeof prefix, "rbd:rbd/t%d-", (int) getpid ());

  static const struct {
    const char *name;
    void (*fn) (void);
  } tests[] = {
    { "parse", test_parse },
    { "create_open", test_create_open },
    { "data_path", test_data_path },
    { "readonly_and_locks", test_readonly_and_locks },
    { "no_lock_feature", test_no_lock_feature },
    { "exclusive_lock", test_exclusive_lock },
    { "fork", test_fork },
    { "connect_errors", test_connect_errors },
    { "timeout", test_timeout }, /* last: it stops the cluster */
  };
  /* CV_TEST_RBD_KEEP_CLUSTER: all but the last (the ASan build runs before
   * the plain one, on the same cluster). */
  bool keep = getenv ("CV_TEST_RBD_KEEP_CLUSTER") != NULL;
  for (size_t i = 0; i < ARRAY_SIZE (tests) - keep; i++) {
    double t0 = now ();
    tests[i].fn ();
    printf ("%s: %.2f s\n", tests[i].name, now () - t0);
    fflush (stdout);
  }
  return harness_done ("test-io-rbd");
}

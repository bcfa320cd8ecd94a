/* Ceph RBD images as stores (rbd.h): the header device (cv_dev) and the
 * data-path backend (cv_io_rbd_ops) of rbd: paths, through librbd.
 *
 * A registry shares image handles (rbd_image_t), refcounted: one per image
 * and options (conf, id, keyring, timeout), so that the header device and
 * the data store of a served volume are one client of the image and one
 * lock owner. Each image handle has a cluster connection (rados_t) of its
 * own, not one per process: breaking a holder's lock blocklists its client
 * (address and nonce), and a takeover of one volume must not fence the
 * other volumes the same server serves from that cluster (the price: a
 * connection's threads per image, as qemu's rbd driver). A writable open
 * makes (or shares) a writable image handle, which takes RBD's exclusive
 * lock when it is made and keeps it until its last user closes it; a
 * read-only open shares any handle of the image, or makes a read-only one
 * (rbd_open_read_only, no lock). The registry's mutex is held while a
 * handle is made or closed (those talk to the cluster, bounded by the
 * timeouts): opens and closes of rbd: stores are serialised in a process.
 *
 * Data path: requests wait in the queue until submitted, then go to librbd
 * (rbd_aio_read/write/flush). librbd calls back on its own thread; the
 * callback releases the completion, puts the request on its queue's done
 * list under the queue's mutex and signals; reap takes requests off that
 * list (waiting when asked to). A FUA write is completed by an rbd_aio_flush
 * that reap issues once the write itself completed. librbd image handles
 * are thread-safe for aio, so all the threads' queues share one. Freeing a
 * queue waits for its requests in flight: librbd may still write into their
 * buffers and will call back with the request.
 *
 * fork: librados' threads do not survive fork(), so a process may use rbd:
 * stores only in the process that opened its first one (an open in a child
 * is refused with -ENOTSUP): the plugin opens rbd: volumes after nbdkit has
 * forked; keymgr does not fork. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/features.h>
#include <rbd/librbd.h>

#include "common/cleanup.h"
#include "common/dev.h"
#include "common/log.h"
#include "io/io-internal.h"
#include "io/rbd.h"

#define DEFAULT_TIMEOUT_S 30
#define RBD_CHUNK (1024 * 1024) /* cv_io_chunk */
/* Descriptors a Ceph client needs: about 12 were measured (3611 for 300
 * images in one process); the rest is margin. */
#define CEPH_FDS 32
#define CREATE_FEATURES                                                        \
  (RBD_FEATURE_LAYERING | RBD_FEATURE_EXCLUSIVE_LOCK | RBD_FEATURE_OBJECT_MAP  \
   | RBD_FEATURE_FAST_DIFF | RBD_FEATURE_DEEP_FLATTEN)
#define TAKEOVER_HINT                                                          \
  "stop it; if its host is gone, takeover=true (cryptvol-keymgr "              \
  "--takeover) breaks the lock and blocklists it"

/* --- names ------------------------------------------------------------- */

bool
cv_rbd_is_path (const char *path)
{
  return path && strncmp (path, "rbd:", 4) == 0;
}

/* path for a message: at most 120 bytes of it, control characters and
 * bytes above 0x7e escaped (it may be anything a user typed). */
static const char *
shown (const char *path, char *buf, size_t len)
{
  size_t o = 0, i;

  for (i = 0; path[i] && o + 8 < len && i < 120; i++) {
    unsigned char c = (unsigned char) path[i];
    if (c < 0x20 || c > 0x7e)
      o += (size_t) snprintf (buf + o, len - o, "\\x%02x", c);
    else
      buf[o++] = (char) c;
  }
  buf[o] = '\0';
  if (path[i] && o + 4 < len)
    strcpy (buf + o, "...");
  return buf;
}

/* Copy the n bytes at p, one component of path, into dst (CV_RBD_NAME_MAX).
 * what names it in messages. 0 or -EINVAL (logged). */
static int
component (const char *path, const char *what, const char *p, size_t n,
           char *dst)
{
  char sp[160];

  if (n == 0) {
    cv_err ("%s: the %s name is empty; an RBD volume is rbd:POOL/IMAGE or "
            "rbd:POOL/NAMESPACE/IMAGE",
            shown (path, sp, sizeof sp), what);
    return -EINVAL;
  }
  if (n >= CV_RBD_NAME_MAX) {
    cv_err ("%s: the %s name is %zu bytes long; at most %d are allowed",
            shown (path, sp, sizeof sp), what, n, CV_RBD_NAME_MAX - 1);
    return -EINVAL;
  }
  memcpy (dst, p, n);
  dst[n] = '\0';
  return 0;
}

int
cv_rbd_parse (const char *path, struct cv_rbd_spec *s)
{
  const char *name[3], *p;
  size_t len[3], n = 0;
  char sp[160];
  int rc;

  memset (s, 0, sizeof *s);
  if (!cv_rbd_is_path (path)) {
    cv_err ("%s: not an RBD volume (rbd:POOL/IMAGE)",
            path ? shown (path, sp, sizeof sp) : "(null)");
    return -EINVAL;
  }
  for (p = path + 4; *p; p++) {
    unsigned char c = (unsigned char) *p;
    if (c < 0x20 || c == 0x7f) {
      cv_err ("%s: control character 0x%02x at byte %zu; pool, namespace "
              "and image names are printable",
              shown (path, sp, sizeof sp), c, (size_t) (p - path));
      return -EINVAL;
    }
    if (c == '@') {
      cv_err ("%s: '@' names a snapshot, and RBD snapshots are not "
              "supported as volumes (clone the snapshot into an image)",
              shown (path, sp, sizeof sp));
      return -EINVAL;
    }
  }
  name[0] = path + 4;
  for (p = name[0];; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    len[n] = (size_t) (p - name[n]);
    n++;
    if (*p == '\0')
      break;
    if (n == 3) {
      cv_err ("%s: too many '/'; an RBD volume is rbd:POOL/IMAGE or "
              "rbd:POOL/NAMESPACE/IMAGE",
              shown (path, sp, sizeof sp));
      return -EINVAL;
    }
    name[n] = p + 1;
  }
  if (n == 1) {
    cv_err ("%s: no image name; an RBD volume is rbd:POOL/IMAGE or "
            "rbd:POOL/NAMESPACE/IMAGE",
            shown (path, sp, sizeof sp));
    return -EINVAL;
  }
  if ((rc = component (path, "pool", name[0], len[0], s->pool)) < 0
      || (n == 3
          && (rc = component (path, "namespace", name[1], len[1], s->ns)) < 0)
      || (rc = component (path, "image", name[n - 1], len[n - 1], s->image))
             < 0) {
    memset (s, 0, sizeof *s);
    return rc;
  }
  return 0;
}

/* --- the registry -------------------------------------------------------- */

/* A connection to the cluster, one per image handle. */
struct cluster {
  char *conf, *id, *keyring; /* NULL: Ceph's default */
  unsigned timeout_s;
  rados_t rados;
};

/* A process-local reader/writer lock (the HEADER and COMMIT locks) that any
 * thread may release: guarded by the image's mutex. */
struct plock {
  unsigned readers;
  bool writer;
};

struct image {
  struct image *next;
  struct cluster *c;
  struct cv_rbd_spec spec;
  char *path; /* "rbd:POOL[/NS]/IMAGE", for messages */
  rados_ioctx_t ioctx;
  rbd_image_t img;
  bool writable; /* opened with rbd_open, holding the exclusive lock */
  unsigned refs;
  pthread_mutex_t mu; /* locks[] */
  pthread_cond_t cv;
  struct plock locks[3]; /* HEADER and COMMIT (IN_USE unused) */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct image *images;
static pid_t reg_pid; /* the process whose handles these are */

static bool
same (const char *a, const char *b)
{
  return a == b || (a && b && strcmp (a, b) == 0);
}

static int
dup_opt (const char *s, char **out)
{
  *out = NULL;
  return s && !(*out = strdup (s)) ? -ENOMEM : 0;
}

static void
cluster_free (struct cluster *c)
{
  free (c->conf);
  free (c->id);
  free (c->keyring);
  free (c);
}

/* rados_conf_set with a message. */
static int
conf_set (const char *path, rados_t r, const char *opt, const char *val)
{
  int rc = rados_conf_set (r, opt, val);

  if (rc < 0)
    cv_err ("%s: cannot set the Ceph client option %s=%s: %s", path, opt, val,
            strerror (-rc));
  return rc;
}

/* Room for another Ceph client's descriptors? librados cannot report
 * running out: its threads throw, and the process (every volume it serves)
 * aborts. So a connection is refused, with the reason, while CEPH_FDS are
 * not free (the plugin raises the limit for the volumes it is given). 0 or
 * -EMFILE (logged, naming path). */
static int
fd_room (const char *path)
{
  struct rlimit r;
  struct dirent *e;
  DIR *d;
  uint64_t used = 0;

  if (getrlimit (RLIMIT_NOFILE, &r) < 0 || r.rlim_cur == RLIM_INFINITY
      || !(d = opendir ("/proc/self/fd")))
    return 0; /* cannot tell: librados will */
  while ((e = readdir (d)))
    used += e->d_name[0] != '.';
  closedir (d);
  if (used + CEPH_FDS <= r.rlim_cur)
    return 0;
  cv_err ("%s: not opened: this process has %" PRIu64 " of its %" PRIu64
          " file descriptors open, and a Ceph client (one per rbd: volume) "
          "needs about %d more; raise the limit (systemd: LimitNOFILE=; "
          "shell: ulimit -n) or serve fewer volumes in this process",
          path, used, (uint64_t) r.rlim_cur, CEPH_FDS);
  return -EMFILE;
}

/* A new cluster connection for o, its timeouts timeout_s. 0 or -errno
 * (logged, naming path). */
static int
cluster_connect (const char *path, const struct cv_rbd_opts *o,
                 unsigned timeout_s, struct cluster **out)
{
  struct cluster *c = calloc (1, sizeof *c);
  bool made = false;
  char t[16];
  int rc;

  if (!c || dup_opt (o->conf, &c->conf) < 0 || dup_opt (o->id, &c->id) < 0
      || dup_opt (o->keyring, &c->keyring) < 0) {
    cv_err ("%s: out of memory", path);
    rc = -ENOMEM;
    goto fail;
  }
  if ((rc = fd_room (path)) < 0)
    goto fail;
  c->timeout_s = timeout_s;
  if ((rc = rados_create (&c->rados, o->id)) < 0) {
    cv_err ("%s: cannot make a Ceph client (client.%s): %s", path,
            o->id ? o->id : "admin", strerror (-rc));
    goto fail;
  }
  made = true;
  /* Ceph's own error lines stay off stderr (every failure is reported
   * here, once, with what to do); a ceph.conf or CEPH_ARGS that asks for
   * them still gets them. */
  if ((rc = conf_set (path, c->rados, "err_to_stderr", "false")) < 0)
    goto fail;
  /* The configuration file: the one given, or Ceph's search (CEPH_CONF,
   * /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf), where finding none
   * is fine (CEPH_ARGS may say everything). Then CEPH_ARGS and
   * CEPH_KEYRING; then ours, which win. */
  rc = rados_conf_read_file (c->rados, o->conf);
  if (rc < 0 && (o->conf || rc != -ENOENT)) {
    cv_err ("%s: cannot read the Ceph configuration %s: %s; check ceph-conf=",
            path, o->conf ? o->conf : "(default search)", strerror (-rc));
    goto fail;
  }
  if ((rc = rados_conf_parse_env (c->rados, NULL)) < 0) {
    cv_err ("%s: cannot parse CEPH_ARGS: %s", path, strerror (-rc));
    goto fail;
  }
  snprintf (t, sizeof t, "%u", timeout_s);
  if ((o->keyring
       && (rc = conf_set (path, c->rados, "keyring", o->keyring)) < 0)
      || (rc = conf_set (path, c->rados, "rados_osd_op_timeout", t)) < 0
      || (rc = conf_set (path, c->rados, "rados_mon_op_timeout", t)) < 0
      || (rc = conf_set (path, c->rados, "client_mount_timeout", t)) < 0
      /* librbd copies a write's buffer unless told it stays put until the
       * write completes, which ours (a bounce slot, or the caller's buffer
       * until reaped) does: the copy was 9.5% of a server's time on
       * writes. */
      || (rc
          = conf_set (path, c->rados, "rbd_disable_zero_copy_writes", "false"))
             < 0)
    goto fail;
  if ((rc = rados_connect (c->rados)) < 0) {
    cv_err ("%s: cannot connect to the Ceph cluster as client.%s (conf %s, "
            "keyring %s): %s; check that the monitors are up and reachable "
            "and the key is right (ceph-conf=, ceph-id=, ceph-keyring=)",
            path, o->id ? o->id : "admin", o->conf ? o->conf : "default",
            o->keyring ? o->keyring : "default", strerror (-rc));
    goto fail;
  }
  *out = c;
  return 0;
fail:
  if (made)
    rados_shutdown (c->rados);
  if (c)
    cluster_free (c);
  return rc;
}

/* A new connection for o: 0 or -errno (logged). */
static int
cluster_get (const char *path, const struct cv_rbd_opts *o,
             struct cluster **out)
{
  return cluster_connect (path, o,
                          o->timeout_s ? o->timeout_s : DEFAULT_TIMEOUT_S, out);
}

/* Shut c down and free it. */
static void
cluster_put (struct cluster *c)
{
  rados_shutdown (c->rados);
  cluster_free (c);
}

/* True if image handle im was opened with the options o. */
static bool
same_opts (const struct image *im, const struct cv_rbd_opts *o)
{
  return same (im->c->conf, o->conf) && same (im->c->id, o->id)
         && same (im->c->keyring, o->keyring)
         && im->c->timeout_s
                == (o->timeout_s ? o->timeout_s : DEFAULT_TIMEOUT_S);
}

/* The I/O context of spec's pool and namespace into *io. 0 or -errno
 * (logged). */
static int
ioctx_open (const char *path, struct cluster *c, const struct cv_rbd_spec *s,
            rados_ioctx_t *io)
{
  int rc = rados_ioctx_create (c->rados, s->pool, io);

  if (rc < 0) {
    if (rc == -ENOENT)
      cv_err ("%s: the Ceph cluster has no pool %s (ceph osd pool create %s; "
              "rbd pool init %s)",
              path, s->pool, s->pool, s->pool);
    else
      cv_err ("%s: cannot open pool %s: %s", path, s->pool, strerror (-rc));
    return rc;
  }
  rados_ioctx_set_namespace (*io, s->ns);
  return 0;
}

/* True if client ("client.4125") is one of this process's connections.
 * reg_mu held. */
static bool
ours_locked (const char *client)
{
  char me[32];

  for (struct image *im = images; im; im = im->next) {
    snprintf (me, sizeof me, "client.%" PRIu64,
              (uint64_t) rados_get_instance_id (im->c->rados));
    if (strcmp (me, client) == 0)
      return true;
  }
  return false;
}

/* Who other than this process holds im's exclusive lock, as one string
 * ("client.4125 (127.0.0.1:0/2967542)") in who, or "" when nobody else does
 * (or the image has no exclusive lock). Read from the lock object itself
 * (librbd's exclusive lock is the cls lock "rbd_lock" on the image's header
 * object), which works on a read-only handle too, where librbd's own lock
 * calls are disabled. locked: reg_mu is held. 0 or -errno (not logged). */
static int
lock_owners (struct image *im, bool locked, char *who, size_t who_len)
{
  char id[96], oid[128], tag[256], clients[1024], cookies[1024], addrs[1024];
  size_t tl = sizeof tag, cl = sizeof clients, kl = sizeof cookies,
         al = sizeof addrs, used = 0;
  const char *c = clients, *a = addrs;
  int excl, rc;
  ssize_t n;

  who[0] = '\0';
  if ((rc = rbd_get_id (im->img, id, sizeof id)) < 0)
    return rc;
  snprintf (oid, sizeof oid, "rbd_header.%s", id);
  n = rados_list_lockers (im->ioctx, oid, "rbd_lock", &excl, tag, &tl, clients,
                          &cl, cookies, &kl, addrs, &al);
  if (n < 0)
    return (int) n;
  if (!locked)
    pthread_mutex_lock (&reg_mu);
  for (ssize_t i = 0; i < n; i++) {
    if (!ours_locked (c) && used < who_len)
      used += (size_t) snprintf (who + used, who_len - used, "%s%s (%s)",
                                 used ? ", " : "", c, a);
    c += strlen (c) + 1;
    a += strlen (a) + 1;
  }
  if (!locked)
    pthread_mutex_unlock (&reg_mu);
  return 0;
}

/* Break the exclusive lock of every other holder of im (a takeover), named
 * who in the warning: librbd blocklists each, so its later writes fail.
 * 0 or -errno (logged). */
static int
lock_break (struct image *im, const char *who)
{
  char *owners[8];
  size_t n = 8;
  rbd_lock_mode_t mode;
  int rc;

  cv_warn ("%s: taking over the exclusive lock from %s: it is blocklisted "
           "and its later writes fail",
           im->path, who);
  if ((rc = rbd_lock_get_owners (im->img, &mode, owners, &n)) == 0) {
    for (size_t i = 0; i < n && rc == 0; i++)
      if ((rc = rbd_lock_break (im->img, mode, owners[i])) == -ENOENT)
        rc = 0;
    rbd_lock_get_owners_cleanup (owners, n);
  }
  if (rc < 0 && rc != -ENOENT) {
    cv_err ("%s: cannot break the exclusive lock of %s: %s", im->path, who,
            strerror (-rc));
    return rc;
  }
  return 0;
}

/* Take im's exclusive lock (a writable open); with takeover, break another
 * client's first. Without takeover, a live holder refuses at once (-EROFS
 * from librbd); a holder that died (kill -9, host gone) without releasing
 * is waited for until its watch expires (osd_client_watch_timeout, 30 s by
 * default), and librbd then breaks its lock and blocklists it itself. With
 * takeover the lock is broken before it is asked for: no wait. 0, -EBUSY
 * (held by another client) or -errno (logged). */
static int
lock_take (struct image *im, bool takeover)
{
  char who[512];
  int rc, attempt;

  for (attempt = 0; attempt < 3; attempt++) {
    if (takeover && (rc = lock_owners (im, true, who, sizeof who)) == 0
        && who[0] && (rc = lock_break (im, who)) < 0)
      return rc;
    rc = rbd_lock_acquire (im->img, RBD_LOCK_MODE_EXCLUSIVE);
    if (rc == 0)
      return 0;
    if (rc == -EINVAL || rc == -EOPNOTSUPP) {
      cv_err ("%s: the image has no exclusive-lock feature, so another host "
              "could write it at the same time; enable it (rbd feature "
              "enable %s/%s%s%s exclusive-lock)",
              im->path, im->spec.pool, im->spec.ns, im->spec.ns[0] ? "/" : "",
              im->spec.image);
      return -EINVAL;
    }
    if (rc != -EROFS && rc != -EBUSY) {
      cv_err ("%s: cannot take the image's exclusive lock: %s", im->path,
              strerror (-rc));
      return rc;
    }
    if ((rc = lock_owners (im, true, who, sizeof who)) < 0) {
      cv_err ("%s: the exclusive lock is held by another client, which "
              "cannot be named: %s",
              im->path, strerror (-rc));
      return rc;
    }
    if (who[0] && !takeover) {
      cv_err ("%s: in use by another Ceph client (%s holds the image's "
              "exclusive lock); " TAKEOVER_HINT,
              im->path, who);
      return -EBUSY;
    }
    /* Released in between, or taken again since the break: again. */
  }
  cv_err ("%s: the exclusive lock changed hands while it was being taken; "
          "try again",
          im->path);
  return -EBUSY;
}

/* Close im's librbd handles and free it (not on the list). reg_mu held. */
static void
image_free (struct image *im)
{
  if (im->img) {
    int rc = rbd_close (im->img);
    if (rc < 0)
      cv_warn ("%s: closing the image: %s", im->path, strerror (-rc));
  }
  if (im->ioctx)
    rados_ioctx_destroy (im->ioctx);
  if (im->c)
    cluster_put (im->c);
  pthread_mutex_destroy (&im->mu);
  pthread_cond_destroy (&im->cv);
  free (im->path);
  free (im);
}

/* A reference to the image at path for o: shared when this process has it
 * open already (writable: a writable handle), else opened (writable: with
 * the exclusive lock). 0 or -errno (logged). */
static int
image_get (const char *path, const struct cv_rbd_opts *o, bool readonly,
           struct image **out)
{
  static const struct cv_rbd_opts defaults = { 0 };
  struct cv_rbd_spec spec;
  struct cluster *c = NULL;
  struct image *im;
  int rc;

  if ((rc = cv_rbd_parse (path, &spec)) < 0)
    return rc;
  if (!o)
    o = &defaults;
  pthread_mutex_lock (&reg_mu);
  if (images && reg_pid != getpid ()) {
    pthread_mutex_unlock (&reg_mu);
    cv_err ("%s: RBD stores cannot be used in a child process after fork "
            "(librados' threads stay in the parent); open them in the "
            "process that serves them",
            path);
    return -ENOTSUP;
  }
  reg_pid = getpid ();
  for (im = images; im; im = im->next)
    if (same_opts (im, o) && (im->writable || readonly)
        && strcmp (im->spec.pool, spec.pool) == 0
        && strcmp (im->spec.ns, spec.ns) == 0
        && strcmp (im->spec.image, spec.image) == 0) {
      im->refs++;
      *out = im;
      goto out;
    }
  /* A connection of its own: takeover blocklists the holder's client
   * (address and nonce), which must fence this image and no other. */
  if ((rc = cluster_get (path, o, &c)) < 0)
    goto out;
  if (!(im = calloc (1, sizeof *im))) {
    cv_err ("%s: out of memory", path);
    cluster_put (c);
    rc = -ENOMEM;
    goto out;
  }
  pthread_mutex_init (&im->mu, NULL);
  pthread_cond_init (&im->cv, NULL);
  im->c = c;
  im->spec = spec;
  im->refs = 1;
  im->writable = !readonly;
  if (asprintf (&im->path, "rbd:%s/%s%s%s", spec.pool, spec.ns,
                spec.ns[0] ? "/" : "", spec.image)
      < 0) {
    im->path = NULL;
    cv_err ("%s: out of memory", path);
    rc = -ENOMEM;
    goto fail;
  }
  if ((rc = ioctx_open (im->path, c, &spec, &im->ioctx)) < 0)
    goto fail;
  rc = readonly ? rbd_open_read_only (im->ioctx, spec.image, &im->img, NULL)
                : rbd_open (im->ioctx, spec.image, &im->img, NULL);
  if (rc < 0) {
    im->img = NULL;
    if (rc == -ENOENT)
      cv_err ("%s: no such image%s%s in pool %s (cryptvol-keymgr create "
              "%s --size N creates it)",
              im->path, spec.ns[0] ? " or namespace " : "", spec.ns, spec.pool,
              im->path);
    else
      cv_err ("%s: cannot open the image: %s", im->path, strerror (-rc));
    goto fail;
  }
  if (!readonly && (rc = lock_take (im, o->takeover)) < 0)
    goto fail;
  im->next = images;
  images = im;
  *out = im;
  rc = 0;
  goto out;
fail:
  image_free (im);
out:
  pthread_mutex_unlock (&reg_mu);
  return rc;
}

/* Drop a reference to im; the last one closes it (releasing the lock). */
static void
image_put (struct image *im)
{
  struct image **pp;

  pthread_mutex_lock (&reg_mu);
  if (--im->refs == 0) {
    for (pp = &images; *pp != im; pp = &(*pp)->next)
      ;
    *pp = im->next;
    image_free (im);
  }
  pthread_mutex_unlock (&reg_mu);
}

int
cv_rbd_create (const char *path, const struct cv_rbd_opts *o, uint64_t size)
{
  static const struct cv_rbd_opts defaults = { 0 };
  struct cv_rbd_spec spec;
  struct cluster *c = NULL;
  rados_ioctx_t io = NULL;
  rbd_image_options_t opts;
  int rc;

  if ((rc = cv_rbd_parse (path, &spec)) < 0)
    return rc;
  pthread_mutex_lock (&reg_mu);
  if (images && reg_pid != getpid ()) {
    pthread_mutex_unlock (&reg_mu);
    cv_err ("%s: RBD stores cannot be used in a child process after fork",
            path);
    return -ENOTSUP;
  }
  reg_pid = getpid ();
  rc = cluster_get (path, o ? o : &defaults, &c);
  if (rc == 0 && (rc = ioctx_open (path, c, &spec, &io)) == 0) {
    rbd_image_options_create (&opts);
    rbd_image_options_set_uint64 (opts, RBD_IMAGE_OPTION_FORMAT, 2);
    rbd_image_options_set_uint64 (opts, RBD_IMAGE_OPTION_FEATURES,
                                  CREATE_FEATURES);
    rc = rbd_create4 (io, spec.image, size, opts);
    rbd_image_options_destroy (opts);
    if (rc < 0 && rc != -EEXIST) /* EEXIST: the caller may format it */
      cv_err ("%s: cannot create the image (%" PRIu64 " bytes): %s%s", path,
              size, strerror (-rc),
              rc == -ENOENT && spec.ns[0]
                  ? " (does the namespace exist? rbd namespace create)"
                  : "");
    rados_ioctx_destroy (io);
  }
  if (c)
    cluster_put (c);
  pthread_mutex_unlock (&reg_mu);
  return rc;
}

/* Check that [off, off+len) lies within im. 0, or -EIO for a read and
 * -ENOSPC for a write beyond the end, or -errno. */
static int
within (struct image *im, uint64_t off, size_t len, int beyond)
{
  uint64_t size;
  int rc = rbd_get_size (im->img, &size);

  if (rc < 0)
    return rc;
  return off > size || len > size - off ? beyond : 0;
}

/* --- the header device --------------------------------------------------- */

struct rbd_dev {
  struct cv_dev d;
  struct image *im;
  bool readonly;
  short held[3]; /* F_UNLCK, F_RDLCK or F_WRLCK: this device's HEADER and
                    COMMIT locks */
};

static const char *const dev_lock_name[] = {
  [CV_DEV_LOCK_HEADER] = "header write",
  [CV_DEV_LOCK_IN_USE] = "volume in-use",
  [CV_DEV_LOCK_COMMIT] = "header commit",
};

static int
dev_pread (struct cv_dev *d, void *buf, size_t len, uint64_t off, size_t *got)
{
  struct rbd_dev *r = (struct rbd_dev *) d;
  uint64_t size;
  int rc = rbd_get_size (r->im->img, &size);
  ssize_t n;

  if (got)
    *got = 0;
  if (rc < 0)
    return rc;
  /* Clipped at the end, as a file read stops there. */
  size_t want = off >= size ? 0 : size - off < len ? size - off : len;
  if ((n = want ? rbd_read (r->im->img, off, want, buf) : 0) < 0)
    return (int) n;
  if ((size_t) n < len && !got)
    return -EIO;
  if (got)
    *got = (size_t) n;
  return 0;
}

static int
dev_pwrite (struct cv_dev *d, const void *buf, size_t len, uint64_t off,
            bool dsync)
{
  struct rbd_dev *r = (struct rbd_dev *) d;
  ssize_t n;
  int rc;

  if (r->readonly)
    return -EROFS;
  if ((rc = within (r->im, off, len, -ENOSPC)) < 0)
    return rc;
  /* Within the image, librbd writes all of it or fails. */
  if ((n = rbd_write (r->im->img, off, len, buf)) < 0)
    return (int) n;
  return dsync ? rbd_flush (r->im->img) : 0;
}

static int
dev_flush (struct cv_dev *d)
{
  return rbd_flush (((struct rbd_dev *) d)->im->img);
}

static int
dev_size (struct cv_dev *d, uint64_t *size)
{
  return rbd_get_size (((struct rbd_dev *) d)->im->img, size);
}

static int
dev_resize (struct cv_dev *d, uint64_t size)
{
  struct rbd_dev *r = (struct rbd_dev *) d;

  return r->readonly ? -EROFS : rbd_resize (r->im->img, size);
}

/* Release dev's hold on lock which. im->mu held. */
static void
plock_release (struct rbd_dev *r, enum cv_dev_lock which)
{
  struct plock *l = &r->im->locks[which];

  if (r->held[which] == F_RDLCK)
    l->readers--;
  else if (r->held[which] == F_WRLCK)
    l->writer = false;
  r->held[which] = F_UNLCK;
  pthread_cond_broadcast (&r->im->cv);
}

static int
dev_lock (struct cv_dev *d, enum cv_dev_lock which, short type, bool wait)
{
  struct rbd_dev *r = (struct rbd_dev *) d;
  struct image *im = r->im;

  if (type == F_WRLCK && r->readonly) {
    cv_err ("cannot take the %s lock of %s: the image is open read-only",
            dev_lock_name[which], d->name);
    return -EBADF;
  }
  /* The volume in-use lock is RBD's exclusive lock, held since a writable
   * open; a read-only open shares the image with anyone. */
  if (which == CV_DEV_LOCK_IN_USE)
    return 0;
  pthread_mutex_lock (&im->mu);
  if (r->held[which] != type) {
    plock_release (r, which);
    struct plock *l = &im->locks[which];
    while (type != F_UNLCK && (l->writer || (type == F_WRLCK && l->readers))) {
      if (!wait) {
        pthread_mutex_unlock (&im->mu);
        return -EBUSY;
      }
      pthread_cond_wait (&im->cv, &im->mu);
    }
    if (type == F_RDLCK)
      l->readers++;
    else if (type == F_WRLCK)
      l->writer = true;
    r->held[which] = type;
  }
  pthread_mutex_unlock (&im->mu);
  return 0;
}

static int
dev_holder (struct cv_dev *d, char *who, size_t who_len)
{
  struct rbd_dev *r = (struct rbd_dev *) d;
  char buf[512];
  int rc;

  if (who && who_len)
    who[0] = '\0';
  if (r->im->writable)
    return 0; /* we hold the exclusive lock */
  if ((rc = lock_owners (r->im, false, buf, sizeof buf)) < 0) {
    cv_err ("%s: cannot list the holders of the image's exclusive lock: %s",
            d->name, strerror (-rc));
    return rc;
  }
  if (!buf[0])
    return 0;
  if (who && who_len)
    snprintf (who, who_len, "%s", buf);
  return 1;
}

static void
dev_close (struct cv_dev *d)
{
  struct rbd_dev *r = (struct rbd_dev *) d;

  pthread_mutex_lock (&r->im->mu);
  plock_release (r, CV_DEV_LOCK_HEADER);
  plock_release (r, CV_DEV_LOCK_COMMIT);
  pthread_mutex_unlock (&r->im->mu);
  image_put (r->im);
  free (r);
}

static const struct cv_dev_ops rbd_dev_ops = {
  .name = "rbd",
  .pread = dev_pread,
  .pwrite = dev_pwrite,
  .flush = dev_flush,
  .size = dev_size,
  .resize = dev_resize,
  .lock = dev_lock,
  .holder = dev_holder,
  .close = dev_close,
};

int
cv_rbd_remove (const char *path, const struct cv_rbd_opts *o)
{
  static const struct cv_rbd_opts defaults = { 0 };
  struct cv_rbd_spec spec;
  struct cluster *c = NULL;
  rados_ioctx_t io = NULL;
  int rc;

  if ((rc = cv_rbd_parse (path, &spec)) < 0)
    return rc;
  pthread_mutex_lock (&reg_mu);
  rc = cluster_get (path, o ? o : &defaults, &c);
  if (rc == 0 && (rc = ioctx_open (path, c, &spec, &io)) == 0) {
    if ((rc = rbd_remove (io, spec.image)) < 0)
      cv_err ("%s: cannot remove the image: %s", path, strerror (-rc));
    rados_ioctx_destroy (io);
  }
  if (c)
    cluster_put (c);
  pthread_mutex_unlock (&reg_mu);
  return rc;
}

int
cv_rbd_dev_open (const char *path, const struct cv_rbd_opts *o, bool readonly,
                 struct cv_dev **out)
{
  CLEANUP_FREE struct rbd_dev *r = calloc (1, sizeof *r);
  int rc;

  if (!r) {
    cv_err ("%s: out of memory", path);
    return -ENOMEM;
  }
  if ((rc = image_get (path, o, readonly, &r->im)) < 0)
    return rc;
  r->readonly = readonly;
  for (size_t i = 0; i < ARRAY_SIZE (r->held); i++)
    r->held[i] = F_UNLCK;
  r->d = (struct cv_dev){ .ops = &rbd_dev_ops, .fd = -1, .name = r->im->path };
  *out = &STEAL (r)->d;
  return 0;
}

/* --- the data-path backend ----------------------------------------------- */

struct rbd_io {
  struct cv_io base;
  struct image *im;
  bool readonly;
};

enum { REQ_FREE, REQ_QUEUED, REQ_IN_FLIGHT, REQ_DONE };

struct rbd_req {
  struct rbd_queue *q;
  struct rbd_req *next; /* on the free, queued or done list */
  uint64_t tag;
  uint64_t off;
  void *buf;
  size_t len;
  unsigned op; /* CV_IO_OP_* */
  bool fua;
  bool flushed; /* a FUA write whose flush has been issued */
  int rc;       /* the result, once done */
};

struct rbd_queue {
  struct cv_io_queue base;
  struct rbd_io *io;
  struct rbd_req *reqs; /* base.depth of them */
  unsigned used;        /* requests not free: queued, in flight or done */
  /* The owner's: */
  struct rbd_req *free, *queued, **queued_tail;
  /* Shared with librbd's callbacks, under mu: */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned in_flight;
  struct rbd_req *done, **done_tail;
};

static int
rbd_io_open (const struct cv_io_open_opts *o, struct cv_io **out)
{
  CLEANUP_FREE struct rbd_io *io = calloc (1, sizeof *io);
  int rc;

  if (!io) {
    cv_err ("%s: out of memory", o->path);
    return -ENOMEM;
  }
  if ((rc = image_get (o->path, o->rbd, o->readonly, &io->im)) < 0)
    return rc;
  io->readonly = o->readonly;
  io->base.ops = &cv_io_rbd_ops;
  *out = &STEAL (io)->base;
  return 0;
}

static void
rbd_io_close (struct cv_io *base)
{
  struct rbd_io *io = (struct rbd_io *) base;

  image_put (io->im);
  free (io);
}

static int
rbd_io_size (struct cv_io *base, uint64_t *size)
{
  struct rbd_io *io = (struct rbd_io *) base;
  int rc = rbd_get_size (io->im->img, size);

  if (rc < 0)
    cv_err ("%s: cannot get the image's size: %s", io->im->path,
            strerror (-rc));
  return rc;
}

static int
rbd_queue_new (struct cv_io *base, unsigned depth, bool shared,
               struct cv_io_queue **out)
{
  struct rbd_io *io = (struct rbd_io *) base;
  CLEANUP_FREE struct rbd_queue *q = NULL;

  if (depth == 0) {
    cv_err ("%s: I/O queue of depth 0", io->im->path);
    return -EINVAL;
  }
  if (!(q = calloc (1, sizeof *q))
      || !(q->reqs = calloc (depth, sizeof *q->reqs))) {
    cv_err ("%s: out of memory for an I/O queue of %u requests", io->im->path,
            depth);
    return -ENOMEM;
  }
  q->io = io;
  q->base.depth = depth;
  for (unsigned i = 0; i < depth; i++) {
    q->reqs[i].q = q;
    q->reqs[i].next = i + 1 < depth ? &q->reqs[i + 1] : NULL;
  }
  q->free = q->reqs;
  q->queued_tail = &q->queued;
  q->done_tail = &q->done;
  pthread_mutex_init (&q->mu, NULL);
  pthread_cond_init (&q->cv, NULL);
  *out = &STEAL (q)->base;
  return 0;
}

/* Requests in flight are waited for: librbd writes into their buffers and
 * calls back with them until they complete. */
static void
rbd_queue_free (struct cv_io_queue *base)
{
  struct rbd_queue *q = (struct rbd_queue *) base;

  pthread_mutex_lock (&q->mu);
  while (q->in_flight)
    pthread_cond_wait (&q->cv, &q->mu);
  pthread_mutex_unlock (&q->mu);
  pthread_mutex_destroy (&q->mu);
  pthread_cond_destroy (&q->cv);
  free (q->reqs);
  free (q);
}

static unsigned
rbd_space (const struct cv_io_queue *base)
{
  const struct rbd_queue *q = (const struct rbd_queue *) base;

  return q->base.depth - q->used;
}

static int
queue (struct cv_io_queue *base, unsigned op, void *buf, size_t len,
       uint64_t off, bool fua, uint64_t tag)
{
  struct rbd_queue *q = (struct rbd_queue *) base;
  struct rbd_req *r = q->free;

  if (!r)
    return -EBUSY;
  q->free = r->next;
  q->used++;
  *r = (struct rbd_req){
    .q = q, .tag = tag, .off = off, .buf = buf, .len = len, .op = op, .fua = fua
  };
  *q->queued_tail = r;
  q->queued_tail = &r->next;
  return 0;
}

static int
rbd_queue_read (struct cv_io_queue *q, void *buf, size_t len, uint64_t off,
                uint64_t tag)
{
  return queue (q, CV_IO_OP_READ, buf, len, off, false, tag);
}

static int
rbd_queue_write (struct cv_io_queue *q, const void *buf, size_t len,
                 uint64_t off, bool fua, uint64_t tag)
{
  /* librbd only reads a write's buffer. */
  return queue (q, CV_IO_OP_WRITE, (void *) buf, len, off, fua, tag);
}

static int
rbd_queue_flush (struct cv_io_queue *q, uint64_t tag)
{
  return queue (q, CV_IO_OP_FLUSH, NULL, 0, 0, false, tag);
}

/* librbd has no range write-back: all of it. */
static int
rbd_queue_sync_range (struct cv_io_queue *q, uint64_t off, uint64_t len,
                      uint64_t tag)
{
  return queue (q, CV_IO_OP_FLUSH, NULL, 0, 0, false, tag);
}

/* r is done with rc: onto the done list. q->mu held. */
static void
done_locked (struct rbd_req *r, int rc)
{
  struct rbd_queue *q = r->q;

  r->rc = rc;
  r->next = NULL;
  *q->done_tail = r;
  q->done_tail = &r->next;
  pthread_cond_broadcast (&q->cv);
}

/* librbd's thread: the request is done. Nothing here blocks but on q->mu,
 * which nobody holds across a call into librbd. q may be freed as soon as
 * the mutex is released. */
static void
complete_cb (rbd_completion_t c, void *arg)
{
  struct rbd_req *r = arg;
  struct rbd_queue *q = r->q;
  ssize_t n = rbd_aio_get_return_value (c);
  int rc;

  rbd_aio_release (c);
  if (n < 0)
    rc = (int) n;
  else if (r->op == CV_IO_OP_READ && (size_t) n != r->len)
    rc = -EIO; /* a short read: the image ended */
  else
    rc = 0;
  pthread_mutex_lock (&q->mu);
  q->in_flight--;
  done_locked (r, rc);
  pthread_mutex_unlock (&q->mu);
}

/* Hand r to librbd (a flush when op is CV_IO_OP_FLUSH or r is a FUA write
 * whose data is written). Called without q->mu; a request librbd refuses
 * is done at once with its error. */
static void
issue (struct rbd_queue *q, struct rbd_req *r, unsigned op)
{
  struct image *im = q->io->im;
  rbd_completion_t c;
  int rc;

  pthread_mutex_lock (&q->mu);
  q->in_flight++;
  pthread_mutex_unlock (&q->mu);
  if ((rc = rbd_aio_create_completion (r, complete_cb, &c)) == 0) {
    switch (op) {
    case CV_IO_OP_READ:
      rc = rbd_aio_read (im->img, r->off, r->len, r->buf, c);
      break;
    case CV_IO_OP_WRITE:
      rc = rbd_aio_write (im->img, r->off, r->len, r->buf, c);
      break;
    default:
      rc = rbd_aio_flush (im->img, c);
      break;
    }
    if (rc < 0)
      rbd_aio_release (c);
  }
  if (rc < 0) {
    pthread_mutex_lock (&q->mu);
    q->in_flight--;
    done_locked (r, rc);
    pthread_mutex_unlock (&q->mu);
  }
}

/* Start everything queued. Requests that cannot be done (beyond the end,
 * a write on a read-only store) are done at once with their error. */
static int
rbd_submit (struct cv_io_queue *base)
{
  struct rbd_queue *q = (struct rbd_queue *) base;
  struct rbd_req *r;

  while ((r = q->queued)) {
    int rc = 0;
    if (!(q->queued = r->next))
      q->queued_tail = &q->queued;
    if (r->op == CV_IO_OP_WRITE && q->io->readonly)
      rc = -EROFS;
    else if (r->op != CV_IO_OP_FLUSH)
      rc = within (q->io->im, r->off, r->len,
                   r->op == CV_IO_OP_READ ? -EIO : -ENOSPC);
    if (rc < 0) {
      pthread_mutex_lock (&q->mu);
      done_locked (r, rc);
      pthread_mutex_unlock (&q->mu);
    } else
      issue (q, r, r->op);
  }
  return 0;
}

static int
rbd_reap (struct cv_io_queue *base, uint64_t *tag, bool wait)
{
  struct rbd_queue *q = (struct rbd_queue *) base;
  struct rbd_req *r;
  int rc;

  if (q->used == 0)
    return -ENOENT;
  rbd_submit (base); /* reaping what was never submitted would wait forever */
  pthread_mutex_lock (&q->mu);
  for (;;) {
    if ((r = q->done)) {
      if (!(q->done = r->next))
        q->done_tail = &q->done;
      if (r->op == CV_IO_OP_WRITE && r->fua && !r->flushed && r->rc == 0) {
        /* The data is written; durable once a flush after it completes. */
        r->flushed = true;
        pthread_mutex_unlock (&q->mu);
        issue (q, r, CV_IO_OP_FLUSH);
        pthread_mutex_lock (&q->mu);
        continue;
      }
      break;
    }
    if (!wait) {
      pthread_mutex_unlock (&q->mu);
      return -EAGAIN;
    }
    pthread_cond_wait (&q->cv, &q->mu);
  }
  pthread_mutex_unlock (&q->mu);
  *tag = r->tag;
  rc = r->rc;
  r->next = q->free;
  q->free = r;
  q->used--;
  return rc;
}

const struct cv_io_ops cv_io_rbd_ops = {
  .name = "rbd",
  /* Each librbd operation costs ~80 us of CPU here and one OSD op: 128 KiB
   * pieces of a 1 MiB request cost 1.4x the CPU per GiB (doc/performance.md,
   * "Volumes on Ceph RBD"). */
  .chunk = RBD_CHUNK,
  .open = rbd_io_open,
  .close = rbd_io_close,
  .size = rbd_io_size,
  .map = NULL,
  .queue_new = rbd_queue_new,
  .queue_free = rbd_queue_free,
  .space = rbd_space,
  .queue_read = rbd_queue_read,
  .queue_write = rbd_queue_write,
  .queue_flush = rbd_queue_flush,
  .queue_sync_range = rbd_queue_sync_range,
  .submit = rbd_submit,
  .reap = rbd_reap,
};

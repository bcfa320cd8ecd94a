/* nbdkit-cryptvol-plugin: nbdkit glue only. The volume, its header, keys and
 * data path live in libcryptvol (lib/); this file unlocks the exports
 * (config.c made them from the parameters), routes log messages to nbdkit,
 * and maps callbacks to cv_vol_*. One server serves one volume (volume=) or
 * many, each an export chosen by name (volumes=FILE, dir=DIR). See
 * doc/nbdkit-cryptvol-plugin.pod for every parameter. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "common/log.h"
#include "common/version.h"
#include "crypto/secmem.h"
#include "ctl/audit.h"
#include "ctl/ctl.h"
#include "plugin.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#define MAX_REQUEST (32 * 1024 * 1024)
/* A client's open retries the unlock of an export that failed at most this
 * often (a key service that was down at start-up heals by itself). */
#define RETRY_S 10

static bool forked; /* after_fork ran: an export's threads may start */
static struct cv_ctl *ctl;
static struct cv_ctl_export *ctl_exports; /* the control socket's view */
static struct cv_audit *audit;

/* Library messages go to nbdkit: errors and warnings (which include the
 * key state's changes) through nbdkit_error, so that they reach syslog when
 * nbdkit logs there (--log=syslog), warnings marked "warning:"; debug
 * through nbdkit_debug (shown with -v). */
static void
log_sink (enum cv_log_level level, const char *msg)
{
  switch (level) {
  case CV_LOG_ERROR:
    nbdkit_error ("%s", msg);
    break;
  case CV_LOG_WARN:
    nbdkit_error ("warning: %s", msg);
    break;
  case CV_LOG_INFO:
  case CV_LOG_DEBUG:
    nbdkit_debug ("%s", msg);
    break;
  }
}

static void
cryptvol_load (void)
{
  cv_log_set_sink (log_sink);
  cv_log_set_debug (true); /* nbdkit_debug itself prints only with -v */
}

/* The export's volume, or NULL while it is not unlocked. */
static struct cv_vol *
export_vol (struct export *e)
{
  return __atomic_load_n (&e->vol, __ATOMIC_ACQUIRE);
}

static void
cryptvol_unload (void)
{
  cv_ctl_stop (ctl);
  free (ctl_exports);
  cv_watch_stop ();
  for (size_t i = 0; i < nexports; i++)
    if (exports[i].vol)
      cv_vol_rotate_stop (exports[i].vol); /* the next start continues */
  for (size_t i = 0; i < nexports; i++)
    cv_vol_close (exports[i].vol);
  cv_vol_set_event_sink (NULL, NULL);
  cv_audit_close (audit);
  config_free ();
  cv_keys_cleanup ();
}

static int
cryptvol_config (const char *key, const char *value)
{
  return config_param (key, value);
}

static int
cryptvol_config_complete (void)
{
  return config_complete ();
}

#define cryptvol_config_help                                                   \
  "[volume=]PATH        Volume: a file, block device or rbd:POOL/IMAGE.\n"     \
  "volumes=FILE         Serve many: a stanza per export (see the man page).\n" \
  "dir=DIR              Serve every volume file in DIR, named after it.\n"     \
  "unlock=eager|lazy    Unlock every export at start (default) or at its "     \
  "first client.\n"                                                            \
  "unlock-parallel=N    Unlocks at once at start-up (default 32).\n"           \
  "header=PATH          Detached header file.\n"                               \
  "keyfile=PATH         File holding a 32-byte key-encryption key.\n"          \
  "wrap=ID|TYPE         Unlock with this wrap (repeatable: tried in order).\n" \
  "passphrase=+FILE|-FD|-  Recovery passphrase (never on the command line).\n" \
  "pin=+FILE|-FD|-      PKCS#11 user PIN (never on the command line).\n"       \
  "pkcs11-module=PATH   PKCS#11 module, if the URI has no module-path.\n"      \
  "kms-endpoint=URL     AWS KMS endpoint override (VPC, FIPS, test).\n"        \
  "kms-region=REGION    AWS region for KMS wraps (default: from the key).\n"   \
  "ca-bundle=FILE       CA certificates for the KMS endpoint.\n"               \
  "kms-grant-token=+FILE|-FD|-|TOKEN  A KMS grant's token (not yet "           \
  "propagated).\n"                                                             \
  "allow-costly-kdf=true|false  Unlock a passphrase wrap whose KDF is over "   \
  "the limit.\n"                                                               \
  "direct=true|false    Open the data with O_DIRECT (default false).\n"        \
  "ceph-conf=FILE       rbd: volumes: ceph.conf (default: Ceph's search).\n"   \
  "ceph-id=NAME         rbd: volumes: the client id (default admin).\n"        \
  "ceph-keyring=FILE    rbd: volumes: the keyring (default: the conf's).\n"    \
  "ceph-timeout=SECONDS rbd: volumes: cluster timeouts (default 30).\n"        \
  "takeover=true|false  rbd: volumes: break another host's lock (fence it).\n" \
  "io=auto|io_uring|posix  I/O backend (default auto: io_uring if usable).\n"  \
  "xts-engine=auto|openssl|gcrypt  XTS implementation (default auto: the "     \
  "faster).\n"                                                                 \
  "read-path=auto|map|pread  Decrypt reads from a mapping of the file or "     \
  "after pread (auto).\n"                                                      \
  "readonly=true|false  Open the volume read-only (default: if not "           \
  "writable).\n"                                                               \
  "key-check=SECONDS    Re-check the key every SECONDS (default 60; 0: "       \
  "off).\n"                                                                    \
  "key-grace=SECONDS    Serve while the key service is unreachable (900).\n"   \
  "on-unreachable=fail|serve  After key-grace (default fail: refuse I/O).\n"   \
  "resume=true|false    Serve again when a revoked key is usable (true).\n"    \
  "control=PATH         Listen for cryptvol-keymgr "                           \
  "status|lock|unlock|reload|rotate-dek.\n"                                    \
  "control-group=GROUP  Members may use the control socket too (mode 0660).\n" \
  "audit-log=PATH       Append key events and control commands (JSON "         \
  "lines).\n"                                                                  \
  "rotate=auto|manual   Continue a DEK rotation found at start (default "      \
  "auto).\n"                                                                   \
  "rotate-rate=MIB      Its rate limit in MiB/s (default 0: unlimited)."

/* The volumes' key events into the audit log, with the export's name when
 * there are several (an export's path is its own: two cannot hold one
 * volume open). */
static void
audit_event (void *arg, struct cv_vol *v, json_t *ev)
{
  for (size_t i = 0; server.multi && i < nexports; i++)
    if (strcmp (exports[i].p.path, cv_vol_path (v)) == 0)
      json_object_set_new (ev, "export", json_string (exports[i].name));
  cv_audit_write (arg, cv_vol_path (v), cv_vol_uuid (v), ev);
}

/* Whether path may be opened for writing: false, with errno, when its
 * mode, a read-only mount or the immutable flag forbids it. Other failures
 * (no such file) are left to the open, which reports them. */
static bool
writable (const char *path)
{
  if (faccessat (AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
    return true;
  return errno != EACCES && errno != EROFS && errno != EPERM
         && errno != ETXTBSY;
}

/* A volume or header this process cannot write is served read-only, with a
 * notice, instead of failing to open (readonly=true says it on purpose, and
 * skips this). */
static void
readonly_if_unwritable (struct vol_params *p)
{
  const char *path = p->path;

  if (p->readonly)
    return;
  if (writable (p->path) && (!p->header || writable (path = p->header)))
    return;
  nbdkit_error ("warning: %s cannot be written (%s): serving it read-only; "
                "readonly=true says so and silences this",
                path, strerror (errno));
  p->readonly = true;
}

/* A volume opened mid-rotation continues rotating in the background
 * (rotate=auto), unless it is served read-only. A rotation that cannot
 * start (the library said why) is not fatal: the volume is served as it
 * is, and `rotate` on the control socket can start it later. */
static void
continue_rotation (struct export *e)
{
  uint64_t done;

  if (!cv_vol_rotating (e->vol, &done))
    return;
  if (e->p.readonly) {
    nbdkit_debug ("volume %s is mid-rotation (%llu bytes done); read-only: "
                  "not rotating",
                  e->p.path, (unsigned long long) done);
    return;
  }
  if (e->p.rotate_manual) {
    nbdkit_debug ("volume %s is mid-rotation (%llu bytes done); "
                  "rotate=manual: waiting for the control socket's rotate",
                  e->p.path, (unsigned long long) done);
    return;
  }
  if (cv_vol_rotate_start (e->vol, e->p.rotate_rate) == 0)
    nbdkit_debug ("volume %s: continuing the DEK rotation at %llu bytes",
                  e->p.path, (unsigned long long) done);
}

/* An unlocked export's threads: the key watch and a rotation to continue.
 * They start after nbdkit forked (threads do not survive fork). */
static int
export_start (struct export *e)
{
  if (cv_watch_add (e->vol, &e->p.watch) < 0)
    return -1;
  continue_rotation (e);
  return 0;
}

static time_t
now_s (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* Unlock export e (its lock held): open the volume, and start its threads
 * when nbdkit has forked. On failure the reason is kept in e->why for the
 * clients that ask for it and the control socket. 0 or -1 (logged). */
static int
export_unlock (struct export *e)
{
  struct cv_vol *v;
  struct cv_vol_opts o = {
    .path = e->p.path,
    .header_path = e->p.header,
    .rbd = &e->p.rbd,
    .direct = e->p.direct,
    .creds = &e->p.creds,
    .wraps = &e->p.wraps,
    .io = server.io_kind,
    .xts_impl = server.xts_impl,
    .read_path = e->p.read_path,
    .keep_creds = e->p.watch.interval_s > 0 || server.control_path,
  };

  readonly_if_unwritable (&e->p);
  o.readonly = e->p.readonly;
  e->tried = now_s ();
  cv_log_clear_last_error ();
  if (cv_vol_open (&o, &v) < 0) {
    free (e->why);
    e->why = strdup (cv_log_last_error ()[0] ? cv_log_last_error ()
                                             : "cannot open the volume");
    return -1;
  }
  free (e->why);
  e->why = NULL;
  __atomic_store_n (&e->vol, v, __ATOMIC_RELEASE);
  nbdkit_debug ("export \"%s\": volume %s (uuid %s) unlocked, %llu bytes, "
                "%u-byte sectors",
                e->name, e->p.path, cv_vol_uuid (v),
                (unsigned long long) cv_vol_size (v), cv_vol_sector_size (v));
  return forked ? export_start (e) : 0;
}

/* Whether e is unlocked only once nbdkit has forked: an RBD volume
 * (data or header), because librados's threads would not survive the
 * fork. */
static bool
after_fork_only (const struct export *e)
{
  return cv_rbd_is_path (e->p.path)
         || (e->p.header && cv_rbd_is_path (e->p.header));
}

/* What the unlock pool shares: the next export to take, and which ones. */
struct pool {
  size_t next; /* atomic */
  bool rbd;    /* the after_fork_only ones, else the others */
};

static void *
unlock_worker (void *arg)
{
  struct pool *p = arg;
  size_t i;

  while ((i = __atomic_fetch_add (&p->next, 1, __ATOMIC_RELAXED)) < nexports) {
    if (after_fork_only (&exports[i]) != p->rbd)
      continue;
    pthread_mutex_lock (&exports[i].lock);
    export_unlock (&exports[i]);
    pthread_mutex_unlock (&exports[i].lock);
  }
  return NULL;
}

/* unlock=eager with many exports: unlock them all (rbd: the RBD ones, in
 * after_fork, else the others, before nbdkit listens), unlock_parallel at
 * a time (each mostly waits for its key service). An export that fails is
 * logged and refuses its clients until an open or the control socket's
 * unlock retries it; the others are served. */
static void
unlock_all (bool rbd)
{
  size_t nthreads
      = server.unlock_parallel < nexports ? server.unlock_parallel : nexports;
  pthread_t *t = calloc (nthreads, sizeof *t);
  struct pool p = { .rbd = rbd };
  size_t started = 0, failed = 0;
  time_t t0 = now_s ();

  for (; t && started < nthreads; started++)
    if (pthread_create (&t[started], NULL, unlock_worker, &p) != 0)
      break;
  if (started == 0)
    unlock_worker (&p); /* no thread at all: one at a time, here */
  for (size_t i = 0; i < started; i++)
    pthread_join (t[i], NULL);
  free (t);
  for (size_t i = 0; i < nexports; i++)
    failed += !exports[i].vol && after_fork_only (&exports[i]) == rbd;
  if (failed)
    nbdkit_error ("warning: %zu of %zu exports could not be unlocked (each "
                  "said why above); they refuse clients until an unlock "
                  "succeeds (a client's open retries every %d s)",
                  failed, nexports, RETRY_S);
  nbdkit_debug ("unlocked %zu of %zu exports in %lld s, %zu at a time",
                nexports - failed, nexports, (long long) (now_s () - t0),
                started ? started : 1);
}

/* Unlock the exports, rbd: those that wait for the fork (after_fork_only)
 * or the others. A single volume whose key is missing or wrong stops the
 * server with a message naming the volume and the reason; with many, only
 * that export is refused. Once every export is unlocked, the secrets given
 * are dropped: the volumes hold their DEKs (and, for the key watch, their
 * own copies of the credentials). 0 or -1 (logged). */
static int
unlock_exports (bool rbd)
{
  bool all = true;

  if (!server.multi) {
    if (after_fork_only (&exports[0]) == rbd && export_unlock (&exports[0]) < 0)
      return -1;
  } else if (!server.lazy)
    unlock_all (rbd);
  for (size_t i = 0; i < nexports; i++)
    all &= exports[i].vol != NULL;
  if (all)
    config_drop_secrets ();
  return 0;
}

/* Unlock before nbdkit listens (RBD volumes: in after_fork, before nbdkit
 * takes clients). */
static int
cryptvol_get_ready (void)
{
  if (server.audit_path) {
    if (cv_audit_open (server.audit_path, &audit) < 0)
      return -1;
    cv_vol_set_event_sink (audit_event, audit);
  }
  return unlock_exports (false);
}

/* The control socket's commands on an export: the volume's
 * (cv_ctl_vol_ops) once it is unlocked. Before, status says why it is not,
 * unlock tries to unlock it (now, whatever the retry interval), and the
 * other commands fail saying so. */
static struct cv_vol *
ctl_vol (void *arg)
{
  struct export *e = arg;
  struct cv_vol *v = export_vol (e);

  if (!v) {
    pthread_mutex_lock (&e->lock);
    cv_err ("export \"%s\" is not unlocked (%s); `unlock` tries again", e->name,
            e->why ? e->why : "unlock=lazy: not asked for yet");
    pthread_mutex_unlock (&e->lock);
  }
  return v;
}

static int
ctl_status (void *arg, const json_t *req, json_t *reply)
{
  struct export *e = arg;
  struct cv_vol *v = export_vol (e);

  if (v)
    return cv_ctl_vol_ops.status (v, req, reply);
  pthread_mutex_lock (&e->lock);
  json_object_set_new (reply, "state", json_string ("not-unlocked"));
  json_object_set_new (reply, "cause",
                       json_string (e->why ? e->why
                                           : "unlock=lazy: unlocked on its "
                                             "first client"));
  pthread_mutex_unlock (&e->lock);
  return 0;
}

static int
ctl_unlock (void *arg, const json_t *req, json_t *reply)
{
  struct export *e = arg;
  int rc = 0;

  pthread_mutex_lock (&e->lock);
  if (!e->vol && export_unlock (e) < 0)
    rc = -ENOKEY;
  pthread_mutex_unlock (&e->lock);
  if (rc < 0)
    return rc;
  return cv_ctl_vol_ops.unlock (e->vol, req, reply);
}

static const char *
ctl_uuid (void *arg)
{
  struct cv_vol *v = export_vol (arg);

  return v ? cv_vol_uuid (v) : NULL;
}

#define CTL_FORWARD(op)                                                        \
  static int ctl_##op (void *arg, const json_t *req, json_t *reply)            \
  {                                                                            \
    struct cv_vol *v = ctl_vol (arg);                                          \
    return v ? cv_ctl_vol_ops.op (v, req, reply) : -ENOKEY;                    \
  }
CTL_FORWARD (check)
CTL_FORWARD (lock)
CTL_FORWARD (reload)
CTL_FORWARD (rotate)
CTL_FORWARD (rotate_pause)
CTL_FORWARD (rotate_resume)
CTL_FORWARD (rotate_rate)
CTL_FORWARD (commit_header)

static const struct cv_ctl_ops ctl_ops = {
  .status = ctl_status,
  .check = ctl_check,
  .lock = ctl_lock,
  .unlock = ctl_unlock,
  .reload = ctl_reload,
  .rotate = ctl_rotate,
  .rotate_pause = ctl_rotate_pause,
  .rotate_resume = ctl_rotate_resume,
  .rotate_rate = ctl_rotate_rate,
  .commit_header = ctl_commit_header,
  .uuid = ctl_uuid,
};

/* One control socket for every export. 0 or -1 (logged). */
static int
control_start (void)
{
  struct cv_ctl_opts co = { .path = server.control_path,
                            .group = server.control_gid,
                            .nexports = nexports,
                            .ops = &ctl_ops,
                            .audit = audit };

  if (!(ctl_exports = calloc (nexports, sizeof *ctl_exports))) {
    nbdkit_error ("out of memory");
    return -1;
  }
  for (size_t i = 0; i < nexports; i++)
    ctl_exports[i] = (struct cv_ctl_export){ .name = exports[i].name,
                                             .volume = exports[i].p.path,
                                             .arg = &exports[i] };
  co.exports = ctl_exports;
  return cv_ctl_start (&co, &ctl) < 0 ? -1 : 0;
}

/* Threads start here, after nbdkit forked into the background. */
static int
cryptvol_after_fork (void)
{
  bool watch = false;

  if (cv_key_relock_all () < 0)
    return -1;
  for (size_t i = 0; i < nexports; i++) {
    watch |= exports[i].p.watch.interval_s > 0;
    if (exports[i].vol && export_start (&exports[i]) < 0)
      return -1;
  }
  /* From here an unlock starts the export's threads itself. */
  forked = true;
  if (unlock_exports (true) < 0)
    return -1;
  if (watch && cv_watch_start () < 0)
    return -1;
  return server.control_path ? control_start () : 0;
}

/* An export name from a client, fit for a log line: printable ASCII, at
 * most 64 bytes shown. */
static void
printable (const char *name, char *out, size_t n)
{
  size_t i = 0;

  for (; name[i] && i < 64 && i + 1 < n; i++)
    out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
  out[i] = '\0';
}

static struct export *
find_export (const char *name)
{
  for (size_t i = 0; i < nexports; i++)
    if (strcmp (exports[i].name, name) == 0)
      return &exports[i];
  return NULL;
}

/* A connection is to one export: the one a single-volume server serves
 * whatever name is asked (as it always has), or the one named. An export
 * not unlocked yet is unlocked here (unlock=lazy, or a retry of one that
 * failed, at most every RETRY_S seconds). */
static void *
cryptvol_open (int conn_readonly)
{
  const char *name = server.multi ? nbdkit_export_name () : "";
  struct export *e;
  char shown[72];

  if (!name)
    return NULL;
  if (!(e = find_export (name))) {
    printable (name, shown, sizeof shown);
    nbdkit_error ("no export \"%s\" here: `nbdinfo --list URI` lists the "
                  "exports",
                  shown);
    return NULL;
  }
  if (export_vol (e))
    return e;
  pthread_mutex_lock (&e->lock);
  if (!e->vol && (!e->why || now_s () - e->tried >= RETRY_S))
    export_unlock (e);
  if (!e->vol)
    nbdkit_error ("export \"%s\" is not unlocked: %s", e->name,
                  e->why ? e->why : "unknown reason");
  pthread_mutex_unlock (&e->lock);
  return export_vol (e) ? e : NULL;
}

/* The exports a client may list: each by name (a single-volume server has
 * the one default export, ""). */
static int
cryptvol_list_exports (int readonly, int is_tls, struct nbdkit_exports *list)
{
  if (!server.multi)
    return nbdkit_use_default_export (list);
  for (size_t i = 0; i < nexports; i++)
    if (nbdkit_add_export (list, exports[i].name, NULL) == -1)
      return -1;
  return 0;
}

/* The empty name picks the one export there is; with several it is refused
 * (a client that names none must not get some customer's volume). */
static const char *
cryptvol_default_export (int readonly, int is_tls)
{
  if (!server.multi)
    return "";
  return nexports == 1 ? exports[0].name : NULL;
}

static struct cv_vol *
vol_of (void *handle)
{
  return ((struct export *) handle)->vol;
}

static int64_t
cryptvol_get_size (void *handle)
{
  return (int64_t) cv_vol_size (vol_of (handle));
}

static int
cryptvol_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  unsigned ss = cv_vol_sector_size (vol_of (handle));

  /* Any request is served (edges are read-modify-written); whole encryption
   * sectors avoid that cost. */
  *minimum = 1;
  *preferred = ss > 4096 ? ss : 4096;
  *maximum = MAX_REQUEST;
  return 0;
}

static int
cryptvol_can_write (void *handle)
{
  return !((struct export *) handle)->p.readonly;
}

static int
cryptvol_can_flush (void *handle)
{
  return 1;
}

static int
cryptvol_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

/* One backing file: a flush on any connection flushes what all wrote. */
static int
cryptvol_can_multi_conn (void *handle)
{
  return 1;
}

static int
cryptvol_can_zero (void *handle)
{
  return 1;
}

/* Advertised so that clients asking for a fast zero learn at once that it is
 * not faster than writing (zeros must be encrypted like any data). */
static int
cryptvol_can_fast_zero (void *handle)
{
  return 1;
}

/* Turn a -errno from the library into nbdkit's convention. */
static int
fail (int rc)
{
  nbdkit_set_error (-rc);
  return -1;
}

static int
cryptvol_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  int rc = cv_vol_pread (vol_of (handle), buf, count, offset);
  return rc < 0 ? fail (rc) : 0;
}

static int
cryptvol_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
                 uint32_t flags)
{
  int rc = cv_vol_pwrite (vol_of (handle), buf, count, offset,
                          flags & NBDKIT_FLAG_FUA);
  return rc < 0 ? fail (rc) : 0;
}

static int
cryptvol_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    return fail (-ENOTSUP);
  int rc
      = cv_vol_zero (vol_of (handle), count, offset, flags & NBDKIT_FLAG_FUA);
  return rc < 0 ? fail (rc) : 0;
}

static int
cryptvol_flush (void *handle, uint32_t flags)
{
  int rc = cv_vol_flush (vol_of (handle));
  return rc < 0 ? fail (rc) : 0;
}

static struct nbdkit_plugin plugin = {
  .name = "cryptvol",
  .longname = "cryptvol AES-256-XTS encrypted volume",
  .version = CV_VERSION,
  .load = cryptvol_load,
  .unload = cryptvol_unload,
  .config = cryptvol_config,
  .config_complete = cryptvol_config_complete,
  .config_help = cryptvol_config_help,
  .magic_config_key = "volume",
  .get_ready = cryptvol_get_ready,
  .after_fork = cryptvol_after_fork,
  .list_exports = cryptvol_list_exports,
  .default_export = cryptvol_default_export,
  .open = cryptvol_open,
  .get_size = cryptvol_get_size,
  .block_size = cryptvol_block_size,
  .can_write = cryptvol_can_write,
  .can_flush = cryptvol_can_flush,
  .can_fua = cryptvol_can_fua,
  .can_multi_conn = cryptvol_can_multi_conn,
  .can_zero = cryptvol_can_zero,
  .can_fast_zero = cryptvol_can_fast_zero,
  .pread = cryptvol_pread,
  .pwrite = cryptvol_pwrite,
  .zero = cryptvol_zero,
  .flush = cryptvol_flush,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)

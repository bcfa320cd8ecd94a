/* nbdkit-cryptvol-plugin: nbdkit glue only. The volume, its header, keys and
 * data path live in libcryptvol (lib/); this file turns nbdkit parameters into
 * cv_vol_opts, routes log messages to nbdkit, and maps callbacks to
 * cv_vol_*. See doc/nbdkit-cryptvol-plugin.pod for every parameter. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "common/log.h"
#include "common/secfile.h"
#include "common/version.h"
#include "crypto/secmem.h"
#include "ctl/audit.h"
#include "ctl/ctl.h"
#include "keys/keys.h"
#include "keys/kms-grants.h"
#include "vol/volume.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#define MAX_REQUEST (32 * 1024 * 1024)

static const char *volume_path;
static const char *header_path;
static bool direct;
static bool readonly;
static enum cv_io_kind io_kind;     /* io=; CV_IO_AUTO */
static enum cv_xts_impl xts_impl;   /* xts-engine=; CV_XTS_AUTO */
static enum cv_read_path read_path; /* read-path=; CV_READ_AUTO */
static struct cv_creds creds = { .pbkdf = CV_PBKDF_DEFAULT };
static struct cv_wrap_sel wraps = CV_WRAP_SEL_ALL;
static struct cv_vol *vol;
static struct cv_watch_opts watch = CV_WATCH_OPTS_DEFAULT;
static char *control_path, *audit_path; /* absolute: nbdkit may chdir / */
static char *keyfile;                   /* creds.keyfile, absolute too */
static char *grant_token;               /* creds.kms_grant_token */
static gid_t control_gid = (gid_t) -1;
static struct cv_ctl *ctl;
static struct cv_audit *audit;
static bool rotate_manual; /* rotate=manual: only the control socket starts */
static double rotate_rate; /* rotate-rate=: MiB/s, 0 unlimited */

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

static void
cryptvol_unload (void)
{
  cv_ctl_stop (ctl);
  cv_watch_stop ();
  if (vol)
    cv_vol_rotate_stop (vol); /* after its step; the next start continues */
  cv_vol_close (vol);
  cv_vol_set_event_sink (NULL, NULL);
  cv_audit_close (audit);
  free (control_path);
  free (audit_path);
  free (keyfile);
  free (grant_token);
  cv_key_free (creds.passphrase);
  cv_key_free (creds.pin);
  cv_keys_cleanup ();
}

/* Warn about a secret file others can read before nbdkit reads it: the file
 * after +, or the file open on fd N for -N. */
static void
check_secret_file (const char *key, const char *value)
{
  char what[64];
  char *end;
  long fd;

  snprintf (what, sizeof what, "%s= file", key);
  if (value[0] == '+')
    cv_secret_path_check (value + 1, what);
  else if (value[0] == '-' && value[1]) {
    errno = 0;
    fd = strtol (value + 1, &end, 10);
    if (!errno && !*end && fd >= 0 && fd <= INT_MAX)
      cv_secret_fd_check ((int) fd, what, NULL);
  }
}

/* Read a secret with nbdkit's password conventions (+FILE, -FD, -), refusing
 * one written on the command line, where ps(1) and shell history would show
 * it. */
static int
read_secret (const char *key, const char *value, struct cv_key **out)
{
  char *s = NULL;
  int rc;

  if (value[0] != '+' && value[0] != '-') {
    nbdkit_error ("%s= must not be given on the command line; use %s=+FILE, "
                  "%s=-FD or %s=- (prompt)",
                  key, key, key, key);
    return -1;
  }
  if (*out) {
    nbdkit_error ("%s= given twice", key);
    return -1;
  }
  check_secret_file (key, value);
  if (nbdkit_read_password (value, &s) == -1)
    return -1;
  rc = cv_key_from (s, strlen (s), out);
  cv_wipe (s, strlen (s));
  free (s);
  if (rc < 0) {
    nbdkit_error ("%s: out of memory", key);
    return -1;
  }
  return 0;
}

/* kms-grant-token=: read as nbdkit reads passwords (+FILE, -FD, - or the
 * token itself), a trailing newline dropped, and checked. 0 or -1
 * (reported). */
static int
read_grant_token (const char *value)
{
  char *s = NULL;
  size_t n;

  if (grant_token) {
    nbdkit_error ("kms-grant-token= given twice");
    return -1;
  }
  check_secret_file ("kms-grant-token", value);
  if (nbdkit_read_password (value, &s) == -1)
    return -1;
  n = strlen (s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  if (cv_kms_grant_token_check ("kms-grant-token=", s) < 0) {
    free (s);
    return -1;
  }
  creds.kms_grant_token = grant_token = s;
  return 0;
}

/* The key watch's parameters: 1 if key is not one of them, else 0 or -1
 * (reported). */
static int
watch_config (const char *key, const char *value)
{
  int r;

  if (strcmp (key, "key-check") == 0)
    return nbdkit_parse_unsigned (key, value, &watch.interval_s);
  if (strcmp (key, "key-grace") == 0)
    return nbdkit_parse_unsigned (key, value, &watch.grace_s);
  if (strcmp (key, "on-unreachable") == 0) {
    if (strcmp (value, "fail") != 0 && strcmp (value, "serve") != 0) {
      nbdkit_error ("on-unreachable=%s: expected fail or serve", value);
      return -1;
    }
    watch.serve_unreachable = strcmp (value, "serve") == 0;
    return 0;
  }
  if (strcmp (key, "resume") == 0) {
    if ((r = nbdkit_parse_bool (value)) == -1)
      return -1;
    watch.resume = r;
    return 0;
  }
  return 1;
}

/* The control socket's and the audit log's parameters: 1 if key is not
 * one of them, else 0 or -1 (reported). */
static int
control_config (const char *key, const char *value)
{
  char **path = strcmp (key, "control") == 0     ? &control_path
                : strcmp (key, "audit-log") == 0 ? &audit_path
                                                 : NULL;

  if (path) {
    free (*path);
    return (*path = nbdkit_absolute_path (value)) ? 0 : -1;
  }
  if (strcmp (key, "control-group") != 0)
    return 1;
  struct group *g = getgrnam (value);
  char *end;
  unsigned long id = strtoul (value, &end, 10);
  if (g)
    control_gid = g->gr_gid;
  else if (*value && !*end && id < (gid_t) -1)
    control_gid = (gid_t) id;
  else {
    nbdkit_error ("control-group=%s: no such group", value);
    return -1;
  }
  return 0;
}

/* The online DEK rotation's parameters: 1 if key is not one of them, else
 * 0 or -1 (reported). */
static int
rotate_config (const char *key, const char *value)
{
  char *end;

  if (strcmp (key, "rotate") == 0) {
    if (strcmp (value, "auto") != 0 && strcmp (value, "manual") != 0) {
      nbdkit_error ("rotate=%s: expected auto or manual", value);
      return -1;
    }
    rotate_manual = strcmp (value, "manual") == 0;
    return 0;
  }
  if (strcmp (key, "rotate-rate") != 0)
    return 1;
  errno = 0;
  rotate_rate = strtod (value, &end);
  if (errno || end == value || *end || !isfinite (rotate_rate)
      || rotate_rate < 0) {
    nbdkit_error ("rotate-rate=%s: expected MiB/s, a number >= 0 (0: "
                  "unlimited)",
                  value);
    return -1;
  }
  return 0;
}

/* The index of value among the n names of parameter key (in the order of
 * the enum it sets), or -1 with an error naming them. */
static int
choice (const char *key, const char *value, const char *const *names, int n)
{
  char expected[128] = "";

  for (int i = 0; i < n; i++) {
    if (strcmp (value, names[i]) == 0)
      return i;
    snprintf (expected + strlen (expected), sizeof expected - strlen (expected),
              "%s%s",
              i == 0       ? ""
              : i == n - 1 ? " or "
                           : ", ",
              names[i]);
  }
  nbdkit_error ("%s=%s: expected %s", key, value, expected);
  return -1;
}

static int
cryptvol_config (const char *key, const char *value)
{
  int r;

  if ((r = watch_config (key, value)) != 1
      || (r = control_config (key, value)) != 1
      || (r = rotate_config (key, value)) != 1)
    return r;
  if (strcmp (key, "volume") == 0)
    volume_path = value;
  else if (strcmp (key, "header") == 0)
    header_path = value;
  else if (strcmp (key, "keyfile") == 0) {
    /* Absolute: the key watch, unlock and an adopted rotation read it
     * again after nbdkit has changed directory to /. */
    free (keyfile);
    if (!(keyfile = nbdkit_absolute_path (value)))
      return -1;
    creds.keyfile = keyfile;
  } else if (strcmp (key, "wrap") == 0)
    return cv_wrap_sel_add (&wraps, value) < 0 ? -1 : 0;
  else if (strcmp (key, "passphrase") == 0)
    return read_secret (key, value, &creds.passphrase);
  else if (strcmp (key, "pin") == 0)
    return read_secret (key, value, &creds.pin);
  else if (strcmp (key, "pkcs11-module") == 0)
    creds.pkcs11_module = value;
  else if (strcmp (key, "kms-endpoint") == 0)
    creds.kms_endpoint = value;
  else if (strcmp (key, "kms-region") == 0)
    creds.kms_region = value;
  else if (strcmp (key, "ca-bundle") == 0)
    creds.ca_bundle = value;
  else if (strcmp (key, "kms-grant-token") == 0)
    return read_grant_token (value);
  else if (strcmp (key, "allow-costly-kdf") == 0) {
    if ((r = nbdkit_parse_bool (value)) == -1)
      return -1;
    creds.allow_costly_kdf = r;
  } else if (strcmp (key, "direct") == 0) {
    if ((r = nbdkit_parse_bool (value)) == -1)
      return -1;
    direct = r;
  } else if (strcmp (key, "io") == 0) {
    static const char *const names[] = { "auto", "io_uring", "posix" };
    if ((r = choice (key, value, names, 3)) < 0)
      return -1;
    io_kind = (enum cv_io_kind) r;
  } else if (strcmp (key, "xts-engine") == 0) {
    static const char *const names[] = { "auto", "openssl", "gcrypt" };
    if ((r = choice (key, value, names, 3)) < 0)
      return -1;
    xts_impl = (enum cv_xts_impl) r;
  } else if (strcmp (key, "read-path") == 0) {
    static const char *const names[] = { "auto", "map", "pread" };
    if ((r = choice (key, value, names, 3)) < 0)
      return -1;
    read_path = (enum cv_read_path) r;
  } else if (strcmp (key, "readonly") == 0) {
    if ((r = nbdkit_parse_bool (value)) == -1)
      return -1;
    readonly = r;
  } else {
    nbdkit_error ("unknown parameter '%s' (see nbdkit-cryptvol-plugin(1))",
                  key);
    return -1;
  }
  return 0;
}

static int
cryptvol_config_complete (void)
{
  if (!volume_path) {
    nbdkit_error ("no volume given: nbdkit cryptvol VOLUME keyfile=FILE ...");
    return -1;
  }
  return 0;
}

#define cryptvol_config_help                                                   \
  "[volume=]PATH        Volume: a file or block device (required).\n"          \
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

/* The volume's key events into the audit log. */
static void
audit_event (void *arg, struct cv_vol *v, json_t *ev)
{
  cv_audit_write (arg, volume_path, cv_vol_uuid (v), ev);
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
readonly_if_unwritable (void)
{
  const char *path = volume_path;

  if (readonly)
    return;
  if (writable (volume_path) && (!header_path || writable (path = header_path)))
    return;
  nbdkit_error ("warning: %s cannot be written (%s): serving it read-only; "
                "readonly=true says so and silences this",
                path, strerror (errno));
  readonly = true;
}

/* Unlock once, before nbdkit listens: a missing or wrong key stops the server
 * here with a message naming the volume and the reason. */
static int
cryptvol_get_ready (void)
{
  readonly_if_unwritable ();
  struct cv_vol_opts o = {
    .path = volume_path,
    .header_path = header_path,
    .readonly = readonly,
    .direct = direct,
    .creds = &creds,
    .wraps = &wraps,
    .io = io_kind,
    .xts_impl = xts_impl,
    .read_path = read_path,
    .keep_creds = watch.interval_s > 0 || control_path,
  };

  if (audit_path) {
    if (cv_audit_open (audit_path, &audit) < 0)
      return -1;
    cv_vol_set_event_sink (audit_event, audit);
  }
  if (cv_vol_open (&o, &vol) < 0)
    return -1;
  /* The volume holds its DEK (and, for the key watch, its own copy of the
   * credentials): these are not needed any more. */
  cv_key_free (creds.passphrase);
  cv_key_free (creds.pin);
  creds.passphrase = creds.pin = NULL;
  nbdkit_debug ("volume %s (uuid %s) unlocked, %llu bytes, %u-byte sectors",
                volume_path, cv_vol_uuid (vol),
                (unsigned long long) cv_vol_size (vol),
                cv_vol_sector_size (vol));
  return 0;
}

/* A volume opened mid-rotation continues rotating in the background
 * (rotate=auto), unless it is served read-only. A rotation that cannot
 * start (the library said why) is not fatal: the volume is served as it
 * is, and `rotate` on the control socket can start it later. */
static void
continue_rotation (void)
{
  uint64_t done;

  if (!cv_vol_rotating (vol, &done))
    return;
  if (readonly) {
    nbdkit_debug ("volume %s is mid-rotation (%llu bytes done); read-only: "
                  "not rotating",
                  volume_path, (unsigned long long) done);
    return;
  }
  if (rotate_manual) {
    nbdkit_debug ("volume %s is mid-rotation (%llu bytes done); "
                  "rotate=manual: waiting for the control socket's rotate",
                  volume_path, (unsigned long long) done);
    return;
  }
  if (cv_vol_rotate_start (vol, rotate_rate) == 0)
    nbdkit_debug ("volume %s: continuing the DEK rotation at %llu bytes",
                  volume_path, (unsigned long long) done);
}

/* Threads start here, after nbdkit forked into the background. */
static int
cryptvol_after_fork (void)
{
  struct cv_ctl_opts co = { .path = control_path,
                            .group = control_gid,
                            .volume = volume_path,
                            .uuid = cv_vol_uuid (vol),
                            .ops = &cv_ctl_vol_ops,
                            .arg = vol,
                            .audit = audit };

  if (cv_vol_after_fork (vol) < 0 || cv_watch_add (vol, &watch) < 0
      || (watch.interval_s > 0 && cv_watch_start () < 0)
      || (control_path && cv_ctl_start (&co, &ctl) < 0))
    return -1;
  continue_rotation ();
  return 0;
}

static void *
cryptvol_open (int conn_readonly)
{
  return vol; /* all connections share the volume; state is per thread */
}

static int64_t
cryptvol_get_size (void *handle)
{
  return (int64_t) cv_vol_size (vol);
}

static int
cryptvol_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                     uint32_t *maximum)
{
  /* Any request is served (edges are read-modify-written); whole encryption
   * sectors avoid that cost. */
  *minimum = 1;
  *preferred
      = cv_vol_sector_size (vol) > 4096 ? cv_vol_sector_size (vol) : 4096;
  *maximum = MAX_REQUEST;
  return 0;
}

static int
cryptvol_can_write (void *handle)
{
  return !readonly;
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
  int rc = cv_vol_pread (vol, buf, count, offset);
  return rc < 0 ? fail (rc) : 0;
}

static int
cryptvol_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
                 uint32_t flags)
{
  int rc = cv_vol_pwrite (vol, buf, count, offset, flags & NBDKIT_FLAG_FUA);
  return rc < 0 ? fail (rc) : 0;
}

static int
cryptvol_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    return fail (-ENOTSUP);
  int rc = cv_vol_zero (vol, count, offset, flags & NBDKIT_FLAG_FUA);
  return rc < 0 ? fail (rc) : 0;
}

static int
cryptvol_flush (void *handle, uint32_t flags)
{
  int rc = cv_vol_flush (vol);
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

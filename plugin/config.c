/* The plugin's parameters: the per-volume ones (on the command line they are
 * the defaults of every export), the server's own, volumes=FILE (a stanza
 * per export, lib/common/stanza.h) and dir=DIR (an export per volume file).
 * See doc/nbdkit-cryptvol-plugin.pod for every parameter. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/secfile.h"
#include "common/stanza.h"
#include "crypto/secmem.h"
#include "keys/kms-grants.h"
#include "plugin.h"

#define NAME_MAX_BYTES 255          /* an export name */
#define VOLUMES_FILE_MAX (16 << 20) /* bytes */

struct server_params server
    = { .unlock_parallel = 32, .control_gid = (gid_t) -1 };
struct export *exports;
size_t nexports;

static struct vol_params defaults = {
  .creds = { .pbkdf = CV_PBKDF_DEFAULT },
  .wraps = CV_WRAP_SEL_ALL,
  .watch = CV_WATCH_OPTS_DEFAULT,
};
static char *volumes_file, *volumes_dir;
/* Strings the parameters point to, freed at unload. */
static char **kept;
static size_t nkept;

/* Keep s (malloc'd) until unload; NULL (reported) when s is NULL or out of
 * memory. */
static const char *
keep (char *s)
{
  char **k;

  if (!s)
    return NULL;
  if (!(k = realloc (kept, (nkept + 1) * sizeof *kept))) {
    free (s);
    nbdkit_error ("out of memory");
    return NULL;
  }
  kept = k;
  return kept[nkept++] = s;
}

/* path made absolute: relative to dir (a stanza's file's directory), or to
 * the working directory when dir is NULL. Kept; NULL (reported). */
static const char *
absolute (const char *dir, const char *path)
{
  char *s;

  if (cv_rbd_is_path (path)) /* an image in a cluster, not a file */
    return keep (strdup (path));
  if (!dir || path[0] == '/')
    return keep (nbdkit_absolute_path (path));
  if (asprintf (&s, "%s/%s", dir, path) < 0) {
    nbdkit_error ("out of memory");
    return NULL;
  }
  return keep (s);
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

/* Read a password-like value as nbdkit does (+FILE, -FD, -, or the value
 * itself) into *s (free it), warning first when its file is readable by
 * others; in a volumes file (dir set) +FILE is relative to dir. 0 or -1
 * (reported). */
static int
read_password (const char *key, const char *value, const char *dir, char **s)
{
  CLEANUP_FREE char *file = NULL;

  if (dir && value[0] == '+' && value[1] != '/') {
    if (asprintf (&file, "+%s/%s", dir, value + 1) < 0) {
      nbdkit_error ("out of memory");
      return -1;
    }
    value = file;
  }
  check_secret_file (key, value);
  return nbdkit_read_password (value, s);
}

/* Read a secret with nbdkit's password conventions, refusing one written on
 * the command line, where ps(1) and shell history would show it; in a
 * volumes file only +FILE and -FD: no prompt for each of many volumes. cur
 * is the value so far (the defaults', which a stanza may replace once). */
static int
read_secret (const char *key, const char *value, const char *dir,
             struct cv_key *cur, struct cv_key **out)
{
  char *s = NULL;
  int rc;

  if (value[0] != '+' && value[0] != '-') {
    nbdkit_error ("%s= must not be given %s; use %s=+FILE, %s=-FD%s", key,
                  dir ? "in the volumes file itself" : "on the command line",
                  key, key, dir ? "" : " or - (prompt)");
    return -1;
  }
  if (dir && strcmp (value, "-") == 0) {
    nbdkit_error ("%s = -: a volumes file cannot prompt for each volume; use "
                  "%s = +FILE or -FD",
                  key, key);
    return -1;
  }
  if (cur
      && cur
             != (strcmp (key, "pin") == 0 ? defaults.creds.pin
                                          : defaults.creds.passphrase)) {
    nbdkit_error ("%s= given twice", key);
    return -1;
  }
  if (read_password (key, value, dir, &s) == -1)
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
read_grant_token (const char *value, const char *dir, struct cv_creds *c)
{
  char *s = NULL;
  size_t n;

  if (c->kms_grant_token
      && c->kms_grant_token != defaults.creds.kms_grant_token) {
    nbdkit_error ("kms-grant-token= given twice");
    return -1;
  }
  if (read_password ("kms-grant-token", value, dir, &s) == -1)
    return -1;
  n = strlen (s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  if (cv_kms_grant_token_check ("kms-grant-token=", s) < 0) {
    free (s);
    return -1;
  }
  return (c->kms_grant_token = keep (s)) ? 0 : -1;
}

/* The key watch's parameters: 1 if key is not one of them, else 0 or -1
 * (reported). */
static int
watch_param (struct cv_watch_opts *w, const char *key, const char *value)
{
  int r;

  if (strcmp (key, "key-check") == 0)
    return nbdkit_parse_unsigned (key, value, &w->interval_s);
  if (strcmp (key, "key-grace") == 0)
    return nbdkit_parse_unsigned (key, value, &w->grace_s);
  if (strcmp (key, "on-unreachable") == 0) {
    if (strcmp (value, "fail") != 0 && strcmp (value, "serve") != 0) {
      nbdkit_error ("on-unreachable=%s: expected fail or serve", value);
      return -1;
    }
    w->serve_unreachable = strcmp (value, "serve") == 0;
    return 0;
  }
  if (strcmp (key, "resume") == 0) {
    if ((r = nbdkit_parse_bool (value)) == -1)
      return -1;
    w->resume = r;
    return 0;
  }
  return 1;
}

/* The online DEK rotation's parameters: 1 if key is not one of them, else
 * 0 or -1 (reported). */
static int
rotate_param (struct vol_params *p, const char *key, const char *value)
{
  char *end;

  if (strcmp (key, "rotate") == 0) {
    if (strcmp (value, "auto") != 0 && strcmp (value, "manual") != 0) {
      nbdkit_error ("rotate=%s: expected auto or manual", value);
      return -1;
    }
    p->rotate_manual = strcmp (value, "manual") == 0;
    return 0;
  }
  if (strcmp (key, "rotate-rate") != 0)
    return 1;
  errno = 0;
  p->rotate_rate = strtod (value, &end);
  if (errno || end == value || *end || !isfinite (p->rotate_rate)
      || p->rotate_rate < 0) {
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

/* A boolean parameter into *b. 0 or -1 (reported). */
static int
flag (const char *value, bool *b)
{
  int r = nbdkit_parse_bool (value);

  if (r == -1)
    return -1;
  *b = r;
  return 0;
}

/* A per-volume parameter (except volume=) into p; paths relative to dir
 * (NULL: the working directory). 1 if key is not one of them, else 0 or -1
 * (reported). */
static int
vol_param (struct vol_params *p, const char *key, const char *value,
           const char *dir)
{
  struct cv_creds *c = &p->creds;
  int r;

  if ((r = watch_param (&p->watch, key, value)) != 1
      || (r = rotate_param (p, key, value)) != 1)
    return r;
  if (strcmp (key, "header") == 0)
    return (p->header = absolute (dir, value)) ? 0 : -1;
  if (strcmp (key, "keyfile") == 0)
    return (c->keyfile = absolute (dir, value)) ? 0 : -1;
  if (strcmp (key, "pkcs11-module") == 0) /* a bare name: dlopen's search */
    return (c->pkcs11_module = strchr (value, '/') ? absolute (dir, value)
                                                   : keep (strdup (value)))
               ? 0
               : -1;
  if (strcmp (key, "ca-bundle") == 0)
    return (c->ca_bundle = absolute (dir, value)) ? 0 : -1;
  if (strcmp (key, "kms-endpoint") == 0)
    return (c->kms_endpoint = keep (strdup (value))) ? 0 : -1;
  if (strcmp (key, "kms-region") == 0)
    return (c->kms_region = keep (strdup (value))) ? 0 : -1;
  if (strcmp (key, "wrap") == 0) {
    if (!p->wraps_own && dir)
      p->wraps = (struct cv_wrap_sel) CV_WRAP_SEL_ALL;
    p->wraps_own = true;
    return cv_wrap_sel_add (&p->wraps, value) < 0 ? -1 : 0;
  }
  if (strcmp (key, "passphrase") == 0)
    return read_secret (key, value, dir, c->passphrase, &c->passphrase);
  if (strcmp (key, "pin") == 0)
    return read_secret (key, value, dir, c->pin, &c->pin);
  if (strcmp (key, "kms-grant-token") == 0)
    return read_grant_token (value, dir, c);
  if (strcmp (key, "allow-costly-kdf") == 0)
    return flag (value, &c->allow_costly_kdf);
  if (strcmp (key, "direct") == 0)
    return flag (value, &p->direct);
  if (strcmp (key, "readonly") == 0)
    return flag (value, &p->readonly);
  if (strcmp (key, "ceph-conf") == 0)
    return (p->rbd.conf = absolute (dir, value)) ? 0 : -1;
  if (strcmp (key, "ceph-keyring") == 0)
    return (p->rbd.keyring = absolute (dir, value)) ? 0 : -1;
  if (strcmp (key, "ceph-id") == 0)
    return (p->rbd.id = keep (strdup (value))) ? 0 : -1;
  if (strcmp (key, "ceph-timeout") == 0)
    return nbdkit_parse_unsigned (key, value, &p->rbd.timeout_s) < 0 ? -1 : 0;
  if (strcmp (key, "takeover") == 0)
    return flag (value, &p->rbd.takeover);
  if (strcmp (key, "read-path") == 0) {
    static const char *const names[] = { "auto", "map", "pread" };
    if ((r = choice (key, value, names, 3)) < 0)
      return -1;
    p->read_path = (enum cv_read_path) r;
    return 0;
  }
  return 1;
}

/* The server's own parameters: 1 if key is not one of them, else 0 or -1
 * (reported). */
static int
server_param (const char *key, const char *value)
{
  char **path = strcmp (key, "control") == 0     ? &server.control_path
                : strcmp (key, "audit-log") == 0 ? &server.audit_path
                : strcmp (key, "volumes") == 0   ? &volumes_file
                : strcmp (key, "dir") == 0       ? &volumes_dir
                                                 : NULL;
  int r;

  if (path) {
    if (*path) {
      nbdkit_error ("%s= given twice", key);
      return -1;
    }
    return (*path = nbdkit_absolute_path (value)) ? 0 : -1;
  }
  if (strcmp (key, "unlock") == 0) {
    static const char *const names[] = { "eager", "lazy" };
    if ((r = choice (key, value, names, 2)) < 0)
      return -1;
    server.lazy = r == 1;
    return 0;
  }
  if (strcmp (key, "unlock-parallel") == 0) {
    if (nbdkit_parse_unsigned (key, value, &server.unlock_parallel) == -1)
      return -1;
    if (server.unlock_parallel < 1 || server.unlock_parallel > 1024) {
      nbdkit_error ("unlock-parallel=%s: expected 1 to 1024 unlocks at once",
                    value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "io") == 0) {
    static const char *const names[] = { "auto", "io_uring", "posix" };
    if ((r = choice (key, value, names, 3)) < 0)
      return -1;
    server.io_kind = (enum cv_io_kind) r;
    return 0;
  }
  if (strcmp (key, "xts-engine") == 0) {
    static const char *const names[] = { "auto", "openssl", "gcrypt" };
    if ((r = choice (key, value, names, 3)) < 0)
      return -1;
    server.xts_impl = (enum cv_xts_impl) r;
    return 0;
  }
  if (strcmp (key, "control-group") != 0)
    return 1;
  struct group *g = getgrnam (value);
  char *end;
  unsigned long id = strtoul (value, &end, 10);
  if (g)
    server.control_gid = g->gr_gid;
  else if (*value && !*end && id < (gid_t) -1)
    server.control_gid = (gid_t) id;
  else {
    nbdkit_error ("control-group=%s: no such group", value);
    return -1;
  }
  return 0;
}

/* Whether key is one of server_param's. */
static bool
server_key (const char *key)
{
  static const char *const keys[]
      = { "control", "control-group",   "audit-log", "volumes",   "dir",
          "unlock",  "unlock-parallel", "io",        "xts-engine" };

  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    if (strcmp (key, keys[i]) == 0)
      return true;
  return false;
}

int
config_param (const char *key, const char *value)
{
  int r;

  if ((r = server_param (key, value)) != 1
      || (r = vol_param (&defaults, key, value, NULL)) != 1)
    return r;
  if (strcmp (key, "volume") == 0) {
    if (defaults.path) {
      nbdkit_error ("volume= given twice: one server serves one volume= or "
                    "many through volumes=FILE or dir=DIR");
      return -1;
    }
    return (defaults.path = absolute (NULL, value)) ? 0 : -1;
  }
  nbdkit_error ("unknown parameter '%s' (see nbdkit-cryptvol-plugin(1))", key);
  return -1;
}

/* Whether name may be an export's name: 1 to NAME_MAX_BYTES bytes of
 * letters, digits and ._-+:@=/, not starting with "." or "-" (it is logged,
 * named on command lines and in metrics labels). */
static bool
valid_name (const char *name)
{
  size_t n = strlen (name);

  if (n == 0 || n > NAME_MAX_BYTES || name[0] == '.' || name[0] == '-')
    return false;
  return strspn (name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "0123456789._-+:@=/")
         == n;
}

/* A new export named name, with the defaults' parameters. NULL (reported)
 * if the name is taken or out of memory. */
static struct export *
add_export (const char *name)
{
  struct export *e;

  for (size_t i = 0; i < nexports; i++)
    if (strcmp (exports[i].name, name) == 0) {
      nbdkit_error ("export \"%s\" defined twice", name);
      return NULL;
    }
  if (!(e = realloc (exports, (nexports + 1) * sizeof *exports))) {
    nbdkit_error ("out of memory");
    return NULL;
  }
  exports = e;
  e = &exports[nexports];
  *e = (struct export){ .p = defaults, .name = strdup (name) };
  e->p.wraps_own = false;
  if (!e->name) {
    nbdkit_error ("out of memory");
    return NULL;
  }
  pthread_mutex_init (&e->lock, NULL);
  nexports++;
  return e;
}

/* The parsing state of a volumes file. */
struct stanzas {
  const char *file, *dir;
  struct export *cur;
};

/* The stanza parser's callback: "[name]" makes an export, "key = value" is
 * a parameter of it. 0 or -1 (reported with the file and line). */
static int
stanza_entry (void *arg, unsigned line, const char *name, const char *key,
              const char *value)
{
  struct stanzas *st = arg;
  int r;

  if (!key) {
    if (!valid_name (name)) {
      nbdkit_error ("%s:%u: [%.64s]: an export name is 1 to %d letters, "
                    "digits and ._-+:@=/, not starting with . or -",
                    st->file, line, name, NAME_MAX_BYTES);
      return -1;
    }
    if (!(st->cur = add_export (name))) {
      nbdkit_error ("%s:%u: [%s]: see above", st->file, line, name);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "volume") == 0)
    r = (st->cur->p.path = absolute (st->dir, value)) ? 0 : -1;
  else if ((r = vol_param (&st->cur->p, key, value, st->dir)) == 1) {
    if (server_key (key))
      nbdkit_error ("%s:%u: %s is a parameter of the server, not of one "
                    "volume: give it on the nbdkit command line",
                    st->file, line, key);
    else
      nbdkit_error ("%s:%u: unknown parameter \"%s\" (see "
                    "nbdkit-cryptvol-plugin(1), \"MANY VOLUMES\")",
                    st->file, line, key);
    return -1;
  }
  if (r < 0)
    nbdkit_error ("%s:%u: in [%s]: %s = ... is wrong: see above", st->file,
                  line, name, key);
  return r;
}

/* The text of the file at path (a NUL after its *len bytes; free it). 0 or
 * -1 (reported). */
static int
read_text (const char *path, char **text, size_t *len)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  size_t got;

  if (fd < 0 || fstat (fd, &sb) < 0) {
    nbdkit_error ("volumes=%s: %s", path, strerror (errno));
    return -1;
  }
  if (!S_ISREG (sb.st_mode) || sb.st_size > VOLUMES_FILE_MAX) {
    nbdkit_error ("volumes=%s: not a regular file of at most %d MiB", path,
                  VOLUMES_FILE_MAX >> 20);
    return -1;
  }
  if (!(*text = malloc ((size_t) sb.st_size + 1))) {
    nbdkit_error ("out of memory");
    return -1;
  }
  int r = cv_read_all (fd, *text, (size_t) sb.st_size, &got);
  if (r < 0) {
    nbdkit_error ("volumes=%s: %s", path, strerror (-r));
    return -1;
  }
  (*text)[got] = '\0';
  *len = got;
  return 0;
}

/* volumes=FILE: an export per stanza. 0 or -1 (reported). */
static int
read_volumes_file (void)
{
  CLEANUP_FREE char *text = NULL, *dir = strdup (volumes_file);
  struct stanzas st = { .file = volumes_file };
  size_t len;

  if (!dir) {
    nbdkit_error ("out of memory");
    return -1;
  }
  *strrchr (dir, '/') = '\0'; /* absolute: has one */
  st.dir = dir[0] ? dir : "/";
  if (read_text (volumes_file, &text, &len) < 0)
    return -1;
  if (cv_stanza_parse (volumes_file, text, len, stanza_entry, &st) != 0)
    return -1;
  for (size_t i = 0; i < nexports; i++)
    if (!exports[i].p.path) {
      nbdkit_error ("%s: [%s] has no \"volume = PATH\"", volumes_file,
                    exports[i].name);
      return -1;
    }
  if (nexports == 0) {
    nbdkit_error ("%s defines no export: add a stanza \"[NAME]\" with "
                  "\"volume = PATH\"",
                  volumes_file);
    return -1;
  }
  return 0;
}

/* Whether DIR's entry name (at path) is a volume: not hidden, not a header
 * or config file, and a regular file or block device (symbolic links
 * followed). */
static bool
volume_entry (const char *name, const char *path)
{
  size_t n = strlen (name);
  struct stat sb;

  if (name[0] == '.' || (n > 4 && strcmp (name + n - 4, ".hdr") == 0)
      || (n > 5 && strcmp (name + n - 5, ".conf") == 0))
    return false;
  return stat (path, &sb) == 0
         && (S_ISREG (sb.st_mode) || S_ISBLK (sb.st_mode));
}

/* DIR's entry name as an export if it is a volume, DIR/NAME.hdr its
 * detached header if there is one. 0 or -1 (reported). */
static int
add_dir_entry (const char *name)
{
  CLEANUP_FREE char *path = NULL, *hdr = NULL;
  struct export *e;

  if (asprintf (&path, "%s/%s", volumes_dir, name) < 0
      || asprintf (&hdr, "%s.hdr", path) < 0) {
    nbdkit_error ("out of memory");
    return -1;
  }
  if (!volume_entry (name, path))
    return 0;
  if (!valid_name (name)) {
    nbdkit_error ("warning: %s: not served: an export name is 1 to %d "
                  "letters, digits and ._-+:@=/, not starting with . or -",
                  path, NAME_MAX_BYTES);
    return 0;
  }
  if (!(e = add_export (name)) || !(e->p.path = keep (STEAL (path))))
    return -1;
  if (access (hdr, F_OK) == 0 && !(e->p.header = keep (STEAL (hdr))))
    return -1;
  return 0;
}

/* dir=DIR: an export per volume file, named after it. 0 or -1 (reported). */
static int
read_volumes_dir (void)
{
  struct dirent **names;
  int n = scandir (volumes_dir, &names, NULL, alphasort), rc = 0;

  if (n < 0) {
    nbdkit_error ("dir=%s: %s", volumes_dir, strerror (errno));
    return -1;
  }
  for (int i = 0; i < n; i++) {
    if (rc == 0)
      rc = add_dir_entry (names[i]->d_name);
    free (names[i]);
  }
  free (names);
  if (rc == 0 && nexports == 0) {
    nbdkit_error ("dir=%s holds no volume (regular files or block devices "
                  "not named .* *.hdr *.conf)",
                  volumes_dir);
    rc = -1;
  }
  return rc;
}

/* A server of many volumes holds a few descriptors per volume, and an rbd:
 * volume a dozen more, its Ceph client's (3611 were measured for 300):
 * raise the soft limit to the hard one, and say so if even that is too
 * low. Too few would abort the process: librados cannot report running
 * out (lib/io/rbd.c refuses a volume that finds no room, as a last guard). */
static int
raise_nofile (void)
{
  struct rlimit rl;
  rlim_t need = 256;

  for (size_t i = 0; i < nexports; i++)
    need += 4 + (cv_rbd_is_path (exports[i].p.path) ? 16 : 0);
  if (getrlimit (RLIMIT_NOFILE, &rl) < 0)
    return 0;
  if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < need) {
    nbdkit_error ("%zu exports need about %llu file descriptors, but the "
                  "limit is %llu: raise it (ulimit -n, or LimitNOFILE= in "
                  "the service)",
                  nexports, (unsigned long long) need,
                  (unsigned long long) rl.rlim_cur);
    return -1;
  }
  return 0;
}

int
config_complete (void)
{
  int given = !!defaults.path + !!volumes_file + !!volumes_dir;

  if (given == 0) {
    nbdkit_error ("no volume given: nbdkit cryptvol VOLUME keyfile=FILE ..., "
                  "or volumes=FILE, or dir=DIR");
    return -1;
  }
  if (given > 1) {
    nbdkit_error ("give one of volume=, volumes=FILE and dir=DIR");
    return -1;
  }
  server.multi = !defaults.path;
  if (!server.multi) {
    struct export *e = add_export ("");
    if (!e)
      return -1;
    e->p.wraps_own = true;
    return 0;
  }
  if ((volumes_file ? read_volumes_file () : read_volumes_dir ()) < 0)
    return -1;
  return raise_nofile ();
}

void
config_drop_secrets (void)
{
  for (size_t i = 0; i < nexports; i++) {
    struct cv_creds *c = &exports[i].p.creds;
    if (c->passphrase != defaults.creds.passphrase)
      cv_key_free (c->passphrase);
    if (c->pin != defaults.creds.pin)
      cv_key_free (c->pin);
    c->passphrase = c->pin = NULL;
  }
  cv_key_free (defaults.creds.passphrase);
  cv_key_free (defaults.creds.pin);
  defaults.creds.passphrase = defaults.creds.pin = NULL;
}

void
config_free (void)
{
  config_drop_secrets ();
  for (size_t i = 0; i < nexports; i++) {
    free (exports[i].name);
    free (exports[i].why);
    pthread_mutex_destroy (&exports[i].lock);
  }
  free (exports);
  exports = NULL;
  nexports = 0;
  for (size_t i = 0; i < nkept; i++)
    free (kept[i]);
  free (kept);
  free (volumes_file);
  free (volumes_dir);
  free (server.control_path);
  free (server.audit_path);
}

/* cryptvol-keymgr: command dispatch and the options all commands share. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/secfile.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"
#include "keys/kms-grants.h"

static const struct {
  const char *name;
  int (*fn) (int, char **);
  const char *summary;
} commands[] = {
  { "create", cmd_create,
    "create a volume (new file, or format a file/device)" },
  { "info", cmd_info, "show a volume's header (no key needed)" },
  { "verify", cmd_verify, "unlock with a key and check the header MAC" },
  { "genkey", cmd_genkey, "write a new random 32-byte key file" },
  { "add-wrap", cmd_add_wrap, "add a way to unlock the volume" },
  { "remove-wrap", cmd_remove_wrap,
    "remove a wrap (never the last working one)" },
  { "list-wraps", cmd_list_wraps, "list the wraps" },
  { "rewrap", cmd_rewrap, "KEK rotation: move a wrap to another key" },
  { "rotate-dek", cmd_rotate_dek,
    "DEK rotation: re-encrypt the data (offline, or served: --control)" },
  { "backup-header", cmd_backup_header, "save the header to a file" },
  { "restore-header", cmd_restore_header, "put a saved header back (offline)" },
  { "shred", cmd_shred, "crypto-erase: destroy the header and every wrap" },
  { "upgrade", cmd_upgrade,
    "add the seal sector and wrap binding to an older volume" },
  { "status", cmd_status, "a running server's key state (--control PATH)" },
  { "lock", cmd_lock, "revoke a served volume now (--control PATH)" },
  { "unlock", cmd_unlock, "make a revoked server serve again (--control)" },
  { "reload", cmd_reload, "make a server re-read the header (--control)" },
  { "metrics", cmd_metrics,
    "a server's exports' metrics for Prometheus (--control)" },
  { "grant", cmd_grant, "let one AWS principal unlock the volume (KMS grant)" },
  { "grants", cmd_grants, "list the volume's KMS grants" },
  { "revoke-grant", cmd_revoke_grant, "revoke one of the volume's grants" },
  { "retire-grant", cmd_retire_grant, "retire one of the volume's grants" },
  { "aws-identity", cmd_aws_identity,
    "the AWS principal, source and expiry of the credentials found" },
};

static void
usage (FILE *f)
{
  fprintf (f, "usage: cryptvol-keymgr COMMAND [OPTIONS] VOLUME\n\ncommands:\n");
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    fprintf (f, "  %-15s %s\n", commands[i].name, commands[i].summary);
  fprintf (f,
           "\nSee cryptvol-keymgr(8) or 'cryptvol-keymgr COMMAND --help'.\n");
}

int
main (int argc, char **argv)
{
  if (argc < 2 || strcmp (argv[1], "--help") == 0
      || strcmp (argv[1], "-h") == 0) {
    usage (argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0) {
      audit_init (commands[i].name);
      return audit_end (commands[i].fn (argc - 1, argv + 1));
    }
  fprintf (stderr, "cryptvol-keymgr: unknown command '%s'\n\n", argv[1]);
  usage (stderr);
  return EXIT_USAGE;
}

unsigned keymgr_wait_s = KEYMGR_WAIT_DEFAULT;

/* Defaults for the options every command shares. */
static void
common_init (struct common_opts *o)
{
  keymgr_wait_s = KEYMGR_WAIT_DEFAULT;
  *o = (struct common_opts){ .pass_fd = -1,
                             .pin_fd = -1,
                             .unlock_sel = CV_WRAP_SEL_ALL,
                             .creds = { .pbkdf = CV_PBKDF_DEFAULT } };
}

/* Parse an unsigned 32-bit option value. */
static int
parse_u32 (const char *opt, const char *arg, uint32_t *out)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul (arg, &end, 10);
  if (errno || *end || end == arg || v > UINT32_MAX) {
    cv_err ("%s: '%s' is not a number", opt, arg);
    return -1;
  }
  *out = (uint32_t) v;
  return 0;
}

/* Handle one common option: 1 if it was one, 0 if not, -1 on a bad value
 * (reported). */
static int
common_opt (struct common_opts *o, int c, const char *arg)
{
  struct cv_pbkdf *k = &o->creds.pbkdf;
  uint64_t mem;

  switch (c) {
  case 0x100:
    o->header = arg;
    return 1;
  case 0x101:
    o->keyfile = arg;
    return 1;
  case 0x102:
    o->pass_file = arg;
    return 1;
  case 0x103: {
    uint32_t fd;
    if (parse_u32 ("--passphrase-fd", arg, &fd) < 0)
      return -1;
    o->pass_fd = (int) fd;
    return 1;
  }
  case 0x104:
    o->json = true;
    return 1;
  case 0x105:
    if (strcmp (arg, "argon2id") != 0 && strcmp (arg, "scrypt") != 0) {
      cv_err ("--pbkdf: '%s' is not argon2id or scrypt", arg);
      return -1;
    }
    k->type = arg;
    return 1;
  case 0x106:
    if (parse_size (arg, &mem) < 0 || mem < 1024 || mem > (4ULL << 30)) {
      cv_err ("--pbkdf-memory: '%s' is not a size between 1K and 4G", arg);
      return -1;
    }
    k->m_kib = (uint32_t) (mem / 1024);
    return 1;
  case 0x107:
    return parse_u32 ("--pbkdf-time", arg, &k->t_cost) < 0 ? -1 : 1;
  case 0x108:
    return parse_u32 ("--pbkdf-parallel", arg, &k->parallel) < 0 ? -1 : 1;
  case 0x109:
    cv_log_set_debug (true);
    return 1;
  case 0x10a:
    o->pin_file = arg;
    return 1;
  case 0x10b: {
    uint32_t fd;
    if (parse_u32 ("--pin-fd", arg, &fd) < 0)
      return -1;
    o->pin_fd = (int) fd;
    return 1;
  }
  case 0x10c:
    o->creds.pkcs11_module = arg;
    return 1;
  case 0x10d:
    o->creds.kms_endpoint = arg;
    return 1;
  case 0x10e:
    o->creds.kms_region = arg;
    return 1;
  case 0x10f:
    o->creds.ca_bundle = arg;
    return 1;
  case 0x110:
    audit_set_path (arg);
    return 1;
  case 0x111:
    return cv_wrap_sel_add (&o->unlock_sel, arg) < 0 ? -1 : 1;
  case 0x112:
    free ((char *) o->creds.kms_grant_token);
    o->creds.kms_grant_token = NULL;
    return read_token_arg ("--kms-grant-token", arg,
                           (char **) &o->creds.kms_grant_token)
                   < 0
               ? -1
               : 1;
  case 0x113:
    o->creds.allow_costly_kdf = true;
    return 1;
  case 0x114: {
    uint32_t secs;
    if (parse_u32 ("--wait", arg, &secs) < 0)
      return -1;
    if (secs > 86400) {
      cv_err ("--wait: %u seconds is more than a day", (unsigned) secs);
      return -1;
    }
    keymgr_wait_s = secs;
    return 1;
  }
  case 0x115:
    keymgr_export = arg;
    return 1;
  }
  return 0;
}

/* Read a secret from fd up to EOF; strip one trailing newline. A regular
 * file others can read is warned about (named by path, else by its fd). */
static int
read_secret_fd (int fd, const char *what, const char *path, struct cv_key **out)
{
  CLEANUP_KEY struct cv_key *buf = NULL;
  const char *name = path ? path : what;
  size_t len = 0;
  int rc = cv_key_new (4096, &buf);

  if (rc < 0)
    return rc;
  cv_secret_fd_check (fd, what, path);
  if ((rc = cv_read_all (fd, buf->b, buf->len, &len)) < 0) {
    cv_err ("cannot read %s: %s", name, strerror (-rc));
    return rc;
  }
  if (len == buf->len) {
    cv_err ("%s is longer than %zu bytes", name, buf->len - 1);
    return -EINVAL;
  }
  if (len > 0 && buf->b[len - 1] == '\n')
    len--;
  if (len == 0) {
    cv_err ("%s is empty", name);
    return -EINVAL;
  }
  return cv_key_from (buf->b, len, out);
}

/* Prompt on the terminal with echo off. */
static int
prompt_secret (const char *prompt, struct cv_key **out)
{
  CLEANUP_CLOSE int tty = open ("/dev/tty", O_RDWR | O_CLOEXEC);
  struct termios old, quiet;
  int rc;

  if (tty < 0 || tcgetattr (tty, &old) < 0) {
    cv_err ("no passphrase given and no terminal to ask on; use "
            "--passphrase-file FILE or --passphrase-fd N");
    return -ENOKEY;
  }
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t) ECHO;
  quiet.c_lflag |= ICANON;
  if (write (tty, prompt, strlen (prompt)) < 0)
    return -errno;
  tcsetattr (tty, TCSAFLUSH, &quiet);
  /* One line: read_secret_fd stops at EOF, so read a line here instead. */
  struct cv_key *line = NULL;
  if ((rc = cv_key_new (1024, &line)) < 0)
    goto restore;
  size_t len = 0;
  for (;;) {
    char c;
    ssize_t n = read (tty, &c, 1);
    if (n <= 0 || c == '\n')
      break;
    if (len < line->len)
      line->b[len++] = (uint8_t) c;
  }
  if (len == 0) {
    cv_err ("empty passphrase");
    rc = -EINVAL;
  } else
    rc = cv_key_from (line->b, len, out);
  cv_key_free (line);
restore:
  tcsetattr (tty, TCSAFLUSH, &old);
  if (write (tty, "\n", 1) < 0) {
    /* nothing more to do */
  }
  return rc;
}

/* Read a secret from the file at path. */
static int
read_secret_file (const char *path, const char *what, struct cv_key **out)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    int rc = -errno;
    cv_err ("cannot open %s %s: %s", what, path, strerror (errno));
    return rc;
  }
  return read_secret_fd (fd, what, path, out);
}

int
common_creds (struct common_opts *o, bool want_passphrase, bool confirm)
{
  int rc = 0;

  o->creds.keyfile = o->keyfile;
  if (o->pin_file)
    rc = read_secret_file (o->pin_file, "PIN file", &o->creds.pin);
  else if (o->pin_fd >= 0)
    rc = read_secret_fd (o->pin_fd, "PIN fd", NULL, &o->creds.pin);
  if (rc < 0)
    return rc;

  return read_passphrase (o->pass_file, o->pass_fd, want_passphrase, confirm,
                          "Passphrase", &o->creds.passphrase);
}

int
read_passphrase (const char *file, int fd, bool prompt, bool confirm,
                 const char *label, struct cv_key **out)
{
  char p1[64], p2[64];
  int rc = 0;

  if (file)
    return read_secret_file (file, "passphrase file", out);
  if (fd >= 0)
    return read_secret_fd (fd, "passphrase fd", NULL, out);
  if (!prompt)
    return 0;
  snprintf (p1, sizeof p1, "%s: ", label);
  snprintf (p2, sizeof p2, "%s again: ", label);
  rc = prompt_secret (p1, out);
  if (rc == 0 && confirm) {
    CLEANUP_KEY struct cv_key *again = NULL;
    rc = prompt_secret (p2, &again);
    if (rc == 0
        && (again->len != (*out)->len
            || memcmp (again->b, (*out)->b, again->len))) {
      cv_err ("the passphrases differ");
      cv_key_free (*out);
      *out = NULL;
      rc = -EINVAL;
    }
  }
  return rc;
}

int
read_token_arg (const char *opt, const char *arg, char **out)
{
  char buf[CV_KMS_GRANT_TOKEN_MAX + 2];
  size_t len = 0;
  int rc;

  if (arg[0] != '+')
    len = strlen (arg) < sizeof buf ? strlen (arg) : sizeof buf - 1;
  if (arg[0] != '+')
    memcpy (buf, arg, len);
  else {
    CLEANUP_CLOSE int fd = open (arg + 1, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
      cv_secret_fd_check (fd, "grant token file", arg + 1);
    rc = fd < 0 ? -errno : cv_read_all (fd, buf, sizeof buf - 1, &len);
    if (rc < 0) {
      cv_err ("%s: cannot read %s: %s", opt, arg + 1, strerror (-rc));
      return -1;
    }
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  buf[len] = '\0';
  if (cv_kms_grant_token_check (opt, buf) < 0)
    return -1;
  return (*out = strdup (buf)) ? 0 : -1;
}

void
common_free (struct common_opts *o)
{
  free ((char *) o->creds.kms_grant_token);
  o->creds.kms_grant_token = NULL;
  cv_key_free (o->creds.passphrase);
  cv_key_free (o->creds.pin);
  o->creds.passphrase = o->creds.pin = NULL;
  cv_keys_cleanup ();
}

int
exit_code (int rc)
{
  switch (-rc) {
  case 0:
    return EXIT_OK;
  case ENOKEY:
  case EKEYREJECTED:
  case EKEYREVOKED:
  case EACCES:
  case EKEYEXPIRED:
    return EXIT_NOKEY;
  case EBADMSG:
  case ESTALE:
  case EPROTONOSUPPORT:
    return EXIT_HEADER;
  case EBUSY:
  case EAGAIN:
    return EXIT_BUSY;
  case EINVAL:
    return EXIT_USAGE;
  default:
    return EXIT_IO;
  }
}

int
parse_size (const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 10);
  unsigned shift = 0;

  if (errno || end == s || s[0] == '-')
    return -EINVAL;
  switch (*end) {
  case '\0':
    break;
  case 'k':
  case 'K':
    shift = 10;
    break;
  case 'm':
  case 'M':
    shift = 20;
    break;
  case 'g':
  case 'G':
    shift = 30;
    break;
  case 't':
  case 'T':
    shift = 40;
    break;
  default:
    return -EINVAL;
  }
  if (*end && end[1] != '\0' && strcmp (end + 1, "iB") != 0)
    return -EINVAL;
  if (shift && v > (UINT64_MAX >> shift))
    return -EINVAL;
  *out = (uint64_t) v << shift;
  return 0;
}

void
print_json (const json_t *j)
{
  json_dumpf (j, stdout, JSON_INDENT (2) | JSON_SORT_KEYS);
  putchar ('\n');
}

/* Open the header of VOLUME (or --header) read-only and read it. */
int
open_header (const char *volume, const char *header, int *fd_out,
             struct cv_header **h, unsigned *valid)
{
  const char *name = header ? header : volume;
  int fd = open (name, O_RDONLY | O_CLOEXEC);
  int rc;

  if (fd < 0) {
    int e = errno;
    cv_err ("cannot open %s: %s", name, strerror (e));
    return e == ENOENT ? EXIT_USAGE : EXIT_IO;
  }
  if ((rc = cv_hdr_read (fd, name, h, valid)) < 0) {
    close (fd);
    return rc == -EIO ? EXIT_IO : EXIT_HEADER;
  }
  *fd_out = fd;
  return 0;
}

int
check_seal (const char *volume, const char *header, int hfd,
            const struct cv_header *h, const struct cv_key *dek)
{
  CLEANUP_CLOSE int dfd = -1;
  bool behind;

  if (header && (dfd = open (volume, O_RDONLY | O_CLOEXEC)) < 0) {
    int e = errno;
    cv_err ("cannot open %s (the data file, for its seal sector): %s", volume,
            strerror (e));
    return -e;
  }
  return cv_seal_check (header ? dfd : hfd, volume, !header, h, dek, &behind);
}

int
parse_args (int argc, char **argv, const struct option *own,
            int (*handle) (int c, const char *arg, void *ctx), void *ctx,
            struct common_opts *o, const char *usage, int nargs)
{
  static const struct option common[] = { COMMON_LONGOPTS };
  struct option all[64];
  size_t n = 0;
  int c;

  for (; own && own[n].name; n++)
    all[n] = own[n];
  all[n++] = (struct option){ "help", no_argument, 0, 'h' };
  for (size_t i = 0; i < ARRAY_SIZE (common); i++)
    all[n++] = common[i];
  all[n] = (struct option){ 0, 0, 0, 0 };

  common_init (o);
  optind = 1;
  while ((c = getopt_long (argc, argv, "h", all, NULL)) != -1) {
    int r = common_opt (o, c, optarg);
    if (r < 0)
      return EXIT_USAGE;
    if (r > 0)
      continue;
    if (c == 'h') {
      fputs (usage, stdout);
      return -1;
    }
    if (c == '?' || !handle || handle (c, optarg, ctx) < 0) {
      if (c == '?')
        fputs (usage, stderr);
      return EXIT_USAGE;
    }
  }
  if (nargs < 0 ? argc - optind < 1 || argc - optind > -nargs
                : argc - optind != nargs) {
    fputs (usage, stderr);
    return EXIT_USAGE;
  }
  return 0;
}

bool
has_wrap_type (const struct cv_header *h, const char *type)
{
  struct cv_wrap_info w;

  for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++)
    if (w.type && strcmp (w.type, type) == 0)
      return true;
  return false;
}

void
report (bool json, json_t *j, const char *fmt, ...)
{
  va_list ap;

  if (json && j)
    print_json (j);
  else {
    va_start (ap, fmt);
    vprintf (fmt, ap);
    va_end (ap);
  }
  json_decref (j);
}

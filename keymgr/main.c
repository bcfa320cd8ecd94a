/* cryptvol-keymgr: command dispatch and the options all commands share. */
#include <assert.h>
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
#include "common/version.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"
#include "keys/kms-grants.h"

/* Every command: its function, the shared options it takes (OPT_*) and
 * its line in the command list. */
static const struct {
  const char *name;
  int (*fn) (int, char **);
  unsigned opts;
  const char *summary;
} commands[] = {
  { "create", cmd_create,
    OPT_CEPH | OPT_PASS | OPT_PIN | OPT_SERVICE | OPT_PBKDF | OPT_WAIT,
    "create a volume (new file, or format a file/device)" },
  { "info", cmd_info, OPT_HEADER | OPT_CEPH | OPT_PIN | OPT_SERVICE,
    "show a volume's header (no key needed)" },
  { "verify", cmd_verify, OPT_HEADER | OPT_CEPH | OPT_UNLOCK,
    "unlock with a key and check the header MAC" },
  { "genkey", cmd_genkey, 0, "write a new random 32-byte key file" },
  { "add-wrap", cmd_add_wrap,
    OPT_HEADER | OPT_CEPH | OPT_UNLOCK | OPT_PBKDF | OPT_WAIT | OPT_EXPORT,
    "add a way to unlock the volume" },
  { "remove-wrap", cmd_remove_wrap,
    OPT_HEADER | OPT_CEPH | OPT_UNLOCK | OPT_WAIT | OPT_EXPORT,
    "remove a wrap (never the last working one)" },
  { "list-wraps", cmd_list_wraps, OPT_HEADER | OPT_CEPH, "list the wraps" },
  { "rewrap", cmd_rewrap,
    OPT_HEADER | OPT_CEPH | OPT_UNLOCK | OPT_PBKDF | OPT_WAIT | OPT_EXPORT,
    "KEK rotation: move a wrap to another key" },
  { "rotate-dek", cmd_rotate_dek,
    OPT_HEADER | OPT_CEPH | OPT_UNLOCK | OPT_WAIT | OPT_QUIET | OPT_EXPORT,
    "DEK rotation: re-encrypt the data (offline, or served: --control)" },
  { "backup-header", cmd_backup_header, OPT_HEADER | OPT_CEPH,
    "save the header to a file" },
  { "restore-header", cmd_restore_header,
    OPT_HEADER | OPT_CEPH | OPT_UNLOCK | OPT_WAIT,
    "put a saved header back (offline)" },
  { "shred", cmd_shred, OPT_HEADER | OPT_CEPH | OPT_WAIT,
    "crypto-erase: destroy the header and every wrap" },
  { "upgrade", cmd_upgrade, OPT_HEADER | OPT_CEPH | OPT_UNLOCK | OPT_WAIT,
    "add the seal sector and wrap binding to an older volume" },
  { "status", cmd_status, OPT_EXPORT,
    "a running server's key state (--control PATH)" },
  { "lock", cmd_lock, OPT_EXPORT,
    "revoke a served volume now (--control PATH)" },
  { "unlock", cmd_unlock, OPT_EXPORT,
    "make a revoked server serve again (--control)" },
  { "reload", cmd_reload, OPT_EXPORT,
    "make a server re-read the header (--control)" },
  { "metrics", cmd_metrics, OPT_EXPORT,
    "a server's exports' metrics for Prometheus (--control)" },
  { "grant", cmd_grant, OPT_HEADER | OPT_CEPH | OPT_SERVICE,
    "let one AWS principal unlock the volume (KMS grant)" },
  { "grants", cmd_grants, OPT_HEADER | OPT_CEPH | OPT_SERVICE,
    "list the volume's KMS grants" },
  { "revoke-grant", cmd_revoke_grant, OPT_HEADER | OPT_CEPH | OPT_SERVICE,
    "revoke one of the volume's grants" },
  { "retire-grant", cmd_retire_grant, OPT_HEADER | OPT_CEPH | OPT_SERVICE,
    "retire one of the volume's grants" },
  { "aws-identity", cmd_aws_identity, 0,
    "the AWS principal, source and expiry of the credentials found" },
};

/* The shared options (common_opt parses them) and the commands taking them:
 * OPT_* bits (0: every command). */
static const struct {
  struct option o;
  unsigned opts;
} shared[] = {
  { { "header", required_argument, 0, 0x100 }, OPT_HEADER },
  { { "keyfile", required_argument, 0, 0x101 }, OPT_KEY },
  { { "passphrase-file", required_argument, 0, 0x102 }, OPT_PASS },
  { { "passphrase-fd", required_argument, 0, 0x103 }, OPT_PASS },
  { { "pin-file", required_argument, 0, 0x10a }, OPT_PIN },
  { { "pin-fd", required_argument, 0, 0x10b }, OPT_PIN },
  { { "pkcs11-module", required_argument, 0, 0x10c }, OPT_SERVICE },
  { { "kms-endpoint", required_argument, 0, 0x10d }, OPT_SERVICE },
  { { "kms-region", required_argument, 0, 0x10e }, OPT_SERVICE },
  { { "ca-bundle", required_argument, 0, 0x10f }, OPT_SERVICE },
  { { "kms-grant-token", required_argument, 0, 0x112 }, OPT_SERVICE },
  { { "unlock-wrap", required_argument, 0, 0x111 }, OPT_KEY },
  { { "allow-costly-kdf", no_argument, 0, 0x113 }, OPT_KEY | OPT_PBKDF },
  { { "pbkdf", required_argument, 0, 0x105 }, OPT_PBKDF },
  { { "pbkdf-memory", required_argument, 0, 0x106 }, OPT_PBKDF },
  { { "pbkdf-time", required_argument, 0, 0x107 }, OPT_PBKDF },
  { { "pbkdf-parallel", required_argument, 0, 0x108 }, OPT_PBKDF },
  { { "wait", required_argument, 0, 0x114 }, OPT_WAIT },
  { { "quiet", no_argument, 0, 0x115 }, OPT_QUIET },
  { { "export", required_argument, 0, 0x116 }, OPT_EXPORT },
  { { "ceph-conf", required_argument, 0, 0x117 }, OPT_CEPH },
  { { "ceph-id", required_argument, 0, 0x118 }, OPT_CEPH },
  { { "ceph-keyring", required_argument, 0, 0x119 }, OPT_CEPH },
  { { "takeover", no_argument, 0, 0x11a }, OPT_CEPH },
  { { "json", no_argument, 0, 0x104 }, 0 },
  { { "audit-log", required_argument, 0, 0x110 }, 0 },
  { { "debug", no_argument, 0, 0x109 }, 0 },
};

const char *keymgr_command = "";
bool keymgr_quiet;
static unsigned keymgr_opts; /* the running command's OPT_* */
static bool json_printed;    /* print_json wrote the command's result */
/* The specs wrap_spec_absolute made, freed when the command ends. */
static char *made_specs[64];
static size_t nmade_specs;

static void
usage (FILE *f)
{
  fprintf (f, "usage: cryptvol-keymgr COMMAND [OPTIONS] VOLUME\n"
              "       cryptvol-keymgr help COMMAND | COMMAND --help\n"
              "       cryptvol-keymgr --version\n\ncommands:\n");
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    fprintf (f, "  %-15s %s\n", commands[i].name, commands[i].summary);
  fprintf (f,
           "\nSee cryptvol-keymgr(8) or 'cryptvol-keymgr COMMAND --help'.\n");
}

/* Whether the command line asks for --json (before any "--"), so that even
 * an error in parsing it is reported as JSON. */
static bool
wants_json (int argc, char **argv)
{
  for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++)
    if (strcmp (argv[i], "--json") == 0)
      return true;
  return false;
}

/* A failed command's error on stdout, for --json, on one line:
 * {"ok":false, "command", "error": the last error reported, "exit":code};
 * nothing if the command already printed its JSON result (info --check with a
 * disabled key, a refused control request). */
static void
json_error (int code)
{
  const char *e = cv_log_last_error ();
  json_auto_t *j = json_pack (
      "{s:b, s:s, s:s, s:i}", "ok", 0, "command", keymgr_command, "error",
      e && e[0] ? e : "see the messages on stderr", "exit", code);

  /* One line: after rotate-dek's JSON progress lines it is one more. */
  if (!json_printed && j) {
    json_dumpf (j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    putchar ('\n');
  }
}

int
main (int argc, char **argv)
{
  char *help_argv[] = { NULL, NULL, "--help", NULL };

  if (argc < 2 || strcmp (argv[1], "--help") == 0
      || strcmp (argv[1], "-h") == 0) {
    usage (argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : EXIT_OK;
  }
  if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "version") == 0) {
    if (wants_json (argc, argv))
      printf ("{\n  \"version\": \"%s\"\n}\n", CV_VERSION);
    else
      printf ("cryptvol-keymgr %s\n", CV_VERSION);
    return EXIT_OK;
  }
  /* help COMMAND: as COMMAND --help. */
  if (strcmp (argv[1], "help") == 0) {
    if (argc != 3) {
      usage (argc == 2 ? stdout : stderr);
      return argc == 2 ? EXIT_OK : EXIT_USAGE;
    }
    help_argv[0] = argv[0];
    help_argv[1] = argv[2];
    argv = help_argv;
    argc = 3;
  }
  for (size_t i = 0; i < ARRAY_SIZE (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0) {
      keymgr_command = commands[i].name;
      keymgr_opts = commands[i].opts;
      audit_init (commands[i].name);
      int code = audit_end (commands[i].fn (argc - 1, argv + 1));
      while (nmade_specs)
        free (made_specs[--nmade_specs]);
      if (code != EXIT_OK && wants_json (argc, argv))
        json_error (code);
      return code;
    }
  audit_init (argv[1]);
  cv_err ("unknown command '%s': cryptvol-keymgr --help lists them", argv[1]);
  if (wants_json (argc, argv))
    json_error (EXIT_USAGE);
  else {
    fputc ('\n', stderr);
    usage (stderr);
  }
  return EXIT_USAGE;
}

unsigned keymgr_wait_s = KEYMGR_WAIT_DEFAULT;

/* Defaults for the options every command shares. */
static void
common_init (struct common_opts *o)
{
  keymgr_wait_s = KEYMGR_WAIT_DEFAULT;
  keymgr_quiet = false;
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
  case 0x115:
    keymgr_quiet = true;
    return 1;
  case 0x116:
    keymgr_export = arg;
    return 1;
  case 0x117:
    keymgr_rbd.conf = arg;
    return 1;
  case 0x118:
    keymgr_rbd.id = arg;
    return 1;
  case 0x119:
    keymgr_rbd.keyring = arg;
    return 1;
  case 0x11a:
    keymgr_rbd.takeover = true;
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
prompt_secret (const char *prompt, bool new_pass, struct cv_key **out)
{
  CLEANUP_CLOSE int tty = open ("/dev/tty", O_RDWR | O_CLOEXEC);
  struct termios old, quiet;
  int rc;

  if (tty < 0 || tcgetattr (tty, &old) < 0) {
    cv_err ("no passphrase given and no terminal to ask on; use "
            "--%spassphrase-file FILE or --%spassphrase-fd N",
            new_pass ? "new-" : "", new_pass ? "new-" : "");
    return -ENOTTY;
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
  rc = prompt_secret (p1, strncmp (label, "New", 3) == 0, out);
  if (rc == 0 && confirm) {
    CLEANUP_KEY struct cv_key *again = NULL;
    rc = prompt_secret (p2, false, &again);
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
  case ENOKEY:       /* no key given for any wrap */
  case EKEYREJECTED: /* the wrong key */
  case EKEYREVOKED:  /* a KMS key disabled or pending deletion */
  case EACCES:       /* a key service refused the caller */
  case EKEYEXPIRED:  /* a key service refused the credentials */
  case ENOENT:       /* a key that does not exist: a KMS key NotFound, a key
                      * file, a token object */
  case EDQUOT:       /* a passphrase wrap's KDF over the unlock limit */
    return EXIT_NOKEY;
  case EBADMSG:
  case ESTALE:
  case EPROTONOSUPPORT:
    return EXIT_HEADER;
  case EBUSY:
  case EAGAIN:
    return EXIT_BUSY;
  case EINVAL:  /* a bad value on the command line or in an input file */
  case ENOTTY:  /* a passphrase needed, with no file, fd or terminal */
  case ELIBACC: /* the PKCS#11 module does not exist */
  case ELIBBAD: /* it is not a PKCS#11 module */
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
  json_printed = true;
}

struct cv_rbd_opts keymgr_rbd;

int
keymgr_dev_open (const char *path, const char *what, bool readonly,
                 struct cv_dev **out)
{
  return cv_dev_open (path, what, readonly, &keymgr_rbd, out);
}

/* Open the header of VOLUME (or --header) read-only and read it. */
int
open_header (const char *volume, const char *header, struct cv_dev **d_out,
             struct cv_header **h, unsigned *valid)
{
  const char *name = header ? header : volume;
  struct cv_dev *d;
  int rc = keymgr_dev_open (name, "header", true, &d);

  if (rc < 0)
    return rc == -ENOENT ? EXIT_USAGE : EXIT_IO;
  if ((rc = cv_hdr_read (d, h, valid)) < 0) {
    cv_dev_close (d);
    return rc == -EIO ? EXIT_IO : EXIT_HEADER;
  }
  *d_out = d;
  return 0;
}

int
check_seal (const char *volume, const char *header, struct cv_dev *hd,
            const struct cv_header *h, const struct cv_key *dek)
{
  CLEANUP_DEV struct cv_dev *dd = NULL;
  bool behind;
  int rc;

  if (header
      && (rc = keymgr_dev_open (volume, "data file (for its seal sector)", true,
                                &dd))
             < 0)
    return rc;
  return cv_seal_check (header ? dd : hd, !header, h, dek, &behind);
}

/* The getopt option of argv[optind - 1] that getopt_long refused, for a
 * message: up to any '='. */
static const char *
bad_option (char **argv, char *buf, size_t len)
{
  const char *a = argv[optind - 1];

  snprintf (buf, len, "%.*s", (int) strcspn (a, "="), a);
  return buf;
}

int
parse_args (int argc, char **argv, const struct option *own,
            int (*handle) (int c, const char *arg, void *ctx), void *ctx,
            struct common_opts *o, const char *usage, int nargs)
{
  struct option all[64];
  size_t n = 0;
  char buf[64];
  int c;

  for (; own && own[n].name; n++)
    all[n] = own[n];
  for (size_t i = 0; i < ARRAY_SIZE (shared); i++)
    if (!shared[i].opts || (shared[i].opts & keymgr_opts))
      all[n++] = shared[i].o;
  all[n++] = (struct option){ "help", no_argument, 0, 'h' };
  all[n] = (struct option){ 0, 0, 0, 0 };
  assert (n < ARRAY_SIZE (all));
  for (size_t i = 0; i < n; i++)
    assert (option_documented (keymgr_command, all[i].name));

  common_init (o);
  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, ":h", all, NULL)) != -1) {
    int r = common_opt (o, c, optarg);
    if (r < 0)
      return EXIT_USAGE;
    if (r > 0)
      continue;
    if (c == 'h') {
      fputs (usage, stdout);
      print_options (stdout, keymgr_command, all);
      return -1;
    }
    if (c == ':')
      cv_err ("%s %s: needs a value; see cryptvol-keymgr %s --help",
              keymgr_command, bad_option (argv, buf, sizeof buf),
              keymgr_command);
    else if (c == '?' && optopt)
      cv_err ("%s %s: takes no value; see cryptvol-keymgr %s --help",
              keymgr_command, bad_option (argv, buf, sizeof buf),
              keymgr_command);
    else if (c == '?')
      cv_err ("%s: unknown option %s; cryptvol-keymgr %s --help lists "
              "its options",
              keymgr_command, bad_option (argv, buf, sizeof buf),
              keymgr_command);
    if (c == '?' || c == ':' || !handle || handle (c, optarg, ctx) < 0)
      return EXIT_USAGE;
  }
  if (nargs < 0 ? argc - optind < 1 || argc - optind > -nargs
                : argc - optind != nargs) {
    cv_err ("%s: %s operands; usage:", keymgr_command,
            argc - optind < (nargs < 0 ? 1 : nargs) ? "missing" : "too many");
    fputs (usage, stderr);
    return EXIT_USAGE;
  }
  return 0;
}

const char *
wrap_spec_absolute (const char *spec)
{
  char cwd[4096];
  const char *path = spec + 5;
  char *abs = NULL;

  if (strncmp (spec, "file:", 5) != 0 || path[0] == '/' || path[0] == '\0')
    return spec;
  if (nmade_specs == ARRAY_SIZE (made_specs)) {
    cv_err ("too many file: wraps on one command line");
    return NULL;
  }
  if (!getcwd (cwd, sizeof cwd)) {
    cv_err ("cannot make the key file path %s absolute: %s", path,
            strerror (errno));
    return NULL;
  }
  while (strncmp (path, "./", 2) == 0)
    path += 2;
  if (asprintf (&abs, "file:%s%s%s", cwd, strcmp (cwd, "/") ? "/" : "", path)
      < 0) {
    cv_err ("out of memory");
    return NULL;
  }
  return made_specs[nmade_specs++] = abs;
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

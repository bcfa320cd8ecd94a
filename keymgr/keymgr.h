/* cryptvol-keymgr: shared pieces of the command-line tool. One file per
 * command family (cmd_*.c); this header holds what they share. */
#ifndef CV_KEYMGR_H
#define CV_KEYMGR_H

#include <stdbool.h>
#include <stdint.h>

#include "keys/keys.h"

/* Exit codes (documented in cryptvol-keymgr(8)). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 1,  /* bad command line or bad input file */
  EXIT_NOKEY = 2,  /* no wrap could be unlocked with what was given */
  EXIT_HEADER = 3, /* not a volume, corrupt, tampered or unsupported */
  EXIT_IO = 4,     /* I/O or system error */
  EXIT_BUSY = 5,   /* the volume is locked by another process */
};

/* Options every command that unlocks or wraps understands. */
struct common_opts {
  const char *header;    /* --header: detached header file */
  const char *keyfile;   /* --keyfile */
  const char *pass_file; /* --passphrase-file */
  int pass_fd;           /* --passphrase-fd, or -1 */
  const char *pin_file;  /* --pin-file */
  int pin_fd;            /* --pin-fd, or -1 */
  bool json;             /* --json */
  struct cv_creds creds;
};

/* Long options for common_opts, to append to a command's own table. Values
 * 0x100 and up are reserved for them. */
/* clang-format off */
#define COMMON_LONGOPTS                                                        \
  { "header", required_argument, 0, 0x100 },                                   \
  { "keyfile", required_argument, 0, 0x101 },                                  \
  { "passphrase-file", required_argument, 0, 0x102 },                          \
  { "passphrase-fd", required_argument, 0, 0x103 },                            \
  { "json", no_argument, 0, 0x104 },                                           \
  { "pbkdf", required_argument, 0, 0x105 },                                    \
  { "pbkdf-memory", required_argument, 0, 0x106 },                             \
  { "pbkdf-time", required_argument, 0, 0x107 },                               \
  { "pbkdf-parallel", required_argument, 0, 0x108 },                           \
  { "debug", no_argument, 0, 0x109 },                                          \
  { "pin-file", required_argument, 0, 0x10a },                                 \
  { "pin-fd", required_argument, 0, 0x10b },                                   \
  { "pkcs11-module", required_argument, 0, 0x10c },                            \
  { "kms-endpoint", required_argument, 0, 0x10d },                             \
  { "kms-region", required_argument, 0, 0x10e },                               \
  { "ca-bundle", required_argument, 0, 0x10f }
/* clang-format on */

void common_init (struct common_opts *o);
/* Handle one common option; returns 1 if it was one, 0 if not, -1 on a bad
 * value (reported). */
int common_opt (struct common_opts *o, int c, const char *arg);
/* Fill o->creds from the options; prompt for a passphrase on the terminal
 * (twice if confirm) when want_passphrase and none was given in a file or fd.
 * Returns 0 or -errno (reported). */
int common_creds (struct common_opts *o, bool want_passphrase, bool confirm);
void common_free (struct common_opts *o);

/* The exit code for a -errno from the library. */
int exit_code (int rc);
/* Parse a size with an optional K/M/G/T (binary) suffix. */
int parse_size (const char *s, uint64_t *out);
/* Print a JSON value to stdout, indented, with a newline. */
struct json_t;
void print_json (struct json_t *j);

/* Open the header of volume (or header, if given) read-only. Returns 0, or
 * the exit code for the failure (reported): EXIT_HEADER when it is not a
 * usable cryptvol header. */
struct cv_header;
int open_header (const char *volume, const char *header, int *fd_out,
                 struct cv_header **h, unsigned *valid);

int cmd_create (int argc, char **argv);
int cmd_info (int argc, char **argv);
int cmd_verify (int argc, char **argv);
int cmd_genkey (int argc, char **argv);

#endif

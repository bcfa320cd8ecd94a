/* cryptvol-keymgr: shared pieces of the command-line tool. One file per
 * command family (cmd_*.c); this header holds what they share. */
#ifndef CV_KEYMGR_H
#define CV_KEYMGR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "io/backend.h"
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
  /* --unlock-wrap: which wraps to unlock with, in order */
  struct cv_wrap_sel unlock_sel;
};

/* Which of the shared options a command takes (its entry in main.c's
 * command table): the parser accepts these and its --help lists them, with
 * the command's own; --json, --audit-log, --debug and --help go with every
 * command. */
enum {
  OPT_HEADER = 1 << 0,  /* --header */
  OPT_KEY = 1 << 1,     /* --keyfile, --unlock-wrap, --allow-costly-kdf */
  OPT_PASS = 1 << 2,    /* --passphrase-file, --passphrase-fd */
  OPT_PIN = 1 << 3,     /* --pin-file, --pin-fd */
  OPT_SERVICE = 1 << 4, /* --pkcs11-module, --kms-*, --ca-bundle */
  OPT_PBKDF = 1 << 5,   /* --pbkdf*, --allow-costly-kdf: new passphrases */
  OPT_WAIT = 1 << 6,    /* --wait */
  OPT_QUIET = 1 << 7,   /* --quiet: no progress */
  OPT_EXPORT = 1 << 8,  /* --export: the control socket's export */
  OPT_CEPH = 1 << 9,    /* --ceph-*, --takeover: opens a volume */
  OPT_UNLOCK = OPT_KEY | OPT_PASS | OPT_PIN | OPT_SERVICE,
};

/* The command running (its name, for messages and --help) and whether
 * --quiet was given. */
extern const char *keymgr_command;
extern bool keymgr_quiet;

/* The help of option name of command cmd (help.c): true if it has one.
 * print_options: the options opts (ended by a NULL name) with their help. */
bool option_documented (const char *cmd, const char *name);
struct option;
void print_options (FILE *f, const char *cmd, const struct option *opts);

/* Parse a command line: own options (may be NULL) go to handle (returning 0,
 * or -1 after reporting a bad value), the shared ones the command takes into
 * o (initialised here); exactly nargs operands must follow, at argv[optind]
 * (nargs < 0: 1 to -nargs). --help prints usage and every option accepted,
 * described by help.c. Returns 0, -1 after printing --help (exit 0), or an
 * exit code after a usage error (reported). */
int parse_args (int argc, char **argv, const struct option *own,
                int (*handle) (int c, const char *arg, void *ctx), void *ctx,
                struct common_opts *o, const char *usage, int nargs);

/* Fill o->creds from the options; prompt for a passphrase on the terminal
 * (twice if confirm) when want_passphrase and none was given in a file or fd.
 * Returns 0 or -errno (reported). */
int common_creds (struct common_opts *o, bool want_passphrase, bool confirm);
void common_free (struct common_opts *o);
/* A KMS grant token given as opt's argument arg: +FILE (read, a trailing
 * newline dropped) or the token itself. *out is malloc'd. 0, or -1 after
 * reporting what is wrong (never the token). */
int read_token_arg (const char *opt, const char *arg, char **out);
/* A passphrase from file, else fd (>= 0), else (if prompt) the terminal,
 * asked twice if confirm; label names it in the prompt. Leaves *out NULL if
 * none was asked for. Returns 0 or -errno (reported). */
int read_passphrase (const char *file, int fd, bool prompt, bool confirm,
                     const char *label, struct cv_key **out);
/* spec, or for file:PATH with a relative PATH, file: and its absolute path
 * (a wrap stores it, and must unlock from any directory; one stored
 * relative still resolves against the working directory). It lives until
 * the command ends. NULL on error (reported). */
const char *wrap_spec_absolute (const char *spec);
/* True if h has a wrap of the given type. */
struct cv_header;
bool has_wrap_type (const struct cv_header *h, const char *type);

/* An unfinished DEK rotation of h (d: its header, open) for info and
 * verify (rotstate.c): NULL when there is none (or its state is malformed:
 * logged), else a new object {state: "interrupted" | "running" (offline
 * rotate-dek) | "served" (a server holds the volume), percent, boundary,
 * size, id, started, next: what continues it}. Caller decrefs. */
json_t *rotation_state (const struct cv_header *h, struct cv_dev *d);
/* That object as one line on stdout ("DEK rotation: interrupted at 37% ...").
 */
void rotation_state_print (const json_t *r);

/* The exit code for a -errno from the library: the one map from errno to
 * the exit statuses cryptvol-keymgr(8) documents (EXIT STATUS), so that a
 * code means the same whatever the command. */
int exit_code (int rc);
/* Parse a size with an optional K/M/G/T (binary) suffix. */
int parse_size (const char *s, uint64_t *out);
/* Print a JSON value to stdout, indented, with a newline. */
void print_json (const json_t *j);
/* A command's result: j (taken) with --json, else the printf-style line. */
void report (bool json, json_t *j, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Open the header of volume (or header, if given) read-only. Returns 0, or
 * the exit code for the failure (reported): EXIT_HEADER when it is not a
 * usable cryptvol header. */
/* Refuse a header (read by open_header from hd) that is older than the
 * volume: cv_seal_check on the data file, with the unlocked DEK. Returns 0
 * or -errno (reported). */
int check_seal (const char *volume, const char *header, struct cv_dev *hd,
                const struct cv_header *h, const struct cv_key *dek);
int open_header (const char *volume, const char *header, struct cv_dev **d_out,
                 struct cv_header **h, unsigned *valid);

/* --ceph-conf, --ceph-id, --ceph-keyring, --takeover: for rbd: volumes. */
extern struct cv_rbd_opts keymgr_rbd;
/* cv_dev_open with them: a file, or an RBD image (opened for writing, it
 * holds the image's exclusive lock until closed). 0 or -errno (reported). */
int keymgr_dev_open (const char *path, const char *what, bool readonly,
                     struct cv_dev **out);

/* --wait SECONDS: how long a command waits for a volume's locks held by
 * another process before it gives up with EXIT_BUSY (0: not at all). */
#define KEYMGR_WAIT_DEFAULT 5
extern unsigned keymgr_wait_s;

/* Take the locks of the volume whose header d is open (read-write): the in-use
 * lock, exclusive for an offline change (rotate-dek, restore-header, shred) or
 * else shared, then the header write lock, waiting up to --wait seconds in all.
 * Returns 0, or an exit code after saying who may hold the lock and what to do
 * (EXIT_BUSY when it stayed busy). */
int lock_volume (struct cv_dev *d, bool exclusive);

/* A volume header opened for a change (session.c): the in-use lock shared,
 * the header write lock held until session_close. */
struct session {
  const char *volume, *name; /* volume path; header file (name) */
  struct cv_dev *hd;
  struct cv_dev *dd; /* the data file when the header is detached (its
                        seal sector), else NULL */
  struct cv_header *h;
  struct cv_key *dek;  /* after session_unlock */
  int64_t unlocked_by; /* id of the wrap that unlocked */
  bool remote;         /* committed by the server at keymgr_control */
};
/* session_open returns 0 or an exit code (reported; nothing is left open or
 * locked). */
int session_open (struct session *s, const char *volume, const char *header);
void session_close (struct session *s);
/* Unlock with a wrap sel chooses (NULL: any; s->dek, s->unlocked_by), check
 * that the header is not older than the volume (its seal sector), and
 * record that wrap as verified. Returns 0 or -errno (reported). */
int session_unlock (struct session *s, const struct cv_creds *c,
                    const struct cv_wrap_sel *sel);
/* Commit s->h: sealed with the DEK after session_unlock (the wraps bound,
 * the seal sector written), else as it is (a change made without the DEK:
 * a re-wrap inside KMS). Returns 0 or -errno (reported). */
int session_commit (struct session *s);
/* The data file's device (for its seal sector) and whether the header is
 * attached to it. */
struct cv_dev *session_data_dev (const struct session *s, bool *attached);

/* The audit log (audit.c). audit_init installs the log sink that remembers
 * the last error; audit_end writes the record if --audit-log was given and
 * returns code (or EXIT_IO if the log cannot be written). */
void audit_init (const char *command);
void audit_set_path (const char *path);
void audit_volume (const char *path, const char *uuid);
struct cv_wrap_info;
void audit_wrap (const struct cv_wrap_info *w, const char *action);
int audit_end (int code);

/* Shared by the wrap commands (cmd_wraps.c). */
int unlock_creds (struct common_opts *co, const struct cv_header *h);

/* The control socket (cmd_control.c). control_reload_after: after a
 * committed header change (its lock released), ask the server at path
 * (NULL: none, returns NULL) to reload; its reply (caller frees), or
 * {"ok":false,"error":...}. A failure is warned about but is not the
 * command's: the change is on disk. control_reload_print: a line saying the
 * server reloaded, if it did. */
json_t *control_reload_after (const char *path);
void control_reload_print (const char *path, const json_t *reply);
/* Send req (an object) to the server at path and parse its reply (caller
 * decrefs) into *reply. Returns 0, or an exit code (reported) when no reply
 * came. control_reply_error: the reply's error, or NULL if it says ok. */
int control_request (const char *path, const json_t *req, json_t **reply);
const char *control_reply_error (const json_t *reply);
/* --export NAME: the export of a server with several that every request to
 * a control socket names (control_request adds it); NULL: none named. */
extern const char *keymgr_export;
/* --control PATH of a command that changes the header (the wrap commands,
 * rotate-dek): the server of the volume; NULL: none. A session on a volume
 * whose data is in an RBD image (which its server holds locked) then opens
 * it read-only and has that server commit the change (commit-header). */
extern const char *keymgr_control;

/* rotate-dek's own options (cmd_rotate.c parses them and rotates offline;
 * rotate_online.c runs the rest). */
#define ROTATE_DROP_MAX 64
struct rotate_opts {
  uint64_t step;                 /* --hotzone; 0: the default */
  const char *control;           /* --control: rotate online */
  double rate;                   /* --rate MiB/s; < 0: not given */
  bool detach;                   /* --detach */
  const char *change;            /* --pause or --resume: "rotate-pause"... */
  int64_t drop[ROTATE_DROP_MAX]; /* --drop-wrap */
  size_t ndrop;
};
/* Begin a DEK rotation in path's header (a session): unlock, remove the
 * --drop-wrap wraps, cv_rot_prepare (online: the server's step), commit.
 * *already: h records a rotation (nothing done; the caller continues it).
 * Returns 0 or an exit code (reported). */
int rotate_prepare (const char *path, struct common_opts *co,
                    const struct rotate_opts *ro, bool online, bool *already);
/* True if h has a passphrase wrap that ro does not drop. */
bool rotate_needs_passphrase (const struct cv_header *h,
                              const struct rotate_opts *ro);
/* rotate-dek --control: begin (or continue) the rotation in the server and
 * follow it, or pause/resume it. Returns an exit code. */
int rotate_online (const char *path, struct common_opts *co,
                   const struct rotate_opts *ro);

int cmd_create (int argc, char **argv);
int cmd_info (int argc, char **argv);
int cmd_verify (int argc, char **argv);
int cmd_genkey (int argc, char **argv);
int cmd_add_wrap (int argc, char **argv);
int cmd_remove_wrap (int argc, char **argv);
int cmd_list_wraps (int argc, char **argv);
int cmd_rewrap (int argc, char **argv);
int cmd_rotate_dek (int argc, char **argv);
int cmd_backup_header (int argc, char **argv);
int cmd_restore_header (int argc, char **argv);
int cmd_shred (int argc, char **argv);
int cmd_upgrade (int argc, char **argv);
int cmd_status (int argc, char **argv);
int cmd_lock (int argc, char **argv);
int cmd_unlock (int argc, char **argv);
int cmd_reload (int argc, char **argv);
int cmd_metrics (int argc, char **argv);
int cmd_grant (int argc, char **argv);
int cmd_grants (int argc, char **argv);
int cmd_revoke_grant (int argc, char **argv);
int cmd_retire_grant (int argc, char **argv);
int cmd_aws_identity (int argc, char **argv);

#endif

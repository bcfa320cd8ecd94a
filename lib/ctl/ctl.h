/* The control socket: a Unix socket on which the operator (cryptvol-keymgr
 * status|lock|unlock|reload|metrics, or socat) asks a running server about
 * its exports' keys and acts on them. One JSON object per line each way; the
 * protocol is in doc/control.md. The server knows nothing of volumes: the
 * commands reach an export's volume through struct cv_ctl_ops (ctl-vol.c
 * wires them to lib/vol; the unit tests and the fuzz target to fakes). */
#ifndef CV_CTL_H
#define CV_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct cv_audit;

/* A request line is at most this many bytes, its newline included: room
 * for commit-header's header copy (64 KiB, in base64). */
#define CV_CTL_LINE_MAX (128 * 1024)

/* What the commands do to an export's volume. Each gets the export's arg,
 * the request (an object whose members dispatch.c has checked: "cmd",
 * "export" if given, and "rate" where the command takes it, a finite number
 * of MiB/s >= 0), adds its reply's members to reply (an object; "ok" is
 * added by the caller) and returns 0, or -errno after logging why through
 * cv_err (that message becomes the reply's "error"). They run on the control
 * thread, one at a time. uuid: the volume's uuid, or NULL while it is not
 * unlocked (lazy unlock, or its unlock failed); NULL ops->uuid: never
 * known. */
struct cv_ctl_ops {
  int (*status) (void *arg, const json_t *req, json_t *reply);
  int (*check) (void *arg, const json_t *req, json_t *reply);
  int (*lock) (void *arg, const json_t *req, json_t *reply);
  int (*unlock) (void *arg, const json_t *req, json_t *reply);
  int (*reload) (void *arg, const json_t *req, json_t *reply);
  /* "rate" optional: adopt or continue a DEK rotation */
  int (*rotate) (void *arg, const json_t *req, json_t *reply);
  int (*rotate_pause) (void *arg, const json_t *req, json_t *reply);
  int (*rotate_resume) (void *arg, const json_t *req, json_t *reply);
  /* "rate" required */
  int (*rotate_rate) (void *arg, const json_t *req, json_t *reply);
  /* "header" required (a string; the op decodes it) */
  int (*commit_header) (void *arg, const json_t *req, json_t *reply);
  const char *(*uuid) (void *arg);
};

/* One export of the server: what a request's "export" names. */
struct cv_ctl_export {
  const char *name;   /* NBD export name; "" on a single-volume server */
  const char *volume; /* its path: replies and audit records */
  void *arg;          /* for ops */
};

struct cv_ctl_opts {
  const char *path;     /* the socket */
  gid_t group;          /* control-group=: may connect too; (gid_t) -1: none */
  unsigned max_clients; /* at once; more are refused with an error; 0: 16 */
  unsigned idle_ms;     /* a peer that sends no whole line for this long is
                           closed; 0: 30000 */
  /* The exports (names distinct). A request names one with "export"; with
   * one export it may leave it out, and status without it covers all. */
  const struct cv_ctl_export *exports;
  size_t nexports;
  const struct cv_ctl_ops *ops;
  struct cv_audit *audit; /* every command is recorded here; NULL: not */
};

/* The commands on a served volume (ctl-vol.c): arg is its struct cv_vol *,
 * opened with keep_creds (check and unlock unwrap again). status: the key
 * state, wrap, last and next check, counters (requests served, refused and
 * failed, bytes, key checks by outcome and the time the key was last found
 * usable) and the DEK rotation (cv_vol_rotate_status); check: one check now,
 * then the state and the check's outcome (a failed check is an outcome, not a
 * failed command); lock: cv_vol_revoke; unlock: cv_vol_resume; reload:
 * cv_vol_reload, then the header's seqid; rotate: cv_vol_rotate_start (without
 * "rate": the running rotation's limit, else unlimited); rotate-pause,
 * rotate-resume, rotate-rate: cv_vol_rotate_pause, _resume, _set_rate. The
 * rotate commands reply with the rotation's state ("rotation": as in status).
 * commit-header: cv_vol_commit_header of the base64 "header", then the
 * header's seqid.
 * uuid: cv_vol_uuid. */
extern const struct cv_ctl_ops cv_ctl_vol_ops;

/* Who sent a request (SO_PEERCRED). */
struct cv_ctl_peer {
  uid_t uid;
  pid_t pid;
};

struct cv_ctl;

/* Handle one request line (len bytes, without its newline) from peer: parse
 * it, run the command, record it in o->audit. Returns the reply line,
 * newline-terminated (caller frees), or NULL only when out of memory. Never
 * fails on bad input: that gets an {"ok":false,"error":...} reply. */
char *cv_ctl_dispatch (const struct cv_ctl_opts *o,
                       const struct cv_ctl_peer *peer, const char *line,
                       size_t len);

/* Append rec (not taken) to o->audit for export e (NULL: none resolved;
 * with a single export, that one), with its "export", volume and uuid. For
 * server.c and dispatch.c. */
void cv_ctl_audit (const struct cv_ctl_opts *o, const struct cv_ctl_export *e,
                   json_t *rec);

/* Listen on o->path (mode 0600, or 0660 and group o->group) and serve
 * requests on a thread of its own. A socket left at the path by a server
 * that is gone is replaced; one that answers is not (-EADDRINUSE), nor
 * anything that is not a socket (-EEXIST). o's strings, exports, ops and
 * audit must outlive the server. Returns 0 or -errno (logged). */
int cv_ctl_start (const struct cv_ctl_opts *o, struct cv_ctl **out);
/* Stop the thread, close every connection, remove the socket. NULL: no-op.
 */
void cv_ctl_stop (struct cv_ctl *c);

#endif

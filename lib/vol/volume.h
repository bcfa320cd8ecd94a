/* An opened, unlocked volume and its data path: what the nbdkit plugin serves.
 * Requests may come from many threads at once; each thread gets its own I/O
 * queue, XTS engine and bounce buffer on first use. */
#ifndef CV_VOLUME_H
#define CV_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto/xts.h"
#include "io/backend.h"
#include "keys/keys.h"

struct cv_vol;

/* How reads get the ciphertext (plugin read-path=). CV_READ_MAP decrypts
 * straight from a shared mapping of the data file into the caller's buffer
 * (one pass, no copy; a regular file without O_DIRECT only); CV_READ_PREAD
 * reads it into the buffer through the I/O backend and decrypts in place.
 * CV_READ_AUTO: the mapping where there is one (see doc/architecture.md). */
enum cv_read_path { CV_READ_AUTO = 0, CV_READ_MAP, CV_READ_PREAD };

struct cv_vol_opts {
  const char *path;        /* data file, block device or rbd:POOL/IMAGE */
  const char *header_path; /* detached header, or NULL */
  /* For rbd: paths (data or header): the cluster, the identity, takeover
   * (io/rbd.h); NULL: Ceph's defaults. */
  const struct cv_rbd_opts *rbd;
  bool readonly;
  bool direct; /* O_DIRECT on the data file */
  /* Offline maintenance: no server may have the volume open (keymgr
   * rotate-dek, restore-header, shred). */
  bool exclusive;
  const struct cv_creds *creds;
  const struct cv_wrap_sel *wraps; /* which wraps to try, in order; NULL: all */
  /* I/O backend. CV_IO_AUTO (0): io_uring if it works here, else the
   * portable one with a warning; CV_IO_URING fails to open where io_uring
   * does not work. */
  enum cv_io_kind io;
  /* Tests: faults the portable backend (CV_IO_POSIX) injects; NULL. */
  struct cv_io_faults *faults;
  /* Keep a copy of creds (secrets in locked memory) for key checks and
   * resume (a server with key-check= > 0). Without it cv_vol_check_key and
   * cv_vol_resume fail with -ENOKEY. */
  bool keep_creds;
  /* XTS implementation (cv_xts_pick): CV_XTS_AUTO (0) takes the faster. */
  enum cv_xts_impl xts_impl;
  /* CV_READ_MAP where the data file cannot be mapped fails the open with
   * -ENOTSUP. */
  enum cv_read_path read_path;
};

/* Open the volume, read its header, unlock a DEK and authenticate the header.
 * Every failure is reported once, naming the volume and the reason.
 * Returns 0 or -errno. */
int cv_vol_open (const struct cv_vol_opts *o, struct cv_vol **out);
/* Free per-thread state of all threads and the volume; wipes the DEK. */
void cv_vol_close (struct cv_vol *v);

uint64_t cv_vol_size (const struct cv_vol *v);
unsigned cv_vol_sector_size (const struct cv_vol *v);
const char *cv_vol_uuid (const struct cv_vol *v);
/* The path the volume was opened with (cv_vol_opts.path). */
const char *cv_vol_path (const struct cv_vol *v);

/* Data path. Every request holds the volume's key state for its whole
 * duration: while the key is revoked, each fails with -EPERM (logged once,
 * when the state changed). Offsets and counts are in bytes within the volume
 * and need not be sector aligned (edge sectors are read-modified-written under
 * per-sector locks). Requests beyond the end fail with -ENOSPC (writes) or -EIO
 * (reads) and a message. Return 0 or -errno. */
int cv_vol_pread (struct cv_vol *v, void *buf, uint32_t count, uint64_t off);
int cv_vol_pwrite (struct cv_vol *v, const void *buf, uint32_t count,
                   uint64_t off, bool fua);
/* Write zeros that read back as zeros (encrypted zero sectors). */
int cv_vol_zero (struct cv_vol *v, uint32_t count, uint64_t off, bool fua);
int cv_vol_flush (struct cv_vol *v);

/* Re-lock key pages after fork (memory locks are not inherited). */
int cv_vol_after_fork (struct cv_vol *v);

/* The volume's header and its DEK (during a DEK rotation: the new one), for
 * keymgr's offline use: a served volume's DEK is NULL while revoked, and
 * cv_vol_reload replaces its header. */
const struct cv_header *cv_vol_header (const struct cv_vol *v);
const struct cv_key *cv_vol_dek (const struct cv_vol *v);

/* DEK rotation (re-encryption) of a volume opened with exclusive = true.
 * cv_vol_rotate_begin: make a new DEK and re-make every wrap for it with c
 * (each wrap's key is needed; cv_wrap_remake_all), and commit them with the
 * rotation state, the old DEK sealed under the new one; from then on every
 * wrap opens the new DEK, which becomes the volume's, and data below the
 * boundary is under it. step is the bytes re-encrypted per crash-safe step
 * (0: default). On failure v is unchanged (its DEK, header and wraps), and
 * the message says whether the header on disk records the rotation (its
 * primary copy was written: the next open continues it) or nothing changed.
 * Returns 0, -EALREADY (a rotation is in progress), -EROFS (opened
 * read-only), -ENOSPC (no room for the journal) or another -errno; logged.
 * cv_vol_rotate_run: re-encrypt the rest, one step at a time (each journalled
 * so that a crash anywhere is recovered by the next open), calling progress
 * after each; at the end the old DEK is forgotten. The next step is read
 * while one is written (two steps' buffers), with a second thread for the
 * cipher where there is a second CPU; writes to the part not yet
 * re-encrypted wait until it returns. Returns 0 or -errno
 * (logged). A rotation interrupted at any point is continued by opening the
 * volume and calling cv_vol_rotate_run. */
int cv_vol_rotate_begin (struct cv_vol *v, const struct cv_creds *c,
                         uint64_t step);
int cv_vol_rotate_run (struct cv_vol *v,
                       void (*progress) (uint64_t done, uint64_t total,
                                         void *arg),
                       void *arg);
/* True if a DEK rotation is in progress; *done gets its boundary. */
bool cv_vol_rotating (const struct cv_vol *v, uint64_t *done);

/* --- Online DEK rotation: a served volume re-encrypts itself ----------- */

/* Begin a DEK rotation in header h (read under the header lock by the
 * caller, authenticated with dek, the volume's DEK): make a new DEK, re-make
 * every wrap of h for it with c (cv_wrap_remake_all: each wrap's key is
 * needed; drop unwanted wraps from h first), record the rotation state (the
 * old DEK sealed under the new one, boundary 0, hotzone step) and seal h
 * with the new DEK (in *dek1 when not NULL; caller frees). The caller
 * commits h (cv_hdr_commit_sealed with *dek1) and then asks the
 * server to adopt it (cv_vol_rotate_start). path is the data file: with an
 * attached header (hname == path) the journal lives between the header
 * copies and the data, and step is capped to fit it. step 0: the default
 * (CV_ROT_STEP_ONLINE when online, else 64 MiB). On failure h may be
 * changed: the caller discards it. Returns 0, -EALREADY (h records a
 * rotation), -ENOSPC (no room for a journal) or another -errno (logged,
 * naming the wrap whose key was missing). cv_vol_rotate_begin is this on an
 * open volume plus the commit. */
#define CV_ROT_STEP_ONLINE (8 * 1024 * 1024)
int cv_rot_prepare (struct cv_header *h, const char *path, const char *hname,
                    const struct cv_creds *c, const struct cv_key *dek,
                    uint64_t step, bool online, struct cv_key **dek1);

/* The rotation engine of a served volume (a thread per volume, started on
 * demand). Each step takes a range lock over its hotzone: client requests
 * that overlap it wait (they never see a half-rewritten hotzone; a client
 * write is never lost nor encrypted twice), others run on; the step is
 * journalled as offline, so kill -9 anywhere is recovered by the next open.
 *
 * cv_vol_rotate_start: continue the rotation the volume holds (opened
 * mid-rotation), or adopt one that cryptvol-keymgr began in the header on
 * disk since (cv_rot_prepare + commit): the header is re-read under the
 * header lock, the new DEK unwrapped with the kept credentials (the wrap in
 * use, else any wrap they open), the old DEK recovered from the header must
 * equal the DEK being served; then the engine runs in the background at
 * rate_mib_s (0: unlimited). Idempotent while running (sets the rate).
 * Returns 0, -ENOENT (no rotation, in memory or on disk), -EPERM (the key is
 * revoked), -ENOKEY (no kept credentials open the new DEK), -EINVAL (the
 * header's rotation does not match the DEK being served), -EROFS, or -errno;
 * logged.
 * cv_vol_rotate_pause / cv_vol_rotate_resume: stop after the step in flight
 * / go on. -ENOENT when no rotation runs. Pausing survives nothing: a
 * restarted server continues (plugin rotate=auto).
 * cv_vol_rotate_set_rate: MiB/s, 0 unlimited; -ENOENT when none runs,
 * -EINVAL when negative or not finite.
 * cv_vol_rotate_stop: stop the engine after the step in flight and join it
 * (unload); the rotation stays recorded and continues at the next start.
 * When the rotation ends, the old DEK is wiped (memory: under the key lock,
 * every thread's engines re-keyed; header: the rotation state cleared) and
 * the journal's record zeroed. A step that fails is retried after a back-off
 * (state "failed" with the error, still serving) unless it left the volume
 * stale (then "failed" until reopened). While the key is revoked the engine
 * waits ("waiting") and goes on after a resume. */
int cv_vol_rotate_start (struct cv_vol *v, double rate_mib_s);
int cv_vol_rotate_pause (struct cv_vol *v);
int cv_vol_rotate_resume (struct cv_vol *v);
int cv_vol_rotate_set_rate (struct cv_vol *v, double rate_mib_s);
void cv_vol_rotate_stop (struct cv_vol *v);

/* A snapshot of the rotation (control `status`). state: "none" (no
 * rotation recorded), "idle" (recorded, engine not started: offline, or
 * rotate=manual), "running", "pausing" (until the step in flight ends),
 * "paused", "waiting" (key revoked), "failed"
 * (error says why; retried), "done" (finished in this process; done ==
 * total). rate_mib_s: measured over the last few seconds of running; eta_s:
 * -1 when unknown. journal: "clean" (no step in flight) or "step" (a step's
 * record is on disk and its hotzone being rewritten: step_start, step_len). */
struct cv_rot_status {
  char state[16];
  char id[17];
  char started[32]; /* RFC 3339, when keymgr began it */
  uint64_t done, total;
  double rate_mib_s, limit_mib_s;
  int64_t eta_s;
  char journal[8];
  uint64_t step_start, step_len;
  uint64_t steps; /* steps done by this process */
  char error[256];
};
void cv_vol_rotate_status (struct cv_vol *v, struct cv_rot_status *st);

/* --- Key state: the key watch, revocation, resume, reload -------------- */

enum cv_key_state { CV_KEY_UNLOCKED = 0, CV_KEY_GRACE, CV_KEY_REVOKED };
/* "unlocked", "grace", "revoked". */
const char *cv_key_state_name (enum cv_key_state s);

/* What the key watch does (plugin key-check=, key-grace=, on-unreachable=,
 * resume=). */
struct cv_watch_opts {
  unsigned interval_s;    /* key-check=SECONDS, default 60; 0: no watch */
  unsigned grace_s;       /* key-grace=SECONDS, default 900 */
  bool serve_unreachable; /* on-unreachable=serve (default fail) */
  bool resume;            /* resume=true (default) */
};
#define CV_WATCH_OPTS_DEFAULT                                                  \
  {                                                                            \
    .interval_s = 60, .grace_s = 900, .serve_unreachable = false,              \
    .resume = true                                                             \
  }

/* A snapshot of a volume's key state and counters (control `status`). */
struct cv_vol_status {
  enum cv_key_state state;
  int64_t wrap_id; /* the wrap in use (that unlocked / is checked) */
  char wrap_type[16];
  char cause[256];          /* why revoked / in grace; "" when unlocked */
  char last_check[32];      /* RFC 3339 UTC, "" before the first */
  char last_outcome[256];   /* "ok", or what failed (no secrets) */
  char last_request_id[80]; /* KMS request id of the last check, or "" */
  char next_check[32];      /* RFC 3339 UTC, "" when no watch */
  /* Requests (NBD reads, writes, zeroes, flushes): served; refused (EPERM)
   * while the key was revoked; failed with any other error (I/O errors,
   * beyond the end, a volume left stale by a rotation step). */
  uint64_t served, refused, failed;
  uint64_t bytes_read, bytes_written;
  /* Key checks (cv_vol_check_key: the watch's and the operator's) by
   * outcome: the key usable, found revoked, the key service unreachable. */
  uint64_t checks_ok, checks_revoked, checks_unreachable;
  /* Wall time (unix seconds) the key was last found usable: its unlock at
   * open, a resume, or a successful check. */
  int64_t last_ok;
  enum cv_xts_impl xts_impl; /* the XTS implementation serving it */
};
void cv_vol_get_status (struct cv_vol *v, struct cv_vol_status *st);

/* The operator's and the watch's actions; each returns 0 or -errno (logged
 * once) and emits an event (below). They are serialised with each other;
 * requests in flight complete whole before a change of the key.
 * cv_vol_check_key: one check now (cv_wrap_check) with the kept
 * credentials (a passphrase wrap in use passes without running its KDF:
 * nothing can revoke a passphrase). Unlocked: a definitive failure revokes, a
 * transient one enters grace and, grace_s after the last successful check,
 * revokes (unless serve_unreachable). Revoked: a success resumes (unless resume
 * = false). Returns 0 when the key was usable, else the check's -errno
 * (-EKEYREVOKED when revoked and resume = false: nothing is asked).
 * cv_vol_revoke (the operator's lock): wipe the DEK (both during a DEK
 * rotation) and every thread's cipher state; from then on requests fail
 * with -EPERM, until cv_vol_resume: checks that find the key usable do not
 * end an operator's lock. 0 if it was revoked already.
 * cv_vol_resume (unlock): unwrap the wrap in use again, authenticate the
 * header with it (during a DEK rotation, recover the old DEK too) and serve
 * again; it ends an operator's lock.
 * 0 if not revoked; -EPERM when resume = false (a revocation is final until
 * restart); -ENOKEY when no credentials were kept; else the check's error.
 * cv_vol_reload: re-read the header (under the header lock) and use it:
 * refused with -EINVAL when its DEK (MAC and key check value under the held
 * DEK) or its geometry (uuid, size, sector size, data offset) differs; when
 * the wrap in use is gone, another wrap that the kept credentials open is
 * taken, else -ENOKEY and the previous header stays. -EPERM while revoked
 * (the DEK is needed to authenticate the header). */
int cv_vol_check_key (struct cv_vol *v);
int cv_vol_revoke (struct cv_vol *v, const char *cause);
int cv_vol_resume (struct cv_vol *v);
int cv_vol_reload (struct cv_vol *v);
/* cv_vol_commit_header: write a header that cryptvol-keymgr made (copy: the
 * bytes of its copy 0, cv_hdr_encode, trailing zeros may be cut; len no more
 * than CV_HDR_COPY_SIZE) for a volume whose store keymgr cannot write while
 * it is served (an RBD image, whose exclusive lock the server holds). Under
 * the header lock: refused with -ESTALE unless it was made from the header
 * on disk (the same seqid); else it must pass cv_vol_reload's checks, or be
 * the beginning of a DEK rotation that this server can take up (its new DEK
 * opens with the kept credentials and records the DEK served). Then it is
 * committed, the seal sector written for a new generation, and v serves
 * with it (a rotation is taken up by cv_vol_rotate_start); *seqid: the
 * committed header's. -EBADMSG: not a
 * header copy; -E2BIG; -EROFS; -EPERM while revoked; -EINVAL, -ENOKEY as
 * cv_vol_reload. Nothing is written unless every check holds. */
int cv_vol_commit_header (struct cv_vol *v, const uint8_t *copy, size_t len,
                          uint64_t *seqid);
/* The seqid of the header being served (a served volume's header is
 * replaced by reloads and by every step of an online DEK rotation: use this,
 * not cv_vol_header, while it is served). */
uint64_t cv_vol_seqid (struct cv_vol *v);

/* The watch thread (one per process, for every volume added; started after
 * nbdkit forks, from .after_fork; stopped at unload, before cv_vol_close).
 * cv_watch_add sets v's options (a volume may be added before or after the
 * start; interval_s 0 only sets the options); its first check comes at a
 * random point of the first interval, then every interval_s. cv_watch_wake:
 * check v now. Return 0 or -errno (logged). */
int cv_watch_start (void);
int cv_watch_add (struct cv_vol *v, const struct cv_watch_opts *o);
void cv_watch_wake (struct cv_vol *v);
void cv_watch_stop (void);

/* Events for the server's audit log: one JSON object per event:
 * {"event":"unlock","wrap":0,"request_id":"..."},
 * {"event":"check","outcome":"ok"|"revoked"|"unreachable","error":"...",
 *  "request_id":"..."}, {"event":"revoke","cause":"..."},
 * {"event":"grace","entered":true|false,"cause":"..."},
 * {"event":"resume","wrap":0}, {"event":"reload","seqid":N},
 * {"event":"header","seqid":N} (cv_vol_commit_header).
 * The sink adds time and volume; it is called from any thread (the watch,
 * the caller of the actions above, cv_vol_open), never with a secret; it
 * must not call back into v's actions. The event is the sink's to keep
 * (json_incref) or not. NULL: none. */
typedef void (*cv_vol_event_sink) (void *arg, struct cv_vol *v, json_t *ev);
void cv_vol_set_event_sink (cv_vol_event_sink fn, void *arg);

#endif

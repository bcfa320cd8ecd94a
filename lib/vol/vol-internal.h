/* What volume.c and rotate.c share about an open volume. Internal to lib/vol;
 * the public interface is volume.h. */
#ifndef CV_VOL_INTERNAL_H
#define CV_VOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "vol/volume.h"

#define NSTRIPES 1024 /* per-sector RMW locks, hashed */

struct cv_header;
struct cv_hdr_rotation;
struct cv_io;
struct cv_vol;

/* The online rotation engine of a served volume (rotate-online.c): one
 * thread, started by cv_vol_rotate_start, ended when the rotation is done
 * or by cv_vol_rotate_stop. Its fields are guarded by m. */
struct cv_rot_engine {
  pthread_mutex_t m;
  pthread_cond_t cv; /* stop, pause, resume, rate changes */
  pthread_t thread;
  bool made;   /* thread exists (joinable) */
  bool exited; /* and has returned */
  bool stop, paused;
  double limit;             /* MiB/s, 0: unlimited */
  struct timespec t0;       /* rate limit origin (CLOCK_MONOTONIC) */
  uint64_t since_t0;        /* bytes re-encrypted since t0 */
  char state[16];           /* cv_rot_status.state */
  char id[17], started[32]; /* of the rotation v holds; "" when none */
  char error[256];          /* of the last failed step, "" */
  uint64_t steps;
  struct {
    double t;
    uint64_t done;
  } samp[8]; /* (time, boundary) after recent steps, for the rate */
  unsigned nsamp, next;
};
struct cv_key;
struct cv_creds;

/* Requests served and the bytes they moved. */
struct cv_vol_counts {
  uint64_t served, bytes_read, bytes_written;
};

struct cv_vol {
  char *path;       /* data file, for messages */
  char *hname;      /* header file (path, or the detached header) */
  struct cv_io *io; /* the data store, through its I/O backend */
  /* The header's device (the volume itself when attached); holds locks. */
  struct cv_dev *hdev;
  /* The data store's, for its seal sector (format/header.h): hdev when
   * attached. */
  struct cv_dev *ddev;
  bool readonly;
  struct cv_header *hdr;
  struct cv_key *dek;  /* the volume's DEK (the new one during a rotation) */
  struct cv_key *odek; /* during a DEK rotation: the old DEK, else NULL */
  /* Data below it is under dek, from it under odek. Moved by the rotation
   * under the range lock over the hotzone it passes, so a request reads it
   * with __atomic_load_n and sees one value for its whole range. */
  uint64_t boundary;
  uint64_t size;             /* bytes in the data area */
  uint64_t data_offset;      /* of the data area in the data file */
  unsigned ss;               /* encryption sector size */
  size_t chunk;              /* bytes per queued I/O (cv_io_chunk) */
  enum cv_xts_impl xts_impl; /* picked at open (cv_xts_pick) */
  bool direct;
  /* The data area in the data file's read-only mapping (cv_io_map), when
   * reads decrypt from it (cv_read_path); else NULL. */
  const uint8_t *map;
  /* A rotation step failed after its hotzone was rewritten and could not be
   * finished: what is on disk may not match boundary, so the data path
   * refuses every request (-EIO) until the volume is reopened, which
   * finishes the step from its journal. */
  bool stale;
  char *uuid; /* a copy: the header may be replaced by a reload */

  /* Key state (keystate.c). Every request holds klock for reading for its
   * whole duration; a change of dek/odek/state/gen holds it for writing
   * (writer-preferring, so a revocation waits only for the requests in
   * flight). */
  pthread_rwlock_t klock;
  enum cv_key_state state;
  /* Bumped at every change of the keys: a thread whose engines were keyed
   * at another generation re-keys them (or has none, while revoked). */
  uint64_t gen;
  /* Serialises the actions (check, revoke, resume, reload) with each other,
   * so that hdr, dek and wrap_id stay put for the one running. */
  pthread_mutex_t op_lock;
  struct cv_creds *creds; /* kept for checks (keep_creds), or NULL */
  /* Revoked by the operator (control lock): only cv_vol_resume (unlock)
   * serves again; a check that finds the key usable does not. */
  bool operator_lock;
  int64_t wrap_id; /* the wrap in use */
  struct cv_watch_opts wopts;
  /* Wall time of the last successful check (or unlock, or resume): written
   * under op_lock, read by status with __atomic_load_n. */
  time_t last_ok;
  /* For status: guarded by slock. */
  pthread_mutex_t slock;
  char wrap_type[16];
  char cause[256];
  char last_check[32], last_outcome[256], last_request_id[80];
  time_t next_check;  /* wall time, 0: none (watch.c) */
  uint64_t refused;   /* requests refused while revoked (atomic) */
  uint64_t failed;    /* requests failed otherwise (atomic) */
  uint64_t checks[3]; /* by enum cv_check_class (ok, revoked, unreachable) */

  /* The range lock between client requests and the rotation step's hotzone
   * [rl_lo, rl_hi) while rl_held: during a rotation every request records
   * its range in its thread's state (volume.c) and waits on rl_cv while it
   * overlaps a held hotzone; the step waits until no recorded range
   * overlaps its own. */
  pthread_mutex_t rl_m;
  pthread_cond_t rl_cv;
  bool rl_held;
  bool rl_all; /* reads wait too (else only writes) */
  uint64_t rl_lo, rl_hi;
  unsigned rl_waits;      /* requests that waited during this hold */
  unsigned rl_waits_last; /* ... during the last one (cv_vol_range_unlock) */
  /* The step in flight, for status: its journal record is on disk and its
   * hotzone [jstart, jstart + jlen) is being rewritten; jlen 0: none. */
  uint64_t jstart, jlen;
  struct cv_rot_engine eng;

  uint64_t id;              /* unique in the process (volume.c) */
  pthread_mutex_t thr_lock; /* guards thrs and gone */
  struct cv_thr *thrs;
  /* The counts of threads whose state was freed (the live ones keep their
   * own: cv_vol_counts sums both). */
  struct cv_vol_counts gone;
  pthread_mutex_t stripe[NSTRIPES];
};

/* Take and release the range lock over the data-area bytes [lo, hi)
 * (volume.c): requests that overlap it and that it blocks wait, and those in
 * flight are waited for. It blocks writes, and reads too when all is set.
 * cv_vol_range_reads: block reads too from now on (waiting for those in
 * flight), or no longer. One holder at a time (the rotation). */
void cv_vol_range_lock (struct cv_vol *v, uint64_t lo, uint64_t hi, bool all);
void cv_vol_range_reads (struct cv_vol *v, bool block);
void cv_vol_range_unlock (struct cv_vol *v);

/* What the online engine needs of rotate.c (each called with op_lock
 * held). cv_rot_step: re-encrypt the next len bytes (journalled, under the
 * range lock; len no more than what is left) with I/O queue q and buffers
 * buf (len bytes, aligned) and jbuf (cv_rot_jbuf_size (v, len) bytes); the
 * keys are taken from v and wiped before it returns. cv_rot_finish: the
 * boundary reached the end: forget the old DEK (header, journal, memory;
 * threads re-key). Return 0 or -errno (logged). cv_rot_step_max: the step the
 * header records, capped at cap. */
int cv_rot_step (struct cv_vol *v, struct cv_io_queue *q, uint8_t *buf,
                 uint8_t *jbuf, uint64_t len);
int cv_rot_finish (struct cv_vol *v);
uint64_t cv_rot_step_max (struct cv_vol *v, uint64_t cap);
size_t cv_rot_jbuf_size (const struct cv_vol *v, uint64_t max);
/* The old DEK of the rotation h records, under its new DEK dek (compare
 * cv_rot_old_dek). */
int cv_rot_old_dek_of (struct cv_vol *v, const struct cv_header *h,
                       const struct cv_key *dek, struct cv_key **odek);

/* Is h (a header on disk, or one offered for commit: which names it in
 * messages) a DEK rotation that this server can take up: v's volume, a
 * rotation recorded at boundary 0, a wrap that opens with v's credentials
 * and the old DEK it records equal to v's DEK? Then 0 with the new DEK in
 * *dek1, the wrap that opened it in *id and the rotation in *r; else -errno
 * (logged). op_lock held. */
int cv_rot_begin_check (struct cv_vol *v, struct cv_header *h,
                        const char *which, struct cv_key **dek1, int64_t *id,
                        struct cv_hdr_rotation *r);

/* keystate.c helpers shared with rotate-online.c. cv_vol_read_header: the
 * header on disk (under the header lock unless read-only). cv_vol_differs:
 * what of h's identity and geometry (and, with rotation, its DEK rotation
 * state) differs from v ("uuid", "size", ...), or NULL. cv_vol_note_wrap:
 * the wrap in use is id (of v->hdr). */
int cv_vol_read_header (struct cv_vol *v, struct cv_header **h);
const char *cv_vol_differs (const struct cv_vol *v, const struct cv_header *h,
                            bool rotation);
void cv_vol_note_wrap (struct cv_vol *v, int64_t id);

/* Wake the engine (a resume: a rotation waiting for the key goes on). */
void cv_rot_engine_wake (struct cv_vol *v);
/* Record the rotation v holds (r), for status; kept after it is done. */
void cv_rot_engine_note (struct cv_vol *v, const struct cv_hdr_rotation *r);

/* Start and stop the engine's state (cv_vol_open, cv_vol_close). */
void cv_rot_engine_init (struct cv_vol *v);
void cv_rot_engine_fini (struct cv_vol *v);

/* Called by cv_vol_open once the DEK is known: if the header records a DEK
 * rotation, recover its old DEK into v->odek and set v->boundary, finishing
 * an interrupted step first (which needs write access). Returns 0 or -errno
 * (logged). */
int cv_rot_open (struct cv_vol *v);

/* Recover the old DEK of the DEK rotation recorded in v->hdr, under dek
 * (the new DEK) into *odek. Returns 0, -ENOENT (no rotation), -EBADMSG or
 * -errno (logged). */
int cv_rot_old_dek (struct cv_vol *v, const struct cv_key *dek,
                    struct cv_key **odek);

/* Key state set up by cv_vol_open once the volume is unlocked with wrap
 * wrap_id (emits the "unlock" event), and torn down by cv_vol_close. */
void cv_vol_key_init (struct cv_vol *v, int64_t wrap_id);
void cv_vol_key_fini (struct cv_vol *v);

/* Emit event ev (decref'd here) to the event sink, if any. */
void cv_vol_event (struct cv_vol *v, json_t *ev);

/* Wall-clock time for the key watch's grace period; tests replace it. */
extern time_t (*cv_vol_time) (void);

/* Wipe every thread's cipher engines (keystate.c; under klock for
 * writing). */
void cv_vol_wipe_threads (struct cv_vol *v);

/* Drop all threads' state (their engines hold the old keys). */
void cv_vol_drop_threads (struct cv_vol *v);

/* The requests served and bytes moved so far, over all threads (volume.c;
 * for status). */
void cv_vol_counts (struct cv_vol *v, struct cv_vol_counts *n);

#endif

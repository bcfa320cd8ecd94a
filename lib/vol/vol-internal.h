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
struct cv_io;
struct cv_key;
struct cv_creds;

struct cv_vol {
  char *path;       /* data file, for messages */
  char *hname;      /* header file (path, or the detached header) */
  struct cv_io *io; /* the data store, through its I/O backend */
  int hfd; /* header file (the volume itself when attached); holds locks */
  bool readonly;
  struct cv_header *hdr;
  struct cv_key *dek;   /* the volume's DEK (the new one during a rotation) */
  struct cv_key *odek;  /* during a DEK rotation: the old DEK, else NULL */
  uint64_t boundary;    /* data below it is under dek, from it under odek */
  uint64_t size;        /* bytes in the data area */
  uint64_t data_offset; /* of the data area in the data file */
  unsigned ss;          /* encryption sector size */
  bool direct;
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
  int64_t wrap_id;        /* the wrap in use */
  struct cv_watch_opts wopts;
  time_t last_ok; /* wall time of the last successful check (or unlock) */
  /* For status: guarded by slock. */
  pthread_mutex_t slock;
  char wrap_type[16];
  char cause[256];
  char last_check[32], last_outcome[256], last_request_id[80];
  time_t next_check; /* wall time, 0: none (watch.c) */
  /* Counters (atomic). */
  uint64_t served, refused, bytes_read, bytes_written;

  pthread_key_t tkey;
  bool tkey_made;
  pthread_mutex_t thr_lock; /* guards thrs */
  struct cv_thr *thrs;
  pthread_mutex_t stripe[NSTRIPES];
};

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

#endif

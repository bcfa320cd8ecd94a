/* What volume.c and rotate.c share about an open volume. Internal to lib/vol;
 * the public interface is volume.h. */
#ifndef CV_VOL_INTERNAL_H
#define CV_VOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define NSTRIPES 1024 /* per-sector RMW locks, hashed */

struct cv_header;
struct cv_io;
struct cv_key;

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

/* Drop all threads' state (their engines hold the old keys). */
void cv_vol_drop_threads (struct cv_vol *v);

#endif

/* Online DEK rotation: a served volume re-encrypts itself on a thread of
 * its own while its clients go on. The steps are rotate.c's, journalled as
 * offline; each holds a range lock over its hotzone, so only the requests
 * that overlap it wait (volume.c), and op_lock, so that the key actions
 * (check, revoke, resume, reload) see the header and the keys at rest.
 *
 * cryptvol-keymgr begins a rotation in the header on disk (cv_rot_prepare:
 * it has the secrets every wrap needs); the server adopts it here: the new
 * DEK is unwrapped with the server's own credentials and must seal the DEK
 * being served as the rotation's old one. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keys/keys.h"
#include "vol-internal.h"
#include "volume.h"

#define SAMPLE_WINDOW 5.0     /* seconds of steps the rate is measured over */
#define STEP_MIN (256 * 1024) /* the shortest step, when clients wait */
#define BACKOFF_MAX 60        /* seconds between retries of a failed step */

static double
mono_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Wait on the engine's condition for at most s seconds (e->m held). */
static void
wait_for (struct cv_rot_engine *e, double s)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  double end = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9 + s;
  ts.tv_sec = (time_t) end;
  ts.tv_nsec = (long) ((end - (double) ts.tv_sec) * 1e9);
  pthread_cond_timedwait (&e->cv, &e->m, &ts);
}

static void
set_state (struct cv_rot_engine *e, const char *state)
{
  snprintf (e->state, sizeof e->state, "%s", state);
}

/* Restart the rate limit's accounting from now (e->m held). */
static void
limit_reset (struct cv_rot_engine *e)
{
  clock_gettime (CLOCK_MONOTONIC, &e->t0);
  e->since_t0 = 0;
}

/* Seconds until the next step may start under the rate limit (e->m held). */
static double
limit_wait (const struct cv_rot_engine *e)
{
  if (e->limit <= 0)
    return 0;
  double t0 = (double) e->t0.tv_sec + (double) e->t0.tv_nsec / 1e9;
  return t0 + (double) e->since_t0 / (e->limit * 1048576.0) - mono_now ();
}

/* Wait until a step may run: not paused, within the rate. false: stop. */
static bool
wait_turn (struct cv_rot_engine *e)
{
  pthread_mutex_lock (&e->m);
  for (;;) {
    if (e->stop)
      break;
    if (e->paused) {
      set_state (e, "paused");
      pthread_cond_wait (&e->cv, &e->m);
      continue;
    }
    double w = limit_wait (e);
    if (w < -1) {
      /* More than a second behind (a stall, a pause of the key): the
       * limit is a ceiling, not a debt to catch up on in a burst. */
      limit_reset (e);
      break;
    }
    if (w <= 0)
      break;
    wait_for (e, w);
  }
  bool go = !e->stop;
  pthread_mutex_unlock (&e->m);
  return go;
}

/* After a step that moved the boundary from before to v->boundary. */
static void
note_step (struct cv_vol *v, uint64_t before)
{
  struct cv_rot_engine *e = &v->eng;

  pthread_mutex_lock (&e->m);
  e->since_t0 += v->boundary - before;
  e->steps++;
  e->samp[e->next].t = mono_now ();
  e->samp[e->next].done = v->boundary;
  e->next = (e->next + 1) % ARRAY_SIZE (e->samp);
  if (e->nsamp < ARRAY_SIZE (e->samp))
    e->nsamp++;
  e->error[0] = '\0';
  if (!e->paused)
    set_state (e, "running");
  pthread_mutex_unlock (&e->m);
}

/* A step failed: say so in the status, wait before the next try (or until
 * stopped). */
static void
note_failure (struct cv_vol *v, unsigned *backoff)
{
  struct cv_rot_engine *e = &v->eng;

  pthread_mutex_lock (&e->m);
  set_state (e, "failed");
  snprintf (e->error, sizeof e->error, "%s",
            cv_log_last_error ()[0] ? cv_log_last_error () : "step failed");
  if (!e->stop && !v->stale)
    wait_for (e, *backoff);
  pthread_mutex_unlock (&e->m);
  if (*backoff < BACKOFF_MAX)
    *backoff *= 2;
}

/* The next step's length: halved (down to STEP_MIN) after a step that
 * client requests waited for, doubled back (up to max) after one none did.
 * So a rotation with the volume to itself runs the longest steps, and busy
 * clients wait for short ones only. */
static uint64_t
next_step (const struct cv_vol *v, uint64_t step, uint64_t max)
{
  uint64_t min = STEP_MIN / v->ss * v->ss;

  if (v->rl_waits_last > 0)
    step = step / 2 / v->ss * v->ss;
  else
    step *= 2;
  if (step < min)
    step = min;
  return step > max ? max : step;
}

/* The engine's I/O queue, made (again, after it failed) on first use. */
static int
engine_queue (struct cv_vol *v, struct cv_io_queue **q)
{
  if (*q && cv_io_queue_error (*q) < 0) {
    cv_io_queue_free (*q);
    *q = NULL;
  }
  return *q ? 0 : cv_io_queue_new (v->io, 1, q);
}

static void *
engine_main (void *arg)
{
  struct cv_vol *v = arg;
  struct cv_rot_engine *e = &v->eng;
  pthread_mutex_lock (&v->op_lock); /* v->hdr: a reload may replace it */
  uint64_t max = cv_rot_step_max (v, CV_ROT_STEP_ONLINE), step = max;
  pthread_mutex_unlock (&v->op_lock);
  uint8_t *buf = NULL;
  CLEANUP_FREE uint8_t *jbuf = malloc (cv_rot_jbuf_size (v, max));
  struct cv_io_queue *q = NULL;
  unsigned backoff = 1;

  pthread_setname_np (pthread_self (), "cv-rotate"); /* top -H, perf */

  if (posix_memalign ((void **) &buf, 4096, max) != 0 || !jbuf) {
    buf = NULL;
    cv_err ("%s: out of memory for the rotation's buffers", v->path);
    pthread_mutex_lock (&e->m);
    set_state (e, "failed");
    snprintf (e->error, sizeof e->error, "out of memory");
    pthread_mutex_unlock (&e->m);
  }
  while (buf && wait_turn (e)) {
    pthread_mutex_lock (&v->op_lock);
    if (v->state == CV_KEY_REVOKED) {
      pthread_mutex_unlock (&v->op_lock);
      /* Until a resume wakes it (cv_rot_engine_wake), or a second. */
      pthread_mutex_lock (&e->m);
      set_state (e, "waiting");
      if (!e->stop
          && __atomic_load_n (&v->state, __ATOMIC_RELAXED) == CV_KEY_REVOKED)
        wait_for (e, 1);
      pthread_mutex_unlock (&e->m);
      continue;
    }
    uint64_t before = v->boundary;
    uint64_t len = v->size - before < step ? v->size - before : step;
    bool last = before == v->size;
    int rc;
    if (v->stale)
      rc = -EIO;
    else if (last)
      rc = cv_rot_finish (v);
    else if ((rc = engine_queue (v, &q)) == 0
             && (rc = cv_rot_step (v, q, buf, jbuf, len)) == 0)
      step = next_step (v, step, max);
    pthread_mutex_unlock (&v->op_lock);
    if (rc < 0) {
      if (v->stale)
        cv_err ("%s: the DEK rotation stops: the volume must be opened "
                "again (restart the server) to finish its step",
                v->path);
      note_failure (v, &backoff);
      if (v->stale)
        break;
      continue;
    }
    backoff = 1;
    if (last) {
      pthread_mutex_lock (&e->m);
      set_state (e, "done");
      pthread_mutex_unlock (&e->m);
      cv_info ("%s: DEK rotation finished: every sector is under the new "
               "DEK; the old one is wiped",
               v->path);
      cv_vol_event (v, json_pack ("{s:s, s:s}", "event", "rotation", "phase",
                                  "finished"));
      break;
    }
    note_step (v, before);
  }
  free (buf);
  cv_io_queue_free (q);
  pthread_mutex_lock (&e->m);
  e->exited = true;
  pthread_mutex_unlock (&e->m);
  return NULL;
}

int
cv_rot_begin_check (struct cv_vol *v, struct cv_header *h, const char *which,
                    struct cv_key **dek1, int64_t *id,
                    struct cv_hdr_rotation *r)
{
  CLEANUP_KEY struct cv_key *k = NULL, *odek = NULL;
  struct cv_wrap_sel sel = { .n = 0 }, *selp = NULL;
  const char *what;
  int rc;

  if (!v->creds) {
    cv_err ("%s: cannot take up a DEK rotation: the server kept no "
            "credentials to unwrap the new DEK with (key-check=0 and no "
            "control=); restart it, which continues the rotation",
            v->path);
    return -ENOKEY;
  }
  if ((what = cv_vol_differs (v, h, false))) {
    cv_err ("%s: %s has another %s than the one being served; restart the "
            "server to use it",
            v->hname, which, what);
    return -EINVAL;
  }
  if ((rc = cv_hdr_rotation_get (h, v->hname, r)) == -ENOENT) {
    cv_err ("%s: no DEK rotation is recorded in %s: begin one with "
            "cryptvol-keymgr rotate-dek %s --control SOCKET",
            v->hname, which, v->path);
    return rc;
  }
  if (rc == 0 && r->boundary != 0) {
    cv_err ("%s: %s records a DEK rotation already %llu bytes along that "
            "this server did not run; restart the server to continue it",
            v->hname, which, (unsigned long long) r->boundary);
    return -EINVAL;
  }
  if (rc < 0)
    return rc;
  /* The wrap in use, re-made for the new DEK, else any that opens. */
  if (cv_hdr_wrap_find (h, v->wrap_id, NULL) == 0) {
    sel.item[sel.n++].id = v->wrap_id;
    sel.except = -1;
    selp = &sel;
  }
  if ((rc = cv_unlock (h, v->hname, v->creds, selp, &k, id)) < 0
      || (rc = cv_rot_old_dek_of (v, h, k, &odek)) < 0)
    return rc;
  if (odek->len != v->dek->len
      || CRYPTO_memcmp (odek->b, v->dek->b, odek->len) != 0) {
    cv_err ("%s: the DEK rotation recorded in %s was begun from another DEK "
            "than the one being served (the header was replaced?); the "
            "server goes on with its DEK%s",
            v->hname, which,
            strcmp (which, "the header on disk") == 0
                ? ": restart it to use the header on disk"
                : "");
    return -EINVAL;
  }
  *dek1 = STEAL (k);
  return 0;
}

/* Adopt the rotation cryptvol-keymgr recorded in the header on disk
 * (op_lock held): see cv_vol_rotate_start. */
static int
adopt (struct cv_vol *v)
{
  CLEANUP_KEY struct cv_key *dek1 = NULL;
  struct cv_header *h = NULL;
  struct cv_hdr_rotation r;
  int64_t id = -1;
  int rc;

  if ((rc = cv_vol_read_header (v, &h)) < 0)
    return rc;
  if ((rc = cv_rot_begin_check (v, h, "the header on disk", &dek1, &id, &r))
      < 0)
    goto out;
  /* No request is in flight while the keys change: from here on they
   * record their ranges (volume.c). */
  pthread_rwlock_wrlock (&v->klock);
  struct cv_header *old = v->hdr;
  v->hdr = h;
  h = old;
  v->odek = v->dek;
  v->dek = STEAL (dek1);
  __atomic_store_n (&v->boundary, 0, __ATOMIC_RELEASE);
  cv_vol_wipe_threads (v);
  v->gen++;
  pthread_rwlock_unlock (&v->klock);
  cv_vol_note_wrap (v, id);
  cv_rot_engine_note (v, &r);
  cv_info ("%s: DEK rotation %s taken up: re-encrypting %llu bytes while "
           "serving",
           v->path, r.id, (unsigned long long) v->size);
  cv_vol_event (v, json_pack ("{s:s, s:s, s:s}", "event", "rotation", "phase",
                              "adopted", "id", r.id));
out:
  cv_hdr_free (h);
  return rc;
}

/* Is rate not a rate (MiB/s, 0 unlimited)? Then say so. */
static bool
bad_rate (double rate)
{
  if (isfinite (rate) && rate >= 0)
    return false;
  cv_err ("rate %g MiB/s: give a number of MiB/s, 0 for unlimited", rate);
  return true;
}

int
cv_vol_rotate_start (struct cv_vol *v, double rate_mib_s)
{
  struct cv_rot_engine *e = &v->eng;
  int rc = 0;

  if (bad_rate (rate_mib_s))
    return -EINVAL;
  pthread_mutex_lock (&v->op_lock);
  if (v->readonly) {
    cv_err ("%s: served read-only; a DEK rotation needs it served for "
            "writing",
            v->path);
    rc = -EROFS;
  } else if (v->state == CV_KEY_REVOKED) {
    cv_err ("%s: the key is revoked; unlock the volume before rotating its "
            "DEK",
            v->path);
    rc = -EPERM;
  } else if (!v->odek)
    rc = adopt (v);
  pthread_mutex_unlock (&v->op_lock);
  if (rc < 0)
    return rc;

  pthread_mutex_lock (&e->m);
  e->limit = rate_mib_s;
  limit_reset (e);
  if (e->made && !e->exited) {
    pthread_cond_broadcast (&e->cv); /* running: a new rate */
    pthread_mutex_unlock (&e->m);
    return 0;
  }
  pthread_mutex_unlock (&e->m);
  if (e->made) {
    pthread_join (e->thread, NULL); /* an earlier rotation's, done */
    e->made = false;
  }
  e->exited = e->stop = e->paused = false;
  e->steps = e->nsamp = e->next = 0;
  e->error[0] = '\0';
  set_state (e, "running");
  if ((rc = pthread_create (&e->thread, NULL, engine_main, v)) != 0) {
    cv_err ("%s: cannot start the DEK rotation thread: %s; the rotation "
            "continues when the server restarts",
            v->path, strerror (rc));
    set_state (e, "idle");
    return -rc;
  }
  e->made = true;
  return 0;
}

/* Is the engine running (e->m held)? Else say so. */
static bool
running (struct cv_vol *v)
{
  if (v->eng.made && !v->eng.exited)
    return true;
  cv_err ("%s: no DEK rotation is running%s", v->path,
          v->odek ? " (one is recorded: start it with cryptvol-keymgr "
                    "rotate-dek --control)"
                  : "");
  return false;
}

int
cv_vol_rotate_pause (struct cv_vol *v)
{
  struct cv_rot_engine *e = &v->eng;
  int rc = 0;

  pthread_mutex_lock (&e->m);
  if (!running (v))
    rc = -ENOENT;
  else if (!e->paused) {
    e->paused = true;
    set_state (e, "pausing"); /* "paused" once the step in flight ends */
    pthread_cond_broadcast (&e->cv);
  }
  pthread_mutex_unlock (&e->m);
  if (rc == 0)
    cv_info ("%s: DEK rotation paused (after the step in flight)", v->path);
  return rc;
}

int
cv_vol_rotate_resume (struct cv_vol *v)
{
  struct cv_rot_engine *e = &v->eng;
  int rc = 0;

  pthread_mutex_lock (&e->m);
  if (!running (v))
    rc = -ENOENT;
  else if (e->paused) {
    e->paused = false;
    set_state (e, "running");
    limit_reset (e);
    pthread_cond_broadcast (&e->cv);
  }
  pthread_mutex_unlock (&e->m);
  if (rc == 0)
    cv_info ("%s: DEK rotation resumed", v->path);
  return rc;
}

int
cv_vol_rotate_set_rate (struct cv_vol *v, double rate_mib_s)
{
  struct cv_rot_engine *e = &v->eng;
  int rc = 0;

  if (bad_rate (rate_mib_s))
    return -EINVAL;
  pthread_mutex_lock (&e->m);
  if (!running (v))
    rc = -ENOENT;
  else {
    e->limit = rate_mib_s;
    limit_reset (e);
    pthread_cond_broadcast (&e->cv);
  }
  pthread_mutex_unlock (&e->m);
  return rc;
}

void
cv_vol_rotate_stop (struct cv_vol *v)
{
  struct cv_rot_engine *e = &v->eng;

  if (!e->made)
    return;
  pthread_mutex_lock (&e->m);
  e->stop = true;
  pthread_cond_broadcast (&e->cv);
  pthread_mutex_unlock (&e->m);
  pthread_join (e->thread, NULL);
  e->made = false;
  if (strcmp (e->state, "done") != 0)
    set_state (e, "idle");
}

void
cv_vol_rotate_status (struct cv_vol *v, struct cv_rot_status *st)
{
  struct cv_rot_engine *e = &v->eng;

  memset (st, 0, sizeof *st);
  st->total = v->size;
  st->done = __atomic_load_n (&v->boundary, __ATOMIC_ACQUIRE);
  st->eta_s = -1;
  pthread_mutex_lock (&e->m);
  bool recorded = e->id[0] != '\0';
  memcpy (st->id, e->id, sizeof st->id);
  memcpy (st->started, e->started, sizeof st->started);
  if (e->made || strcmp (e->state, "done") == 0)
    snprintf (st->state, sizeof st->state, "%s", e->state);
  else
    snprintf (st->state, sizeof st->state, "%s", recorded ? "idle" : "none");
  snprintf (st->error, sizeof st->error, "%s", e->error);
  st->limit_mib_s = e->limit;
  st->steps = e->steps;
  /* The rate over the samples of the last SAMPLE_WINDOW seconds. */
  if (e->nsamp >= 2 && strcmp (e->state, "running") == 0) {
    unsigned n = ARRAY_SIZE (e->samp);
    unsigned newest = (e->next + n - 1) % n, oldest = newest;
    for (unsigned i = 1; i < e->nsamp; i++) {
      unsigned j = (newest + n - i) % n;
      if (e->samp[newest].t - e->samp[j].t > SAMPLE_WINDOW)
        break;
      oldest = j;
    }
    double dt = e->samp[newest].t - e->samp[oldest].t;
    if (dt > 0 && mono_now () - e->samp[newest].t < SAMPLE_WINDOW) {
      st->rate_mib_s = (double) (e->samp[newest].done - e->samp[oldest].done)
                       / 1048576.0 / dt;
      if (st->rate_mib_s > 0)
        st->eta_s = (int64_t) ((double) (st->total - st->done) / 1048576.0
                               / st->rate_mib_s);
    }
  }
  pthread_mutex_unlock (&e->m);
  if (strcmp (st->state, "done") == 0)
    st->eta_s = 0;
  uint64_t jlen = __atomic_load_n (&v->jlen, __ATOMIC_RELAXED);
  snprintf (st->journal, sizeof st->journal, "%s", jlen ? "step" : "clean");
  if (jlen) {
    st->step_start = __atomic_load_n (&v->jstart, __ATOMIC_RELAXED);
    st->step_len = jlen;
  }
}

void
cv_rot_engine_wake (struct cv_vol *v)
{
  pthread_mutex_lock (&v->eng.m);
  pthread_cond_broadcast (&v->eng.cv);
  pthread_mutex_unlock (&v->eng.m);
}

void
cv_rot_engine_note (struct cv_vol *v, const struct cv_hdr_rotation *r)
{
  pthread_mutex_lock (&v->eng.m);
  snprintf (v->eng.id, sizeof v->eng.id, "%s", r->id);
  snprintf (v->eng.started, sizeof v->eng.started, "%s", r->started);
  pthread_mutex_unlock (&v->eng.m);
}

void
cv_rot_engine_init (struct cv_vol *v)
{
  pthread_condattr_t a;

  pthread_mutex_init (&v->eng.m, NULL);
  pthread_condattr_init (&a);
  pthread_condattr_setclock (&a, CLOCK_MONOTONIC);
  pthread_cond_init (&v->eng.cv, &a);
  pthread_condattr_destroy (&a);
  set_state (&v->eng, "idle");
}

void
cv_rot_engine_fini (struct cv_vol *v)
{
  pthread_mutex_destroy (&v->eng.m);
  pthread_cond_destroy (&v->eng.cv);
}

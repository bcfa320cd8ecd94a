/* The key watch: one thread that checks the key of every volume added, each
 * every interval_s seconds (the first at a random point of the first
 * interval, so that many servers started together do not ask their key
 * service at once), sooner when woken. It waits on a condition variable
 * with a deadline: no polling. A check runs with no lock of the watch held,
 * so waking or adding a volume never waits for a key service. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "crypto/prim.h"
#include "vol-internal.h"
#include "volume.h"

struct entry {
  struct cv_vol *v;
  unsigned interval_s;
  struct timespec due; /* CLOCK_MONOTONIC */
  bool wake;
};

static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcond;
static struct entry *ents;
static size_t nents;
static pthread_t thread;
static bool running, stopping;

static void
mono (struct timespec *ts)
{
  clock_gettime (CLOCK_MONOTONIC, ts);
}

static bool
before (const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec
         || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Schedule e's next check ms milliseconds from now (wlock held); the
 * volume's status shows it in wall-clock time. */
static void
schedule (struct entry *e, uint64_t ms)
{
  mono (&e->due);
  e->due.tv_sec += (time_t) (ms / 1000);
  e->due.tv_nsec += (long) (ms % 1000) * 1000000;
  if (e->due.tv_nsec >= 1000000000) {
    e->due.tv_sec++;
    e->due.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock (&e->v->slock);
  e->v->next_check = time (NULL) + (time_t) ((ms + 999) / 1000);
  pthread_mutex_unlock (&e->v->slock);
}

static void *
loop (void *arg)
{
  pthread_mutex_lock (&wlock);
  while (!stopping) {
    struct timespec now, *first = NULL;
    struct entry *due = NULL;

    mono (&now);
    for (size_t i = 0; i < nents && !due; i++)
      if (ents[i].wake || !before (&now, &ents[i].due))
        due = &ents[i];
      else if (!first || before (&ents[i].due, first))
        first = &ents[i].due;
    if (due) {
      struct cv_vol *v = due->v;
      due->wake = false;
      schedule (due, (uint64_t) due->interval_s * 1000);
      pthread_mutex_unlock (&wlock);
      cv_vol_check_key (v); /* logs and records its outcome */
      pthread_mutex_lock (&wlock);
    } else if (first)
      pthread_cond_timedwait (&wcond, &wlock, first);
    else
      pthread_cond_wait (&wcond, &wlock);
  }
  pthread_mutex_unlock (&wlock);
  return NULL;
}

int
cv_watch_start (void)
{
  pthread_condattr_t a;
  int rc = 0;

  pthread_mutex_lock (&wlock);
  if (!running) {
    pthread_condattr_init (&a);
    pthread_condattr_setclock (&a, CLOCK_MONOTONIC);
    pthread_cond_init (&wcond, &a);
    pthread_condattr_destroy (&a);
    stopping = false;
    if ((rc = pthread_create (&thread, NULL, loop, NULL)) != 0) {
      pthread_cond_destroy (&wcond);
      cv_err ("cannot start the key watch thread: %s", strerror (rc));
      rc = -rc;
    } else
      running = true;
  }
  pthread_mutex_unlock (&wlock);
  return rc;
}

int
cv_watch_add (struct cv_vol *v, const struct cv_watch_opts *o)
{
  uint32_t r = 0;
  int rc = 0;

  pthread_mutex_lock (&v->op_lock);
  v->wopts = *o;
  pthread_mutex_unlock (&v->op_lock);
  if (o->interval_s == 0)
    return 0;
  if (!v->creds) {
    cv_err ("%s: key-check=%u needs the credentials kept (keep_creds)", v->path,
            o->interval_s);
    return -EINVAL;
  }
  cv_random (&r, sizeof r);
  pthread_mutex_lock (&wlock);
  struct entry *n = realloc (ents, (nents + 1) * sizeof *n);
  if (!n) {
    cv_err ("%s: out of memory for the key watch", v->path);
    rc = -ENOMEM;
  } else {
    ents = n;
    ents[nents] = (struct entry){ .v = v, .interval_s = o->interval_s };
    schedule (&ents[nents++], r % ((uint64_t) o->interval_s * 1000));
    if (running)
      pthread_cond_signal (&wcond);
  }
  pthread_mutex_unlock (&wlock);
  return rc;
}

void
cv_watch_wake (struct cv_vol *v)
{
  pthread_mutex_lock (&wlock);
  for (size_t i = 0; i < nents; i++)
    if (ents[i].v == v) {
      ents[i].wake = true;
      if (running)
        pthread_cond_signal (&wcond);
    }
  pthread_mutex_unlock (&wlock);
}

void
cv_watch_stop (void)
{
  pthread_mutex_lock (&wlock);
  bool was = running;
  stopping = true;
  if (was)
    pthread_cond_signal (&wcond);
  pthread_mutex_unlock (&wlock);
  if (was) {
    pthread_join (thread, NULL);
    pthread_cond_destroy (&wcond);
  }
  pthread_mutex_lock (&wlock);
  for (size_t i = 0; i < nents; i++) {
    pthread_mutex_lock (&ents[i].v->slock);
    ents[i].v->next_check = 0;
    pthread_mutex_unlock (&ents[i].v->slock);
  }
  free (ents);
  ents = NULL;
  nents = 0;
  running = false;
  pthread_mutex_unlock (&wlock);
}

/* The SIGBUS guard (common/sigbus.h): reads of a shared mapping whose file
 * was truncated underneath fail cleanly in every thread, again and again,
 * even in a thread that blocked SIGBUS; the process lives. A SIGBUS that is
 * not a guarded read (an unguarded access, an access outside the guarded
 * range, a signal sent by kill) still kills the process by SIGBUS. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/sigbus.h"
#include "harness.h"

#define FILESIZE (1024 * 1024)
#define KEPT (256 * 1024) /* bytes left after the truncation */
#define NTHREADS 8
#define ROUNDS 2000

static const uint8_t *map;

/* What fn reads: n bytes at off of the mapping, summed. */
struct job {
  size_t off, n;
  unsigned sum;
};

static int
read_job (void *arg)
{
  struct job *j = arg;
  const volatile uint8_t *p = map + j->off;

  for (size_t i = 0; i < j->n; i++)
    j->sum += p[i];
  return 7; /* passed through when nothing faults */
}

struct worker {
  pthread_t tid;
  unsigned id;
  bool block; /* block SIGBUS in this thread before its first use */
  unsigned caught, ok, wrong;
};

/* Alternate reads past the cut (must fault, at the right offset) and before
 * it (must succeed with the file's bytes). */
static void *
worker (void *arg)
{
  struct worker *w = arg;

  if (w->block) {
    sigset_t bus;
    sigemptyset (&bus);
    sigaddset (&bus, SIGBUS);
    pthread_sigmask (SIG_BLOCK, &bus, NULL);
  }
  for (unsigned r = 0; r < ROUNDS; r++) {
    size_t past
        = KEPT + (size_t) ((r * 4099 + w->id * 65537) % (FILESIZE - KEPT));
    struct job bad = { .off = past, .n = 64 };
    uint64_t at = 0;
    int rc = cv_sigbus_run (map + past, 4096, read_job, &bad, &at);
    if (rc == -EFAULT && at == 0)
      w->caught++;
    else
      w->wrong++;

    struct job good = { .off = (r * 512) % KEPT, .n = 512 };
    rc = cv_sigbus_run (map, KEPT, read_job, &good, NULL);
    unsigned want = 0;
    for (size_t i = good.off; i < good.off + good.n; i++)
      want += (uint8_t) i;
    if (rc == 7 && good.sum == want)
      w->ok++;
    else
      w->wrong++;
  }
  return NULL;
}

/* The SIGBUS handler installed before the guard's, in the chaining test. */
static void
earlier_handler (int sig, siginfo_t *si, void *uc)
{
  _exit (42);
}

/* In a child: how it ends. how: 0 an unguarded read past the cut, 1 a
 * guarded read past the cut outside the guarded range, 2 kill (SIGBUS) from
 * inside a guard, 3 an unguarded read past the cut with a handler installed
 * before the guard's. Returns the signal that ended it, or 1000 + its exit
 * status. */
static int
child_ends (int how)
{
  pid_t pid = fork ();
  int status;

  if (pid < 0)
    exit (99);
  if (pid == 0) {
    struct job j = { .off = KEPT + 8192, .n = 1 };
    if (how == 3) {
      struct sigaction sa
          = { .sa_sigaction = earlier_handler, .sa_flags = SA_SIGINFO };
      sigemptyset (&sa.sa_mask);
      sigaction (SIGBUS, &sa, NULL);
      struct job none = { .n = 0 };
      cv_sigbus_run (map, 1, read_job, &none, NULL); /* installs ours */
    }
    if (how == 0 || how == 3)
      read_job (&j);
    else if (how == 1)
      cv_sigbus_run (map, KEPT, read_job, &j, NULL);
    else {
      j.off = 0;
      kill (getpid (), SIGBUS);
      cv_sigbus_run (map, FILESIZE, read_job, &j, NULL);
    }
    _exit (0);
  }
  if (waitpid (pid, &status, 0) != pid)
    exit (99);
  return WIFSIGNALED (status) ? WTERMSIG (status) : 1000 + WEXITSTATUS (status);
}

int
main (void)
{
  char path[] = "/tmp/cv-test-sigbus-XXXXXX";
  CLEANUP_CLOSE int fd = mkstemp (path);
  static uint8_t data[FILESIZE];
  struct worker w[NTHREADS];

  /* Under ASan, its handler was there first and ends the process itself
   * (exit 1) when the guard hands it a SIGBUS. */
  struct sigaction before;
  sigaction (SIGBUS, NULL, &before);
  int crash = (before.sa_flags & SA_SIGINFO) ? 1001 : SIGBUS;

  harness_init ();
  if (fd < 0)
    return 99;
  unlink (path);
  for (size_t i = 0; i < FILESIZE; i++)
    data[i] = (uint8_t) i;
  if (write (fd, data, FILESIZE) != FILESIZE)
    return 99;
  map = mmap (NULL, FILESIZE, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED)
    return 99;

  /* Before the guard is installed in this process: a handler installed
   * earlier gets the faults that are not the guard's. */
  CHECK (ftruncate (fd, KEPT) == 0, "truncate");
  int end = child_ends (3);
  CHECK (end == 1042, "an unguarded fault goes to the earlier handler: %d",
         end);
  CHECK (ftruncate (fd, FILESIZE) == 0
             && pwrite (fd, data + KEPT, FILESIZE - KEPT, KEPT)
                    == FILESIZE - KEPT,
         "restore");

  /* Nothing faults: fn's result comes back. */
  struct job all = { .off = 0, .n = FILESIZE };
  CHECK (cv_sigbus_run (map, FILESIZE, read_job, &all, NULL) == 7,
         "a read of the whole file");

  CHECK (ftruncate (fd, KEPT) == 0, "truncate");
  for (unsigned i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker){ .id = i, .block = i % 2 };
    if (pthread_create (&w[i].tid, NULL, worker, &w[i]) != 0)
      return 99;
  }
  for (unsigned i = 0; i < NTHREADS; i++) {
    pthread_join (w[i].tid, NULL);
    CHECK (w[i].caught == ROUNDS && w[i].ok == ROUNDS && w[i].wrong == 0,
           "thread %u%s: %u faults caught, %u good reads, %u wrong (of %u)", i,
           w[i].block ? " (SIGBUS blocked)" : "", w[i].caught, w[i].ok,
           w[i].wrong, ROUNDS);
  }

  /* A genuine crash stays a crash. */
  end = child_ends (0);
  CHECK (end == crash, "an unguarded read past the end: %d", end);
  end = child_ends (1);
  CHECK (end == crash, "a read outside the guarded range: %d", end);
  end = child_ends (2);
  CHECK (end == crash, "SIGBUS sent by kill: %d", end);

  /* The size restored, the same mapping reads again. */
  CHECK (pwrite (fd, data + KEPT, FILESIZE - KEPT, KEPT) == FILESIZE - KEPT,
         "restore");
  all.sum = 0;
  CHECK (cv_sigbus_run (map, FILESIZE, read_job, &all, NULL) == 7,
         "a read of the whole file after restoring it");
  munmap ((void *) map, FILESIZE);
  return harness_done ("test-common-sigbus");
}

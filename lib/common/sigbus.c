/* The SIGBUS guard (sigbus.h). Why each detail is there:
 *
 * - One process-wide handler, installed once (pthread_once) and chained: a
 *   signal disposition is per process, so the handler cannot know which
 *   thread expects a fault except through thread-local state. Faults that are
 *   not ours go to the handler installed before (ASan's, say), or, with none,
 *   the default disposition is restored and the handler returns: the faulting
 *   instruction runs again and the process dies by SIGBUS with a core, as it
 *   would without us. A SIGBUS sent by kill is raised again for the same end.
 * - Per thread, a pointer (initial-exec TLS: read in a signal handler, it
 *   must not go through __tls_get_addr, which may allocate in a dlopen'd
 *   plugin) to the active guard on the stack of cv_sigbus_run: the address
 *   range it covers and a sigjmp_buf. The handler jumps back only when
 *   si_addr is inside that range: a bug elsewhere in the same thread still
 *   crashes.
 * - sigsetjmp (env, 0), and SIGBUS unblocked again after a catch: the
 *   handler runs with SIGBUS blocked, and jumping out leaves it blocked; the
 *   next fault on a blocked SIGBUS kills the process outright. Saving the
 *   whole mask instead (sigsetjmp (env, 1)) would cost a system call on
 *   every guarded read; unblocking on the rare catch costs one there.
 * - SIGBUS unblocked in each thread at its first use: a fault while SIGBUS
 *   is blocked (nbdkit or a library may block signals in its threads) is
 *   not delivered to a handler either.
 * - No SA_ONSTACK: the signal frame then lands on the thread's own stack,
 *   below the abandoned frames of fn, where the wipe after a catch reaches
 *   it. The frame holds the vector registers at the fault, which hold the
 *   cipher's round keys. (An alternate stack helps against stack overflows,
 *   which raise SIGSEGV, not SIGBUS.)
 * - The library's destructor puts the previous handler back if ours is still
 *   installed, so that unloading the plugin leaves no dangling handler. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "common/sigbus.h"

struct guard {
  uintptr_t lo;
  size_t len;
  uint64_t fault;
  sigjmp_buf env;
};

static __thread struct guard *active
    __attribute__ ((tls_model ("initial-exec")));
static __thread bool unblocked __attribute__ ((tls_model ("initial-exec")));

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction previous;
static bool installed;

/* Not ours: hand the fault on as if we were not there. */
static void
chain (int sig, siginfo_t *si, void *uc)
{
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction) {
      previous.sa_sigaction (sig, si, uc);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler (sig);
    return;
  }
  if (si->si_code <= 0 && previous.sa_handler == SIG_IGN)
    return; /* sent, and ignored before we came */
  struct sigaction dfl = { .sa_handler = SIG_DFL };
  sigemptyset (&dfl.sa_mask);
  sigaction (SIGBUS, &dfl, NULL);
  if (si->si_code <= 0)
    raise (sig); /* sent: no instruction will fault again; pending on return */
}

static void
on_sigbus (int sig, siginfo_t *si, void *uc)
{
  struct guard *g = active;
  uintptr_t a = (uintptr_t) si->si_addr;

  if (g && si->si_code > 0 && a - g->lo < g->len) {
    g->fault = a - g->lo;
    siglongjmp (g->env, 1);
  }
  chain (sig, si, uc);
}

static void
install (void)
{
  struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };

  sigemptyset (&sa.sa_mask);
  /* Cannot fail: SIGBUS may be caught and sa is valid. */
  sigaction (SIGBUS, &sa, &previous);
  installed = true;
}

__attribute__ ((destructor)) static void
uninstall (void)
{
  struct sigaction cur;

  if (installed && sigaction (SIGBUS, NULL, &cur) == 0
      && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)
    sigaction (SIGBUS, &previous, NULL);
}

/* Overwrite the stack below the caller: the frames fn left and the signal
 * frame (registers at the fault) lie there. */
__attribute__ ((noinline)) static void
wipe_stack (void)
{
  unsigned char pad[32768];

  explicit_bzero (pad, sizeof pad);
  __asm__ volatile("" : : "r"(pad) : "memory");
}

/* Unblock SIGBUS in the calling thread. */
static void
unblock (void)
{
  sigset_t bus;

  sigemptyset (&bus);
  sigaddset (&bus, SIGBUS);
  pthread_sigmask (SIG_UNBLOCK, &bus, NULL);
}

int
cv_sigbus_run (const void *lo, size_t len, int (*fn) (void *arg), void *arg,
               uint64_t *fault)
{
  struct guard g = { .lo = (uintptr_t) lo, .len = len };
  int rc;

  pthread_once (&install_once, install);
  if (!unblocked) {
    unblock ();
    unblocked = true;
  }
  if (sigsetjmp (g.env, 0)) {
    unblock (); /* the handler's mask stayed */
    __atomic_store_n (&active, NULL, __ATOMIC_RELAXED);
    __atomic_signal_fence (__ATOMIC_SEQ_CST);
    wipe_stack ();
    if (fault)
      *fault = g.fault;
    return -EFAULT;
  }
  __atomic_store_n (&active, &g, __ATOMIC_RELAXED);
  __atomic_signal_fence (__ATOMIC_SEQ_CST);
  rc = fn (arg);
  __atomic_signal_fence (__ATOMIC_SEQ_CST);
  __atomic_store_n (&active, NULL, __ATOMIC_RELAXED);
  return rc;
}

#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fault.h"

/* The environment is read at every point (they are never on the data path),
 * so a test may set it in a forked child. */
void
cv_fault_point (const char *where)
{
  static atomic_ulong count;
  const char *kill_at = getenv ("CV_FAULT_KILL_AT");
  bool trace = getenv ("CV_FAULT_TRACE") != NULL;

  if (!kill_at && !trace)
    return;
  unsigned long n = ++count;
  if (trace)
    fprintf (stderr, "fault point %lu: %s\n", n, where);
  if (kill_at && n == strtoul (kill_at, NULL, 10)) {
    fflush (NULL);
    kill (getpid (), SIGKILL);
  }
}

/* The log sink, and messages held back while a caller decides whether they
 * are errors (see cv_log_hold). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

static cv_log_sink sink;
static bool debug_on;

/* Messages held by this thread between cv_log_hold and cv_log_release. */
struct held {
  enum cv_log_level level;
  char *msg;
};
static __thread struct {
  bool on;
  size_t n, cap;
  struct held *m;
} hold;
static __thread char last_error[512];

void
cv_log_set_sink (cv_log_sink s)
{
  sink = s;
}

void
cv_log_set_debug (bool on)
{
  debug_on = on;
}

/* Pass one message to the sink (or stderr). */
static void
emit (enum cv_log_level level, const char *msg)
{
  static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };

  if (level == CV_LOG_ERROR)
    snprintf (last_error, sizeof last_error, "%s", msg);
  if (level == CV_LOG_DEBUG && !debug_on)
    return;
  if (sink)
    sink (level, msg);
  else
    fprintf (stderr, "%s%s\n", prefix[level], msg);
}

/* Keep msg (taken) for cv_log_release; false if there is no memory. */
static bool
keep (enum cv_log_level level, char *msg)
{
  if (hold.n == hold.cap) {
    size_t cap = hold.cap ? 2 * hold.cap : 8;
    struct held *m = realloc (hold.m, cap * sizeof *m);
    if (!m)
      return false;
    hold.m = m, hold.cap = cap;
  }
  hold.m[hold.n++] = (struct held){ level, msg };
  return true;
}

void
cv_log (enum cv_log_level level, const char *fmt, ...)
{
  char *msg = NULL;
  va_list ap;

  /* Held messages may become errors: format them even when debug is off. */
  if (level == CV_LOG_DEBUG && !debug_on && !hold.on)
    return;
  va_start (ap, fmt);
  int n = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (n < 0) {
    emit (level, "(out of memory formatting a message)");
    return;
  }
  if (hold.on && keep (level, msg))
    return;
  emit (level, msg);
  free (msg);
}

void
cv_log_hold (void)
{
  hold.on = true;
}

size_t
cv_log_held (void)
{
  return hold.n;
}

void
cv_log_forget (size_t from)
{
  for (size_t i = from; i < hold.n; i++)
    free (hold.m[i].msg);
  if (from < hold.n)
    hold.n = from;
}

void
cv_log_release (size_t keep_from)
{
  hold.on = false;
  for (size_t i = 0; i < hold.n; i++) {
    emit (i < keep_from ? CV_LOG_DEBUG : hold.m[i].level, hold.m[i].msg);
    free (hold.m[i].msg);
  }
  free (hold.m);
  hold.n = hold.cap = 0;
  hold.m = NULL;
}

const char *
cv_log_last_error (void)
{
  return last_error;
}

void
cv_log_clear_last_error (void)
{
  last_error[0] = '\0';
}

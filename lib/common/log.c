#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static cv_log_sink sink;
static bool debug_on;

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

void
cv_log (enum cv_log_level level, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  if (level == CV_LOG_DEBUG && !debug_on)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);

  if (sink) {
    sink (level, msg);
    return;
  }
  static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
  fprintf (stderr, "%s%s\n", prefix[level], msg);
}

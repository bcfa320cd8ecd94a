/* A minimal unit-test harness: CHECK records a failure with its place and
 * carries on; the test's exit status is the verdict. Library messages go to a
 * capture buffer so tests can assert what a user would read. */
#ifndef CV_HARNESS_H
#define CV_HARNESS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dev.h"
#include "common/log.h"

static int harness_failures;
static int harness_checks;
static char harness_log[16384];
/* Library threads (the rotation engine, the key watch) log too. */
static pthread_mutex_t harness_log_lock = PTHREAD_MUTEX_INITIALIZER;

/* A header device for descriptor fd (common/dev.h), for the calls that
 * take one. */
#define FDEV(fd, name) ((struct cv_dev[1]){ cv_dev_file ((fd), (name)) })

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    harness_checks++;                                                          \
    if (!(cond)) {                                                             \
      harness_failures++;                                                      \
      fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
      fprintf (stderr, __VA_ARGS__);                                           \
      fputc ('\n', stderr);                                                    \
    }                                                                          \
  } while (0)

/* The captured log since the last harness_log_clear(). */
static inline const char *
harness_logged (void)
{
  return harness_log;
}

static inline void
harness_log_clear (void)
{
  pthread_mutex_lock (&harness_log_lock);
  harness_log[0] = '\0';
  pthread_mutex_unlock (&harness_log_lock);
}

static void
harness_sink (enum cv_log_level level, const char *msg)
{
  static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
  pthread_mutex_lock (&harness_log_lock);
  size_t used = strlen (harness_log);
  snprintf (harness_log + used, sizeof harness_log - used, "%s%s\n",
            prefix[level], msg);
  pthread_mutex_unlock (&harness_log_lock);
  if (getenv ("CV_TEST_VERBOSE"))
    fprintf (stderr, "  log| %s%s\n", prefix[level], msg);
}

static inline void
harness_init (void)
{
  cv_log_set_sink (harness_sink);
}

/* Make the test's scratch directory from templ ("/tmp/NAME-XXXXXX",
 * changed in place); the test exits 1 when it cannot. */
static inline void
harness_mkdtemp (char *templ)
{
  if (!mkdtemp (templ)) {
    perror ("mkdtemp");
    exit (1);
  }
}

/* Remove the scratch directory dir and everything below it. */
static inline void
harness_rm_rf (const char *dir)
{
  char cmd[600];

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system (cmd) != 0)
    fprintf (stderr, "cannot remove %s\n", dir);
}

/* Print the summary for this test program and return its exit status. */
static inline int
harness_done (const char *name)
{
  printf ("%s: %d checks, %d failed\n", name, harness_checks, harness_failures);
  return harness_failures ? 1 : 0;
}

/* Path of a file in ../shared or tests/data, from the environment the runner
 * sets (CV_SRCDIR is the source tree). */
static inline const char *
harness_srcpath (const char *rel)
{
  static char buf[4096];
  const char *src = getenv ("CV_SRCDIR");
  snprintf (buf, sizeof buf, "%s/%s", src ? src : ".", rel);
  return buf;
}

/* The hex string member name of JSON object v as a new buffer of *len bytes
 * (plus a spare NUL; caller frees), or NULL if absent or not hex. For the
 * known-answer vector files. */
#include <jansson.h>
#include "common/encode.h"
static inline uint8_t *
harness_hex_field (json_t *v, const char *name, size_t *len)
{
  const char *s = json_string_value (json_object_get (v, name));
  uint8_t *b;

  if (!s || strlen (s) % 2)
    return NULL;
  *len = strlen (s) / 2;
  b = calloc (1, *len + 1);
  if (b && cv_hex_decode (s, b, *len) < 0) {
    free (b);
    return NULL;
  }
  return b;
}

#endif

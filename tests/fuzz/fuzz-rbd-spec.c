/* libFuzzer target: the rbd: volume name parser (cv_rbd_parse, lib/io/rbd.c)
 * on arbitrary bytes. An accepted name must give a pool and an image (and
 * maybe a namespace) that are non-empty, shorter than CV_RBD_NAME_MAX, free
 * of '/', '@' and control characters, and that spell the input again; a
 * refused one leaves the spec zeroed; no message may carry a raw control
 * character (a user's typo must not reach a log as a terminal escape).
 * make fuzz builds it (build-fuzz/fuzz-rbd-spec); test-fuzz.sh runs it
 * briefly from tests/fuzz/corpus-rbd-spec. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/rbd.h"

static void
sink (enum cv_log_level level, const char *msg)
{
  for (const char *p = msg; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      abort ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (sink);
  return 0;
}

static void
check_name (const char *s, size_t size)
{
  size_t n = strnlen (s, size);

  if (n == 0 || n >= CV_RBD_NAME_MAX)
    abort ();
  for (size_t i = 0; i < n; i++)
    if (s[i] == '/' || s[i] == '@' || (unsigned char) s[i] < 0x20
        || s[i] == 0x7f)
      abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const struct cv_rbd_spec zero;
  struct cv_rbd_spec s;
  char *path = malloc (size + 1), again[3 * CV_RBD_NAME_MAX + 8];

  if (!path)
    return 0;
  memcpy (path, data, size);
  path[size] = '\0';
  memset (&s, 0xa5, sizeof s);
  if (cv_rbd_parse (path, &s) == 0) {
    if (!cv_rbd_is_path (path))
      abort ();
    check_name (s.pool, sizeof s.pool);
    check_name (s.image, sizeof s.image);
    if (s.ns[0])
      check_name (s.ns, sizeof s.ns);
    snprintf (again, sizeof again, "rbd:%s/%s%s%s", s.pool, s.ns,
              s.ns[0] ? "/" : "", s.image);
    if (strcmp (again, path) != 0)
      abort ();
  } else if (memcmp (&s, &zero, sizeof s) != 0)
    abort ();
  free (path);
  return 0;
}

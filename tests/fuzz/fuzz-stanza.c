/* libFuzzer target: the stanza file parser (cv_stanza_parse, the plugin's
 * volumes=FILE) on arbitrary bytes. Every name, key and value it reports
 * must be trimmed, free of control characters other than tab, and keys
 * made of [a-z0-9-]; the parser must not crash, leak or read out of bounds.
 * make fuzz builds it (build-fuzz/fuzz-stanza); test-fuzz.sh runs it
 * briefly from its seed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/stanza.h"

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  return 0;
}

static void
check_text (const char *s)
{
  size_t n = strlen (s);

  if (n && (strchr (" \t", s[0]) || strchr (" \t", s[n - 1])))
    abort ();
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 && *s != '\t')
      abort ();
}

static int
entry (void *arg, unsigned line, const char *name, const char *key,
       const char *value)
{
  unsigned *last = arg;

  if (line <= *last && key == NULL)
    abort (); /* a stanza header is a line of its own */
  *last = line;
  if (!name || !*name)
    abort ();
  check_text (name);
  if (key) {
    if (!*key
        || strspn (key, "abcdefghijklmnopqrstuvwxyz0123456789-")
               != strlen (key))
      abort ();
    check_text (value);
  }
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  unsigned last = 0;

  cv_stanza_parse ("fuzz", (const char *) data, size, entry, &last);
  return 0;
}

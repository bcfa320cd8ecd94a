/* The stanza file parser (stanza.h): one pass over the lines, each copied
 * into a NUL-terminated buffer before it is split. This is a parser of
 * input a server is given (tests/fuzz/fuzz-stanza.c drives it). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/stanza.h"
#include "common/text.h"

#define LINE_MAX_BYTES 4096

static bool
key_char (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Parse one line (NUL-terminated, without its newline) of stanza *name
 * (NULL before the first). 0, fn's value, or -EINVAL (logged). */
static int
parse_line (const char *file, unsigned n, char *line, char **name,
            cv_stanza_fn fn, void *arg)
{
  char *s = cv_trim_nul (line, line + strlen (line)), *eq, *key, *val;

  for (const char *p = s; *p; p++)
    if ((unsigned char) *p < 0x20 && *p != '\t') {
      cv_err ("%s:%u: control character 0x%02x: a line is text", file, n,
              (unsigned char) *p);
      return -EINVAL;
    }
  if (!*s || *s == '#' || *s == ';')
    return 0;
  if (*s == '[') {
    char *end = strchr (s, ']');
    if (!end || end[1]) {
      cv_err ("%s:%u: a stanza starts with a line \"[name]\"", file, n);
      return -EINVAL;
    }
    char *nm = cv_trim_nul (s + 1, end);
    if (!*nm || strchr (nm, '[')) {
      cv_err ("%s:%u: \"[name]\" needs a name without brackets", file, n);
      return -EINVAL;
    }
    free (*name);
    if (!(*name = strdup (nm))) {
      cv_err ("%s: out of memory", file);
      return -ENOMEM;
    }
    return fn (arg, n, *name, NULL, NULL);
  }
  if (!(eq = strchr (s, '='))) {
    cv_err ("%s:%u: expected \"key = value\", \"[name]\" or a comment", file,
            n);
    return -EINVAL;
  }
  key = cv_trim_nul (s, eq);
  val = cv_trim_nul (eq + 1, eq + 1 + strlen (eq + 1));
  for (const char *p = key; *p; p++)
    if (!key_char (*p)) {
      cv_err ("%s:%u: \"%.64s\" is not a parameter name (lower-case letters, "
              "digits and -)",
              file, n, key);
      return -EINVAL;
    }
  if (!*key) {
    cv_err ("%s:%u: \"= value\" without a parameter name", file, n);
    return -EINVAL;
  }
  if (!*name) {
    cv_err ("%s:%u: \"%s = ...\" before the first \"[name]\": every entry "
            "belongs to a stanza",
            file, n, key);
    return -EINVAL;
  }
  return fn (arg, n, *name, key, val);
}

int
cv_stanza_parse (const char *file, const char *text, size_t len,
                 cv_stanza_fn fn, void *arg)
{
  char *name = NULL, buf[LINE_MAX_BYTES + 1];
  const char *p = text, *end = text + len;
  unsigned n = 0;
  int rc = 0;

  while (rc == 0 && p < end) {
    const char *nl = memchr (p, '\n', (size_t) (end - p));
    const char *le = nl ? nl : end;
    size_t ll = (size_t) (le - p);
    n++;
    if (ll && p[ll - 1] == '\r')
      ll--;
    if (ll > LINE_MAX_BYTES) {
      cv_err ("%s:%u: line longer than %d bytes", file, n, LINE_MAX_BYTES);
      rc = -EINVAL;
      break;
    }
    if (memchr (p, '\0', ll)) {
      cv_err ("%s:%u: NUL byte: a stanza file is text", file, n);
      rc = -EINVAL;
      break;
    }
    memcpy (buf, p, ll);
    buf[ll] = '\0';
    rc = parse_line (file, n, buf, &name, fn, arg);
    p = nl ? nl + 1 : end;
  }
  free (name);
  return rc;
}

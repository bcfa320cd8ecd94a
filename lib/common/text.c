/* Spans of text read from files and tokens, and formatted strings (see
 * text.h). */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/text.h"

static bool
blank (char c)
{
  return c == '\0' || isspace ((unsigned char) c);
}

void
cv_trim (const char **s, const char **e)
{
  while (*s < *e && blank (**s))
    (*s)++;
  while (*e > *s && blank ((*e)[-1]))
    (*e)--;
}

char *
cv_trim_nul (char *s, char *e)
{
  while (s < e && blank (*s))
    s++;
  while (e > s && blank (e[-1]))
    e--;
  *e = '\0';
  return s;
}

char *
cv_strf (const char *fmt, ...)
{
  va_list ap;
  char *s;
  int n;

  va_start (ap, fmt);
  n = vasprintf (&s, fmt, ap);
  va_end (ap);
  return n < 0 ? NULL : s;
}

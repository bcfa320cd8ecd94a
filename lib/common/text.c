/* Spans of text read from files and tokens (see text.h). */
#include <ctype.h>
#include <stdbool.h>

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

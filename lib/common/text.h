/* Spans of text read from files and tokens; formatted strings. */
#ifndef CV_TEXT_H
#define CV_TEXT_H

/* Narrow the span [*s, *e) to leave out blanks at both ends: white space and
 * NUL (PKCS#11 tokens pad fixed fields with either). */
void cv_trim (const char **s, const char **e);
/* The same in place: the span [s, e) of a writable buffer trimmed, a NUL
 * written at its new end; returns its new start. */
char *cv_trim_nul (char *s, char *e);

/* A new string formatted as printf does (free it), or NULL when out of
 * memory. */
char *cv_strf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#endif

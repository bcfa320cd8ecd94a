/* Spans of text read from files and tokens. */
#ifndef CV_TEXT_H
#define CV_TEXT_H

/* Narrow the span [*s, *e) to leave out blanks at both ends: white space and
 * NUL (PKCS#11 tokens pad fixed fields with either). */
void cv_trim (const char **s, const char **e);

#endif

/* Stanza files: the format of the plugin's volumes=FILE (one stanza per
 * export, doc/nbdkit-cryptvol-plugin.pod "MANY VOLUMES"):
 *
 *   # a comment (also ";"), on a line of its own; blank lines are ignored
 *   [name]
 *   key = value
 *
 * White space around names, keys and values is dropped; a value runs to the
 * end of its line ("#" inside it is part of it). Keys are lower-case
 * letters, digits and "-". */
#ifndef CV_STANZA_H
#define CV_STANZA_H

#include <stddef.h>

/* Called for each "[name]" (key and value NULL) and each "key = value" of
 * stanza name, with the line number (from 1). Returns 0 to go on, else the
 * parse stops and returns that value. */
typedef int (*cv_stanza_fn) (void *arg, unsigned line, const char *name,
                             const char *key, const char *value);

/* Parse len bytes of text (file: its name, for messages). Returns 0, what
 * fn returned to stop, or -EINVAL after logging "FILE:LINE: what is wrong"
 * for a line that is none of the above, an entry before the first stanza, a
 * NUL or control character, or a line over 4096 bytes. -ENOMEM (logged). */
int cv_stanza_parse (const char *file, const char *text, size_t len,
                     cv_stanza_fn fn, void *arg);

#endif

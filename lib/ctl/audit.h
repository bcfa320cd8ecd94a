/* The server's audit log (plugin audit-log=PATH): one JSON object per line,
 * appended, in the schema of cryptvol-keymgr's audit log where the two
 * overlap ("time", "volume", "uuid"), with "event" naming what happened.
 * See doc/control.md. Never a secret: callers pass ids, states and causes. */
#ifndef CV_AUDIT_H
#define CV_AUDIT_H

#include <jansson.h>

struct cv_audit;

/* Open (create, mode 0600) the log at path for appending. Returns 0 or
 * -errno (logged). */
int cv_audit_open (const char *path, struct cv_audit **out);
void cv_audit_close (struct cv_audit *a);

/* Append rec (an object with "event"; not taken) with "time" and the
 * volume's path and uuid ("volume", "uuid") added, as one line in one write, so
 * that records from several threads or processes never interleave. A failure is
 * logged (once per run of failures) and otherwise ignored: the server keeps
 * serving. Safe from any thread. a == NULL: nothing. */
void cv_audit_write (struct cv_audit *a, const char *volume, const char *uuid,
                     json_t *rec);

#endif

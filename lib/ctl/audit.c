/* The server's audit log: JSON lines appended with one write(2) each. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "ctl/audit.h"

struct cv_audit {
  int fd;
  char *path;
  atomic_bool failing; /* the last write failed (and was logged) */
};

int
cv_audit_open (const char *path, struct cv_audit **out)
{
  struct cv_audit *a = calloc (1, sizeof *a);

  if (!a || !(a->path = strdup (path))) {
    cv_audit_close (a);
    cv_err ("audit log %s: out of memory", path);
    return -ENOMEM;
  }
  a->fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (a->fd < 0) {
    int rc = -errno;
    cv_err ("cannot open the audit log %s: %s; check audit-log=", path,
            strerror (errno));
    a->fd = -1;
    cv_audit_close (a);
    return rc;
  }
  *out = a;
  return 0;
}

void
cv_audit_close (struct cv_audit *a)
{
  if (!a)
    return;
  if (a->fd >= 0)
    close (a->fd);
  free (a->path);
  free (a);
}

void
cv_audit_write (struct cv_audit *a, const char *volume, const char *uuid,
                json_t *rec)
{
  char now[CV_RFC3339_LEN];

  if (!a)
    return;
  cv_now_rfc3339 (now);
  json_auto_t *r = json_copy (rec);
  if (r) {
    json_object_set_new (r, "time", json_string (now));
    json_object_set_new (r, "volume", json_string (volume));
    json_object_set_new (r, "uuid", json_string (uuid));
  }
  CLEANUP_FREE char *line
      = r ? json_dumps (r, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  size_t len = line ? strlen (line) : 0;
  CLEANUP_FREE char *nl = line ? malloc (len + 1) : NULL;
  ssize_t n = -1;
  int err = ENOMEM;

  if (nl) {
    memcpy (nl, line, len);
    nl[len++] = '\n';
    n = write (a->fd, nl, len);
    err = n < 0 ? errno : ENOSPC; /* a short write: the disk is full */
  }
  if (n == (ssize_t) len)
    atomic_store (&a->failing, false);
  else if (!atomic_exchange (&a->failing, true))
    cv_err ("cannot write the audit log %s: %s; records are lost until it "
            "can be written again",
            a->path, strerror (err));
}

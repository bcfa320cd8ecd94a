/* A volume header opened for a change of its wraps: the in-use lock is held
 * shared (offline operations such as rotate-dek wait; a serving plugin does
 * not) and the header write lock for the whole read-change-commit. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"

/* Open and lock s->name and read its header; an exit code on failure. */
static int
open_locked (struct session *s)
{
  unsigned valid;
  int rc;

  s->fd = open (s->name, O_RDWR | O_CLOEXEC);
  if (s->fd < 0) {
    int e = errno;
    cv_err ("cannot open %s: %s", s->name, strerror (e));
    return e == ENOENT ? EXIT_USAGE : EXIT_IO;
  }
  if ((rc = cv_lock_in_use (s->fd, false, false)) == -EBUSY) {
    cv_err ("%s is being changed offline by another cryptvol-keymgr "
            "(rotate-dek, restore-header or shred); try again when it ends",
            s->name);
    return EXIT_BUSY;
  }
  if (rc == 0 && (rc = cv_lock_header (s->fd, false)) == -EBUSY) {
    cv_err ("%s: another cryptvol-keymgr is changing the header; try again",
            s->name);
    return EXIT_BUSY;
  }
  if (rc < 0)
    return exit_code (rc);
  if ((rc = cv_hdr_read (s->fd, s->name, &s->h, &valid)) < 0)
    return rc == -EIO ? EXIT_IO : EXIT_HEADER;
  if (strcmp (s->name, s->volume) != 0) {
    s->dfd = open (s->volume, O_RDWR | O_CLOEXEC);
    if (s->dfd < 0) {
      int e = errno;
      cv_err ("cannot open %s (the data file, for its seal sector): %s",
              s->volume, strerror (e));
      return e == ENOENT ? EXIT_USAGE : EXIT_IO;
    }
  }
  return 0;
}

int
session_data_fd (const struct session *s, bool *attached)
{
  *attached = s->dfd < 0;
  return s->dfd >= 0 ? s->dfd : s->fd;
}

int
session_open (struct session *s, const char *volume, const char *header)
{
  *s = (struct session){ .volume = volume,
                         .name = header ? header : volume,
                         .fd = -1,
                         .dfd = -1,
                         .unlocked_by = -1 };
  int rc = open_locked (s);

  if (rc) {
    session_close (s); /* the descriptor, and with it the locks */
    return rc;
  }
  audit_volume (volume, cv_hdr_uuid (s->h));
  return 0;
}

void
session_close (struct session *s)
{
  cv_hdr_free (s->h);
  cv_key_free (s->dek);
  if (s->fd >= 0)
    close (s->fd); /* releases the locks */
  if (s->dfd >= 0)
    close (s->dfd);
  s->h = NULL;
  s->dek = NULL;
  s->fd = s->dfd = -1;
}

int
session_unlock (struct session *s, const struct cv_creds *c,
                const struct cv_wrap_sel *sel)
{
  int rc = cv_unlock (s->h, s->name, c, sel, &s->dek, &s->unlocked_by);
  bool attached, behind;

  if (rc == 0) {
    int dfd = session_data_fd (s, &attached);
    rc = cv_seal_check (dfd, s->volume, attached, s->h, s->dek, &behind);
  }
  if (rc == 0)
    rc = cv_hdr_wrap_mark_verified (s->h, s->unlocked_by);
  return rc;
}

int
session_commit (struct session *s)
{
  bool attached;
  int dfd = session_data_fd (s, &attached);

  if (!s->dek)
    return cv_hdr_commit (s->fd, s->name, s->h);
  return cv_hdr_commit_sealed (s->fd, s->name, dfd, s->volume, s->h, s->dek);
}

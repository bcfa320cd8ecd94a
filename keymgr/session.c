/* A volume header opened for a change of its wraps: the in-use lock is held
 * shared (offline operations such as rotate-dek wait; a serving plugin does
 * not) and the header write lock for the whole read-change-commit. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"

int
session_open (struct session *s, const char *volume, const char *header)
{
  unsigned valid;
  int rc;

  *s = (struct session){ .volume = volume,
                         .name = header ? header : volume,
                         .fd = -1,
                         .unlocked_by = -1 };
  s->fd = open (s->name, O_RDWR | O_CLOEXEC);
  if (s->fd < 0) {
    cv_err ("cannot open %s: %s", s->name, strerror (errno));
    return errno == ENOENT ? EXIT_USAGE : EXIT_IO;
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
  audit_volume (volume, s->h->uuid);
  return 0;
}

void
session_close (struct session *s)
{
  cv_hdr_free (s->h);
  cv_key_free (s->dek);
  if (s->fd >= 0)
    close (s->fd); /* releases the locks */
  s->h = NULL;
  s->dek = NULL;
  s->fd = -1;
}

/* Unlock with c using only the wraps of s for which keep(w, arg) is true. */
static int
unlock_some (struct session *s, const struct cv_creds *c,
             bool (*keep) (json_t *w, void *arg), void *arg,
             struct cv_key **dek, int64_t *by)
{
  struct cv_header tmp = *s->h;
  json_auto_t *wraps = json_array ();
  size_t i;
  json_t *w;

  if (!wraps)
    return -ENOMEM;
  json_array_foreach (s->h->wraps, i, w)
  {
    if (keep (w, arg))
      json_array_append (wraps, w);
  }
  tmp.wraps = wraps;
  return cv_unlock (&tmp, s->name, c, NULL, dek, by);
}

static bool
is_id (json_t *w, void *arg)
{
  return json_integer_value (json_object_get (w, "id")) == *(int64_t *) arg;
}

static bool
not_id (json_t *w, void *arg)
{
  return !is_id (w, arg);
}

int
session_unlock (struct session *s, const struct cv_creds *c)
{
  int64_t none = -1;
  int rc = unlock_some (s, c, not_id, &none, &s->dek, &s->unlocked_by);

  if (rc == 0)
    mark_verified (s, s->unlocked_by);
  return rc;
}

int
session_unlock_only (struct session *s, int64_t id, const struct cv_creds *c,
                     struct cv_key **dek)
{
  return unlock_some (s, c, is_id, &id, dek, NULL);
}

int
session_unlock_except (struct session *s, int64_t id, const struct cv_creds *c)
{
  int rc = unlock_some (s, c, not_id, &id, &s->dek, &s->unlocked_by);

  if (rc == 0)
    mark_verified (s, s->unlocked_by);
  return rc;
}

int
session_commit (struct session *s)
{
  return cv_hdr_commit (s->fd, s->name, s->h);
}

json_t *
wrap_by_id (const struct cv_header *h, int64_t id, size_t *index)
{
  size_t i;
  json_t *w;

  json_array_foreach (h->wraps, i, w)
  {
    if (json_integer_value (json_object_get (w, "id")) == id) {
      if (index)
        *index = i;
      return w;
    }
  }
  return NULL;
}

void
mark_verified (struct session *s, int64_t id)
{
  json_t *w = wrap_by_id (s->h, id, NULL);
  char now[32];

  cv_now_rfc3339 (now);
  if (w)
    json_object_set_new (w, "verified", json_string (now));
}

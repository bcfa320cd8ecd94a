/* A volume header opened for a change of its wraps: the in-use lock is held
 * shared (offline operations such as rotate-dek wait; a serving plugin does
 * not) and the header write lock for the whole read-change-commit. A served
 * volume in an RBD image cannot be written here (its server holds the
 * image's exclusive lock): with --control the header is read without locks
 * and the server commits the change, checking that it was made from the
 * header on disk (doc/control.md, commit-header). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "io/rbd.h"
#include "keymgr.h"

/* Milliseconds of CLOCK_MONOTONIC. */
static uint64_t
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* After waiting: "still locked after N s; " (or nothing with --wait 0), and
 * how to wait longer. */
static const char *
waited (char *buf, size_t len)
{
  if (keymgr_wait_s == 0)
    snprintf (buf, len, "--wait 0 was given: not waiting; ");
  else
    snprintf (buf, len,
              "still locked after waiting %u s; wait longer with --wait "
              "SECONDS, or ",
              keymgr_wait_s);
  return buf;
}

int
lock_volume (struct cv_dev *d, bool exclusive)
{
  const char *name = d->name;
  uint64_t start = now_ms (), wait_ms = (uint64_t) keymgr_wait_s * 1000, used;
  char w[128];
  int rc = cv_lock_in_use_for (d, exclusive, (unsigned) wait_ms);

  if (rc == -EBUSY) {
    /* Held exclusive: an offline change. Held shared (which only an
     * exclusive request meets): a server, or a keymgr changing the wraps. */
    if (!exclusive || cv_lock_in_use (d, false, false) == -EBUSY)
      cv_err ("%s is being changed offline by another cryptvol-keymgr "
              "(rotate-dek, restore-header or shred); %stry again when it "
              "ends (fuser -v %s lists the processes that have it open)",
              name, waited (w, sizeof w), name);
    else
      cv_err ("%s is in use (being served, or changed by another "
              "cryptvol-keymgr); %sstop the server first (fuser -v %s lists "
              "the processes that have it open)",
              name, waited (w, sizeof w), name);
    return EXIT_BUSY;
  }
  if (rc < 0)
    return exit_code (rc);
  used = now_ms () - start;
  rc = cv_lock_header_for (d, used < wait_ms ? (unsigned) (wait_ms - used) : 0);
  if (rc == -EBUSY) {
    cv_err ("%s: another cryptvol-keymgr, or the nbdkit serving it (online "
            "rotation, reload), is changing the header; %stry again (fuser -v "
            "%s lists the processes that have it open)",
            name, waited (w, sizeof w), name);
    return EXIT_BUSY;
  }
  return rc < 0 ? exit_code (rc) : 0;
}

const char *keymgr_control;

/* Open and lock s->name (the in-use lock shared, the header write lock; both
 * waited for up to --wait seconds) and read its header; an exit code on
 * failure. Remote: open read-only, without locks. */
static int
open_locked (struct session *s)
{
  unsigned valid;
  int rc;

  if ((rc = keymgr_dev_open (s->name, "header", s->remote, &s->hd)) < 0) {
    if (rc == -EBUSY && cv_rbd_is_path (s->volume))
      cv_info ("a served rbd: volume's wraps and DEK are changed through its "
               "server: give --control PATH (the server's control= socket)");
    return rc == -ENOENT ? EXIT_USAGE : exit_code (rc);
  }
  if (!s->remote && (rc = lock_volume (s->hd, false)) != 0)
    return rc;
  if ((rc = cv_hdr_read (s->hd, &s->h, &valid)) < 0)
    return rc == -EIO ? EXIT_IO : EXIT_HEADER;
  if (strcmp (s->name, s->volume) != 0
      && (rc = keymgr_dev_open (s->volume, "data file (for its seal sector)",
                                s->remote, &s->dd))
             < 0)
    return rc == -ENOENT ? EXIT_USAGE : exit_code (rc);
  return 0;
}

struct cv_dev *
session_data_dev (const struct session *s, bool *attached)
{
  *attached = !s->dd;
  return s->dd ? s->dd : s->hd;
}

int
session_open (struct session *s, const char *volume, const char *header)
{
  *s = (struct session){ .volume = volume,
                         .name = header ? header : volume,
                         .unlocked_by = -1,
                         .remote = keymgr_control && cv_rbd_is_path (volume) };
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
  cv_dev_close (s->hd); /* releases the locks */
  cv_dev_close (s->dd);
  s->h = NULL;
  s->dek = NULL;
  s->hd = s->dd = NULL;
}

int
session_unlock (struct session *s, const struct cv_creds *c,
                const struct cv_wrap_sel *sel)
{
  int rc = cv_unlock (s->h, s->name, c, sel, &s->dek, &s->unlocked_by);
  bool attached, behind;

  if (rc == 0) {
    struct cv_dev *dd = session_data_dev (s, &attached);
    rc = cv_seal_check (dd, attached, s->h, s->dek, &behind);
  }
  if (rc == 0)
    rc = cv_hdr_wrap_mark_verified (s->h, s->unlocked_by);
  return rc;
}

/* Have the server at keymgr_control commit s->h (sealed by the caller when
 * made with the DEK): it writes the header and the seal sector. 0 or -errno
 * (reported). */
static int
commit_remote (struct session *s)
{
  CLEANUP_FREE uint8_t *copy = calloc (1, CV_HDR_COPY_SIZE);
  CLEANUP_FREE char *b64 = NULL;
  json_auto_t *req = NULL, *reply = NULL;
  size_t len = CV_HDR_COPY_SIZE;
  int rc;

  if (!copy)
    return -ENOMEM;
  if ((rc = cv_hdr_encode (s->h, 0, copy)) < 0)
    return rc;
  while (len && !copy[len - 1]) /* the server pads the copy again */
    len--;
  if ((rc = cv_b64_encode (copy, len, &b64)) < 0)
    return rc;
  if (!(req = json_pack ("{s:s, s:s}", "cmd", "commit-header", "header", b64)))
    return -ENOMEM;
  if (control_request (keymgr_control, req, &reply) != 0)
    return -EIO; /* reported */
  const char *err = control_reply_error (reply);
  if (err) {
    cv_err ("%s: the server at %s did not commit the change: %s", s->volume,
            keymgr_control, err);
    return -EIO;
  }
  cv_hdr_committed (s->h);
  cv_info ("%s: header committed by the server at %s (seqid %llu)",
           s->volume, keymgr_control,
           (unsigned long long) cv_hdr_seqid (s->h));
  return 0;
}

int
session_commit (struct session *s)
{
  bool attached;
  struct cv_dev *dd = session_data_dev (s, &attached);
  int rc;

  if (s->remote) {
    if (s->dek && (rc = cv_hdr_seal (s->h, s->dek)) < 0)
      return rc;
    return commit_remote (s);
  }
  if (!s->dek)
    return cv_hdr_commit (s->hd, s->h);
  return cv_hdr_commit_sealed (s->hd, dd, s->h, s->dek);
}

/* cryptvol-keymgr backup-header and restore-header. A backup is itself a
 * detached header file (both copies), usable with --header / header= in an
 * emergency. Restore refuses a backup of another volume, one whose MAC fails,
 * and one made before a rotate-dek (its DEK is gone). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"

int
cmd_backup_header (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr backup-header VOLUME FILE [--header HDR]\n"
        "FILE is created (never overwritten); keep it as safe as the keys:\n"
        "it holds the wraps.\n";
  struct common_opts co;
  CLEANUP_DEV struct cv_dev *d = NULL;
  CLEANUP_CLOSE int out = -1;
  struct cv_header *h = NULL;
  unsigned valid;
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 2);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind], *file = argv[optind + 1];
  if ((rc = open_header (path, co.header, &d, &h, &valid)) != 0)
    return rc;
  audit_volume (path, cv_hdr_uuid (h));
  if (cv_hdr_rotating (h)) {
    cv_err ("%s: a DEK rotation is in progress; finish it (rotate-dek) before "
            "taking a backup",
            path);
    cv_hdr_free (h);
    return EXIT_BUSY;
  }
  out = open (file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    int e = errno;
    cv_err ("cannot create %s: %s%s", file, strerror (e),
            e == EEXIST ? " (refusing to overwrite it)" : "");
    cv_hdr_free (h);
    return e == EEXIST ? EXIT_USAGE : EXIT_IO;
  }
  if (ftruncate (out, CV_HDR_AREA_SIZE) < 0) {
    rc = -errno;
    cv_err ("cannot size %s: %s", file, strerror (-rc));
  } else {
    struct cv_dev od = cv_dev_file (out, file);
    rc = cv_hdr_commit (&od, h);
  }
  if (rc < 0)
    unlink (file);
  else
    report (co.json,
            json_pack ("{s:s, s:s, s:I, s:I}", "volume", path, "backup", file,
                       "seqid", (json_int_t) cv_hdr_seqid (h), "wraps",
                       (json_int_t) cv_hdr_wrap_count (h)),
            "%s: header (seqid %llu, %zu wraps) saved to %s\n", path,
            (unsigned long long) cv_hdr_seqid (h), cv_hdr_wrap_count (h), file);
  cv_hdr_free (h);
  return exit_code (rc);
}

/* Warn about each wrap of the backup bh that the current header cur no
 * longer has: restoring brings it back. */
static void
readmitted (const struct cv_header *bh, const struct cv_header *cur,
            const char *file)
{
  struct cv_wrap_info w;

  for (size_t i = 0; cv_hdr_wrap_at (bh, i, &w) == 0; i++)
    if (cv_hdr_wrap_find (cur, w.id, NULL) < 0)
      cv_warn ("restoring %s brings back wrap %lld (%s%s%s), removed since "
               "the backup was taken; remove it again with remove-wrap if it "
               "must stay out",
               file, (long long) w.id, w.type, w.ref ? " " : "",
               w.ref ? w.ref : "");
}

int
cmd_restore_header (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr restore-header VOLUME FILE [--header HDR]\n"
        "         (--keyfile FILE | --passphrase-file FILE | ...)\n"
        "Offline: stop the server first. The key proves the backup belongs\n"
        "to the volume and is not older than its last rotate-dek.\n";
  struct common_opts co;
  CLEANUP_DEV struct cv_dev *bd = NULL, *hd = NULL;
  struct cv_header *bh = NULL, *cur = NULL;
  CLEANUP_KEY struct cv_key *dek = NULL;
  unsigned valid;
  int ec = 0; /* an exit code from lock_volume */
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 2);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind], *file = argv[optind + 1];
  const char *name = co.header ? co.header : path;
  if ((rc = open_header (file, NULL, &bd, &bh, &valid)) != 0)
    return rc;
  audit_volume (path, cv_hdr_uuid (bh));
  if ((rc = keymgr_dev_open (name, "header", false, &hd)) < 0)
    goto out;
  if ((ec = lock_volume (hd, true)) != 0)
    goto out;
  if ((rc = common_creds (&co, has_wrap_type (bh, "passphrase") && isatty (0),
                          false))
      < 0)
    goto out;

  rc = cv_hdr_read (hd, &cur, &valid);
  if (rc == 0) {
    /* The current header decides: same volume, not mid-rotation, and the
     * backup authenticates under the volume's current DEK. */
    if (strcmp (cv_hdr_uuid (cur), cv_hdr_uuid (bh)) != 0) {
      cv_err ("%s is a header of volume %s, not of %s (volume %s); refusing",
              file, cv_hdr_uuid (bh), name, cv_hdr_uuid (cur));
      rc = -EBADMSG;
    } else if (cv_hdr_rotating (cur)) {
      cv_err ("%s: a DEK rotation is in progress; finish it with rotate-dek "
              "instead of restoring",
              name);
      rc = -EBUSY;
    } else if ((rc
                = cv_unlock (cur, name, &co.creds, &co.unlock_sel, &dek, NULL))
               == 0) {
      rc = cv_hdr_authenticate (bh, dek);
      if (rc == -EKEYREJECTED) {
        cv_err ("%s holds a data key that %s no longer uses (it was replaced "
                "by rotate-dek): restoring it would make all data "
                "unreadable; refusing",
                file, name);
        rc = -ESTALE;
      } else if (rc == -EBADMSG)
        cv_err ("%s fails its MAC: it was altered; refusing", file);
    }
    if (rc == 0) {
      cv_hdr_supersede (bh, cur);
      readmitted (bh, cur, file);
    }
  } else {
    /* No usable header to compare with: the backup must at least unlock. */
    cv_warn ("%s has no readable header: the backup cannot be checked "
             "against a later rotate-dek",
             name);
    rc = cv_unlock (bh, file, &co.creds, &co.unlock_sel, &dek, NULL);
  }
  if (rc == 0) {
    CLEANUP_DEV struct cv_dev *dd = NULL;
    if (!co.header
        || (rc = keymgr_dev_open (path, "data file (for its seal sector)",
                                  false, &dd))
               == 0)
      rc = cv_hdr_commit_sealed (hd, co.header ? dd : hd, bh, dek);
  }
  if (rc == 0)
    report (co.json,
            json_pack ("{s:s, s:s, s:I}", "volume", name, "restored_from", file,
                       "wraps", (json_int_t) cv_hdr_wrap_count (bh)),
            "%s: header restored from %s (%zu wraps)\n", name, file,
            cv_hdr_wrap_count (bh));
out:
  cv_hdr_free (bh);
  cv_hdr_free (cur);
  common_free (&co);
  return ec ? ec : exit_code (rc);
}

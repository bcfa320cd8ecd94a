/* cryptvol-keymgr shred: crypto-erase. Both header copies, every wrap and the
 * rotation journal are overwritten with random bytes; without a wrap the data
 * can never be decrypted again. What shred cannot reach (header backups, the
 * KEKs in KMS, HSMs and key files) is printed as the steps left to do. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "format/header.h"
#include "keymgr.h"

struct shred_opts {
  bool yes;
};

static int
shred_opt (int c, const char *arg, void *ctx)
{
  ((struct shred_opts *) ctx)->yes = true;
  return 0;
}

/* Ask on the terminal; true only if the answer is exactly "shred". */
static bool
confirm (const char *name, const char *uuid)
{
  char line[64];

  if (!isatty (0))
    return false;
  fprintf (stderr,
           "This destroys every way to unlock %s (volume %s); its data "
           "becomes unreadable for good.\nType 'shred' to continue: ",
           name, uuid ? uuid : "unknown");
  if (!fgets (line, sizeof line, stdin))
    return false;
  return strcmp (line, "shred\n") == 0;
}

/* Overwrite [0, len) of d with random bytes and sync. */
static int
overwrite (struct cv_dev *d, uint64_t len)
{
  const char *name = d->name;
  uint8_t buf[65536];

  for (uint64_t off = 0; off < len; off += sizeof buf) {
    size_t n = len - off < sizeof buf ? len - off : sizeof buf;
    int rc = cv_random (buf, n);
    if (rc < 0)
      return rc;
    if ((rc = cv_dev_pwrite (d, buf, n, off, false)) < 0) {
      cv_err ("%s: overwriting at %llu: %s", name, (unsigned long long) off,
              strerror (-rc));
      return rc;
    }
  }
  int rc = cv_dev_flush (d);
  if (rc < 0)
    cv_err ("%s: sync: %s", name, strerror (-rc));
  return rc;
}

/* What is left to do for each wrap's key, which shred cannot destroy: one
 * string each, in a new JSON array. */
static json_t *
left_to_do (const struct cv_header *h)
{
  json_t *left = json_array ();
  struct cv_wrap_info w;
  char buf[1024];

  json_array_append_new (left, json_string ("header backups made with "
                                            "backup-header still hold the "
                                            "wraps: destroy them"));
  for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++) {
    const char *t = w.type, *r = w.ref;
    const char *arn = cv_hdr_wrap_member (h, w.id, "key_arn");
    buf[0] = '\0';
    if (!t)
      continue;
    if (strcmp (t, "kms") == 0)
      snprintf (buf, sizeof buf,
                "KMS key %s still exists; if no other volume uses it: aws kms "
                "schedule-key-deletion --key-id %s --pending-window-in-days 7",
                arn ? arn : r, arn ? arn : r);
    else if (strcmp (t, "pkcs11") == 0)
      snprintf (buf, sizeof buf,
                "the token key %s still exists; delete it on the HSM if no "
                "other volume uses it",
                r);
    else if (strcmp (t, "file") == 0)
      snprintf (buf, sizeof buf,
                "key file %s still exists; delete it (shred -u) if no other "
                "volume uses it",
                r);
    if (buf[0])
      json_array_append_new (left, json_string (buf));
  }
  return left;
}

int
cmd_shred (int argc, char **argv)
{
  static const struct option own[] = {
    { "yes", no_argument, 0, 'y' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr shred VOLUME [--header FILE] [--yes]\n"
        "Crypto-erase: destroys the header and every wrap (offline). Asks "
        "for\nconfirmation on a terminal; --yes for scripts.\n";
  struct shred_opts so = { false };
  struct common_opts co;
  CLEANUP_DEV struct cv_dev *d = NULL;
  struct cv_header *h = NULL;
  unsigned valid;
  uint64_t size;
  int rc = parse_args (argc, argv, own, shred_opt, &so, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind], *name = co.header ? co.header : path;
  if ((rc = keymgr_dev_open (name, "header", false, &d)) < 0)
    return rc == -ENOENT ? EXIT_USAGE : EXIT_IO;
  if ((rc = lock_volume (d, true)) != 0)
    return rc;
  rc = cv_hdr_read (d, &h, &valid);
  if (rc == -EINVAL)
    return EXIT_HEADER; /* not a cryptvol volume: nothing to shred */
  if (h)
    audit_volume (path, cv_hdr_uuid (h));
  if (!so.yes && !confirm (name, h ? cv_hdr_uuid (h) : NULL)) {
    cv_err ("not confirmed: nothing was destroyed (type 'shred' at the "
            "prompt, or pass --yes in scripts)");
    cv_hdr_free (h);
    return EXIT_USAGE;
  }

  /* The header copies and the journal: up to the data in an attached header
   * (the data offset is known only from a readable header), the whole file
   * when detached. */
  uint64_t len = CV_HDR_AREA_SIZE;
  if (co.header && cv_dev_size (d, &size) == 0 && size > len)
    len = size;
  else if (!co.header && h && cv_hdr_data_offset (h) > len)
    len = cv_hdr_data_offset (h);
  if ((rc = overwrite (d, len)) == 0) {
    size_t n = h ? cv_hdr_wrap_count (h) : 0;
    struct cv_wrap_info w;
    for (size_t i = 0; h && cv_hdr_wrap_at (h, i, &w) == 0; i++)
      audit_wrap (&w, "destroyed");
    json_t *left = h ? left_to_do (h) : json_array ();
    if (co.json) {
      json_t *j
          = json_pack ("{s:s, s:I, s:o}", "crypto_erased", name,
                       "wraps_destroyed", (json_int_t) n, "left_to_do", left);
      print_json (j);
      json_decref (j);
    } else {
      printf ("%s: crypto-erased: both header copies and all %zu wraps "
              "overwritten; the data can no longer be decrypted\n",
              name, n);
      printf ("Left to do (shred cannot reach these):\n");
      size_t i;
      json_t *l;
      json_array_foreach (left, i, l)
          printf ("  - %s\n", json_string_value (l));
      json_decref (left);
    }
  }
  cv_hdr_free (h);
  return exit_code (rc);
}

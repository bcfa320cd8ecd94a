/* cryptvol-keymgr create: a new volume (a new file of --size), or format an
 * existing file or block device, with one or more wraps of a fresh or
 * imported DEK. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/secfile.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "keymgr.h"

#define MAX_WRAPS 16

static const char create_usage[]
    = "usage: cryptvol-keymgr create VOLUME --wrap SPEC [--wrap SPEC]...\n"
      "         [--size SIZE] [--sector-size 4096|512]\n"
      "         [--detached-header FILE] [--data-offset BYTES]\n"
      "         [--import-key FILE] [--yes] [--json]\n"
      "         [--passphrase-file FILE | --passphrase-fd N]\n"
      "         [--pbkdf argon2id|scrypt] [--pbkdf-memory SIZE]\n"
      "         [--pbkdf-time N] [--pbkdf-parallel N]\n"
      "SPEC is file:KEYFILE, passphrase, kms:KEY-REF or pkcs11:URI (a first "
      "kms:\nwrap makes the DEK in AWS KMS with GenerateDataKey).\n";

/* The options of create. */
struct create_opts {
  const char *wraps[MAX_WRAPS], *import, *detached;
  size_t nwraps;
  uint64_t size, data_offset, sector_size;
  bool yes, want_pass;
};

static int
create_opt (int c, const char *arg, void *ctx)
{
  struct create_opts *o = ctx;

  switch (c) {
  case 's':
    if (parse_size (arg, &o->size) < 0 || o->size == 0) {
      cv_err ("--size: '%s' is not a size (e.g. 10G, 512M)", arg);
      return -1;
    }
    return 0;
  case 'S':
    if (parse_size (arg, &o->sector_size) < 0
        || (o->sector_size != 512 && o->sector_size != 4096)) {
      cv_err ("--sector-size must be 512 or 4096");
      return -1;
    }
    return 0;
  case 'H':
    o->detached = arg;
    return 0;
  case 'o':
    if (parse_size (arg, &o->data_offset) < 0) {
      cv_err ("--data-offset: '%s' is not a size", arg);
      return -1;
    }
    return 0;
  case 'i':
    o->import = arg;
    return 0;
  case 'w':
    if (o->nwraps == MAX_WRAPS) {
      cv_err ("at most %d --wrap options", MAX_WRAPS);
      return -1;
    }
    if (!(o->wraps[o->nwraps++] = wrap_spec_absolute (arg)))
      return -1;
    if (strcmp (arg, "passphrase") == 0)
      o->want_pass = true;
    return 0;
  case 'y':
    o->yes = true;
    return 0;
  }
  return -1;
}

/* What the target is, for the report: "file", "block-device" or "rbd". */
static const char *
target_kind (const struct cv_dev *d)
{
  struct stat st;

  if (!cv_dev_is_file (d))
    return d->ops->name;
  return fstat (d->fd, &st) == 0 && S_ISBLK (st.st_mode) ? "block-device"
                                                         : "file";
}

/* Open or create the target at path: a new file or RBD image of
 * data_offset + size bytes (*created) when there is none and size > 0.
 * Returns 0 or an exit code (reported). */
static int
open_target (const char *path, uint64_t size, uint64_t data_offset,
             struct cv_dev **d, bool *created)
{
  int rc;

  *created = false;
  if (cv_rbd_is_path (path)) {
    if (size > 0) {
      if ((rc = cv_rbd_create (path, &keymgr_rbd, data_offset + size)) < 0
          && rc != -EEXIST)
        return exit_code (rc);
      *created = rc == 0;
    }
    if ((rc = keymgr_dev_open (path, "volume", false, d)) < 0 && *created)
      cv_rbd_remove (path, &keymgr_rbd);
    return rc == 0 ? 0 : exit_code (rc);
  }
  if (access (path, F_OK) < 0 && errno == ENOENT) {
    if (size == 0) {
      cv_err ("%s does not exist; give --size to create it", path);
      return EXIT_USAGE;
    }
    int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      cv_err ("cannot create %s: %s", path, strerror (errno));
      return EXIT_IO;
    }
    close (fd);
    *created = true;
  }
  if ((rc = keymgr_dev_open (path, "volume", false, d)) < 0) {
    if (*created)
      unlink (path);
    return EXIT_IO;
  }
  return 0;
}

/* Undo open_target's creation: close *d (an image is removed only once
 * this process no longer holds its lock) and remove path. */
static void
remove_target (const char *path, struct cv_dev **d)
{
  cv_dev_close (*d);
  *d = NULL;
  if (cv_rbd_is_path (path))
    cv_rbd_remove (path, &keymgr_rbd);
  else
    unlink (path);
}

/* True if the len bytes at off of d are all zero (or it is shorter). */
static bool
area_is_blank (struct cv_dev *d, uint64_t off, size_t len)
{
  CLEANUP_FREE uint8_t *buf = malloc (len);
  size_t n = 0;

  if (!buf || cv_dev_pread (d, buf, len, off, &n) < 0)
    return false;
  for (size_t i = 0; i < n; i++)
    if (buf[i])
      return false;
  return true;
}

/* Read a 64-byte raw master key (as cryptsetup --volume-key-file writes it). */
static int
import_key (const char *path, struct cv_key **dek)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct cv_key *k = NULL;
  uint8_t extra;
  int rc;

  if (fd < 0) {
    int rc0 = -errno;
    cv_err ("--import-key: cannot open %s: %s", path, strerror (-rc0));
    return rc0;
  }
  cv_secret_fd_check (fd, "--import-key file", path);
  if ((rc = cv_key_new (CV_DEK_LEN, &k)) < 0)
    return rc;
  size_t n = 0, more = 0;
  if ((rc = cv_read_all (fd, k->b, CV_DEK_LEN, &n)) < 0
      || (rc = cv_read_all (fd, &extra, 1, &more)) < 0) {
    cv_err ("--import-key: cannot read %s: %s", path, strerror (-rc));
    cv_key_free (k);
    return rc;
  }
  if (n != CV_DEK_LEN || more != 0) {
    cv_err ("--import-key: %s is not a 64-byte AES-256-XTS master key "
            "(key1 || key2, raw bytes)",
            path);
    cv_key_free (k);
    return -EINVAL;
  }
  *dek = k;
  return 0;
}

int
cmd_create (int argc, char **argv)
{
  static const struct option own[] = {
    { "size", required_argument, 0, 's' },
    { "sector-size", required_argument, 0, 'S' },
    { "detached-header", required_argument, 0, 'H' },
    { "data-offset", required_argument, 0, 'o' },
    { "import-key", required_argument, 0, 'i' },
    { "wrap", required_argument, 0, 'w' },
    { "yes", no_argument, 0, 'y' },
    { 0, 0, 0, 0 },
  };
  struct create_opts o = { .data_offset = UINT64_MAX, .sector_size = 4096 };
  struct common_opts co;
  int rc = parse_args (argc, argv, own, create_opt, &o, &co, create_usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char **wraps = o.wraps, *import = o.import, *detached = o.detached;
  size_t nwraps = o.nwraps;
  uint64_t size = o.size, data_offset = o.data_offset,
           sector_size = o.sector_size;
  bool yes = o.yes, want_pass = o.want_pass;
  const char *path = argv[optind];
  if (nwraps == 0) {
    cv_err ("no --wrap given: a volume needs at least one way to unlock it "
            "(e.g. --wrap file:KEYFILE)");
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < nwraps; i++) {
    const struct cv_provider *p;
    const char *ref;
    if (cv_wrap_spec_parse (wraps[i], &p, &ref) < 0)
      return EXIT_USAGE;
  }
  /* A detached header leaves the data file one block for the seal. */
  if (data_offset == UINT64_MAX)
    data_offset = detached ? CV_SEAL_SIZE : CV_DATA_OFFSET_DEFAULT;
  uint64_t seal = cv_seal_offset_for (!detached, data_offset);
  if (seal == UINT64_MAX)
    cv_warn ("--data-offset %llu leaves no room for a seal sector before the "
             "data: a stale header (a backup from before a DEK rotation or a "
             "wrap removal) could not be told from the current one; use "
             "--data-offset %llu or more",
             (unsigned long long) data_offset,
             (unsigned long long) (detached ? CV_SEAL_SIZE
                                            : CV_HDR_AREA_SIZE + CV_SEAL_SIZE));
  if (data_offset % sector_size) {
    cv_err ("--data-offset %llu is not a multiple of the sector size %llu",
            (unsigned long long) data_offset, (unsigned long long) sector_size);
    return EXIT_USAGE;
  }
  if (!detached && data_offset < CV_HDR_AREA_SIZE) {
    cv_err ("--data-offset %llu leaves no room for the header (%d bytes); "
            "use a larger offset or --detached-header",
            (unsigned long long) data_offset, CV_HDR_AREA_SIZE);
    return EXIT_USAGE;
  }

  /* Open or create the data file or image. */
  bool created;
  CLEANUP_DEV struct cv_dev *dd = NULL;
  if ((rc = open_target (path, size, data_offset, &dd, &created)) != 0)
    return rc;
  uint64_t have;
  if ((rc = cv_dev_size (dd, &have)) < 0) {
    cv_err ("cannot find the size of %s: %s", path, strerror (-rc));
    return EXIT_IO;
  }
  if (!created) {
    uint64_t room = have > data_offset ? have - data_offset : 0;
    if (size == 0)
      size = room / sector_size * sector_size;
    if (size == 0 || size > room) {
      cv_err ("%s is %llu bytes: no room for %llu bytes of data after the "
              "data offset %llu",
              path, (unsigned long long) have,
              (unsigned long long) (size ? size : sector_size),
              (unsigned long long) data_offset);
      return EXIT_USAGE;
    }
    /* Formatting overwrites the start of the target: only with consent. */
    if (!detached && !yes && !area_is_blank (dd, 0, CV_HDR_AREA_SIZE)) {
      cv_err ("%s is not blank: creating a volume overwrites its first %d "
              "bytes; add --yes to do it",
              path, CV_HDR_AREA_SIZE);
      return EXIT_USAGE;
    }
    /* The block before the data of a target with a detached header may
     * hold what it had before (an imported LUKS volume's key material). */
    if (detached && seal != UINT64_MAX && !yes
        && !area_is_blank (dd, seal, CV_SEAL_SIZE)) {
      cv_warn ("%s: the 4096 bytes before the data (at %llu) are not blank "
               "(an imported LUKS header's key material?): no seal sector, "
               "so a stale header could not be told from the current one; "
               "add --yes to use them, or run upgrade --yes later",
               path, (unsigned long long) seal);
      seal = UINT64_MAX;
    }
  }
  if (size % sector_size) {
    cv_err ("--size %llu is not a multiple of the sector size %llu",
            (unsigned long long) size, (unsigned long long) sector_size);
    if (created)
      remove_target (path, &dd);
    return EXIT_USAGE;
  }

  /* The header goes into the volume or into a new detached header file. */
  CLEANUP_CLOSE int hfd = -1;
  const char *hname = detached ? detached : path;
  if (detached) {
    hfd = open (detached, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (hfd < 0) {
      int e = errno;
      cv_err ("cannot create detached header %s: %s%s", detached, strerror (e),
              e == EEXIST ? " (it exists: refusing to overwrite it)" : "");
      if (created)
        remove_target (path, &dd);
      return e == EEXIST ? EXIT_USAGE : EXIT_IO;
    }
  }
  struct cv_dev hdev = cv_dev_file (hfd, detached);
  struct cv_dev *hd = detached ? &hdev : dd;

  struct cv_header *h = NULL;
  CLEANUP_KEY struct cv_key *dek = NULL;
  int64_t made = -1; /* the wrap made with the DEK (GenerateDataKey), or -1 */
  rc = cv_lock_header_for (hd, keymgr_wait_s * 1000);
  if (rc == 0 && (!import || (rc = import_key (import, &dek)) == 0)
      && (rc = common_creds (&co, want_pass, true)) == 0
      && (rc = cv_hdr_new ((uint32_t) sector_size, data_offset, size, &h)) == 0
      && (rc = cv_hdr_protect (h, seal)) == 0
      && (import
          || (rc = cv_wrap_generate (h, wraps[0], &co.creds, &dek, &made))
                 == 0)) {
    /* The halves of an imported key, or of one from a key service, must
     * differ, as for a generated one: refuse it otherwise. */
    struct cv_xts *x = NULL;
    rc = cv_xts_new (CV_XTS_AUTO, dek->b, (unsigned) sector_size, &x);
    cv_xts_free (x);
    if (rc == 0 && (rc = cv_hdr_seal (h, dek)) == 0)
      for (size_t i = made >= 0; i < nwraps && rc == 0; i++)
        rc = cv_wrap_add (h, wraps[i], &co.creds, dek, NULL);
    if (rc == 0 && created && cv_dev_is_file (dd)
        && (rc = cv_dev_resize (dd, data_offset + size)) < 0)
      cv_err ("cannot size %s: %s", path, strerror (-rc));
    if (rc == 0 && detached && (rc = cv_dev_resize (hd, CV_HDR_AREA_SIZE)) < 0)
      cv_err ("cannot size %s: %s", detached, strerror (-rc));
    if (rc == 0)
      rc = cv_hdr_commit_sealed (hd, dd, h, dek);
  } else if (rc == -EBUSY)
    cv_err ("%s is locked by another cryptvol-keymgr, still after waiting "
            "%u s (--wait SECONDS)",
            hname, keymgr_wait_s);
  if (rc < 0) {
    /* Leave nothing half-made behind; a pre-existing target was not yet
     * written (the commit is the last step). */
    if (created)
      remove_target (path, &dd);
    if (detached)
      unlink (detached);
    cv_hdr_free (h);
    common_free (&co);
    return exit_code (rc);
  }

  if (co.json) {
    json_t *j = cv_hdr_to_json (h);
    print_json (j);
    json_decref (j);
  } else
    printf ("created %s volume %s: %llu bytes, %u-byte sectors, %zu wrap%s\n",
            target_kind (dd), path, (unsigned long long) size,
            cv_hdr_sector_size (h), nwraps, nwraps == 1 ? "" : "s");
  cv_hdr_free (h);
  common_free (&co);
  return EXIT_OK;
}

/* cv_vol_rotate_begin when it fails: the volume in memory is unchanged (DEK,
 * header, wraps), and the message says what is on disk. Header writes are
 * made to fail with RLIMIT_FSIZE: at 0 nothing can be written; at one header
 * copy the primary copy is written and the secondary is not, so the next open
 * finds the rotation begun and can finish it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "harness.h"
#include "keys/keys.h"
#include "vol/volume.h"

#define SIZE (1 << 20)
#define PASS "correct horse battery staple"

static char dir[] = "/tmp/cv-test-vol-rotate-XXXXXX";
static char vol[64], k1[64];
static uint8_t data[SIZE];
static struct cv_key *pass;

static int
logged (const char *s)
{
  return strstr (harness_logged (), s) != NULL;
}

/* A volume with a file wrap of k1 (id 0) and a passphrase wrap (id 1). */
static int
create_volume (void)
{
  struct cv_header *h = NULL;
  CLEANUP_KEY struct cv_key *dek = NULL;
  CLEANUP_CLOSE int fd = open (vol, O_RDWR | O_CREAT | O_TRUNC, 0600);
  char spec[80];
  struct cv_creds c = { .keyfile = k1,
                        .passphrase = pass,
                        .pbkdf = { "argon2id", 1, 8192, 1, 0 } };
  int rc;

  snprintf (spec, sizeof spec, "file:%s", k1);
  if (fd < 0 || ftruncate (fd, CV_DATA_OFFSET_DEFAULT + SIZE) < 0)
    return -errno;
  if ((rc = cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, SIZE, &h)) == 0
      && (rc = cv_dek_generate (&dek)) == 0 && (rc = cv_hdr_seal (h, dek)) == 0
      && (rc = cv_wrap_add (h, spec, &c, dek, NULL)) == 0
      && (rc = cv_wrap_add (h, "passphrase", &c, dek, NULL)) == 0)
    rc = cv_hdr_commit (FDEV (fd, vol), h);
  cv_hdr_free (h);
  return rc;
}

static struct cv_vol *
open_volume (const struct cv_creds *c, bool readonly)
{
  struct cv_vol_opts o = {
    .path = vol, .readonly = readonly, .exclusive = !readonly, .creds = c
  };
  struct cv_vol *v = NULL;

  CHECK (cv_vol_open (&o, &v) == 0, "open %s: %s", vol, harness_logged ());
  return v;
}

/* The soft limit only, so that it can be lifted again. */
static void
set_fsize (rlim_t max)
{
  struct rlimit rl;
  CHECK (getrlimit (RLIMIT_FSIZE, &rl) == 0, "getrlimit");
  rl.rlim_cur = max;
  CHECK (setrlimit (RLIMIT_FSIZE, &rl) == 0, "setrlimit");
}

static void
no_fsize_limit (void)
{
  struct rlimit rl;
  getrlimit (RLIMIT_FSIZE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit (RLIMIT_FSIZE, &rl);
}

/* What of v a failed begin must leave as it was. */
struct snapshot {
  uint8_t dek[CV_DEK_LEN];
  uint64_t seqid;
  char *wraps;
};

static void
snap (struct cv_vol *v, struct snapshot *s)
{
  memcpy (s->dek, cv_vol_dek (v)->b, CV_DEK_LEN);
  s->seqid = cv_hdr_seqid (cv_vol_header (v));
  s->wraps = json_dumps (cv_hdr_wraps (cv_vol_header (v)), JSON_COMPACT);
}

static void
unchanged (struct cv_vol *v, struct snapshot *s, const char *what)
{
  CLEANUP_FREE char *wraps
      = json_dumps (cv_hdr_wraps (cv_vol_header (v)), JSON_COMPACT);

  CHECK (!cv_vol_rotating (v, NULL), "%s: not rotating", what);
  CHECK (memcmp (s->dek, cv_vol_dek (v)->b, CV_DEK_LEN) == 0,
         "%s: the DEK is the old one", what);
  CHECK (s->seqid == cv_hdr_seqid (cv_vol_header (v)), "%s: same header", what);
  CHECK (s->wraps && wraps && strcmp (s->wraps, wraps) == 0, "%s: same wraps",
         what);
  free (s->wraps);
}

static void
read_back (struct cv_vol *v, const char *what)
{
  static uint8_t buf[SIZE];

  CHECK (cv_vol_pread (v, buf, SIZE, 0) == 0 && memcmp (buf, data, SIZE) == 0,
         "%s: the data reads back", what);
}

int
main (void)
{
  struct cv_vol *v;
  struct snapshot s;
  struct sigaction ign = { .sa_handler = SIG_IGN };

  harness_init ();
  sigaction (SIGXFSZ, &ign, NULL);
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  snprintf (vol, sizeof vol, "%s/vol", dir);
  snprintf (k1, sizeof k1, "%s/k1", dir);
  for (size_t i = 0; i < SIZE; i++)
    data[i] = (uint8_t) (i * 7 + i / 4096);
  struct cv_creds keyonly = { .keyfile = k1 };
  CHECK (cv_keyfile_create (k1) == 0
             && cv_key_from (PASS, strlen (PASS), &pass) == 0
             && create_volume () == 0,
         "volume");
  struct cv_creds both = { .keyfile = k1, .passphrase = pass };

  if (!(v = open_volume (&keyonly, false)))
    goto out;
  CHECK (cv_vol_pwrite (v, data, SIZE, 0, true) == 0, "write the data");

  /* A wrap whose key is not given: refused before anything is written. */
  snap (v, &s);
  harness_log_clear ();
  CHECK (cv_vol_rotate_begin (v, &keyonly, 64 * 1024) == -ENOKEY,
         "without the passphrase: -ENOKEY");
  CHECK (logged ("cannot re-make wrap 1 (passphrase) for the new DEK: no "
                 "passphrase given")
             && logged ("not started; nothing was changed"),
         "log: %s", harness_logged ());
  unchanged (v, &s, "key missing");

  /* Nothing can be written: the commit fails at the primary copy. */
  snap (v, &s);
  set_fsize (0);
  harness_log_clear ();
  CHECK (cv_vol_rotate_begin (v, &both, 64 * 1024) == -EFBIG,
         "no header copy written: -EFBIG");
  no_fsize_limit ();
  CHECK (logged ("cannot write the primary header copy")
             && logged ("not started; nothing was changed"),
         "log: %s", harness_logged ());
  unchanged (v, &s, "primary copy not written");
  read_back (v, "primary copy not written");
  cv_vol_close (v);
  if (!(v = open_volume (&keyonly, false)))
    goto out;
  CHECK (!cv_vol_rotating (v, NULL), "reopened: no rotation");

  /* The primary copy is written, the secondary not: the volume in memory is
   * unchanged, but the next open uses the primary copy. */
  snap (v, &s);
  set_fsize (CV_HDR_COPY_SIZE);
  harness_log_clear ();
  CHECK (cv_vol_rotate_begin (v, &both, 64 * 1024) == -EFBIG,
         "secondary copy not written: -EFBIG");
  no_fsize_limit ();
  CHECK (logged ("recorded in the primary header copy only")
             && logged ("run rotate-dek again")
             && !logged ("nothing was changed"),
         "log: %s", harness_logged ());
  unchanged (v, &s, "secondary copy not written");
  read_back (v, "secondary copy not written");
  cv_vol_close (v);
  harness_log_clear ();
  if (!(v = open_volume (&keyonly, false)))
    goto out;
  uint64_t done = 1;
  CHECK (cv_vol_rotating (v, &done) && done == 0,
         "reopened: the rotation is in progress at 0");
  CHECK (memcmp (s.dek, cv_vol_dek (v)->b, CV_DEK_LEN) != 0,
         "reopened: the wraps hold the new DEK");
  CHECK (cv_vol_rotate_begin (v, &both, 0) == -EALREADY,
         "begin again: -EALREADY");
  read_back (v, "rotation begun");
  CHECK (cv_vol_rotate_run (v, NULL, NULL) == 0, "finish the rotation");
  read_back (v, "rotated");
  cv_vol_close (v);

  /* Read-only: refused, and said. */
  if (!(v = open_volume (&keyonly, true)))
    goto out;
  harness_log_clear ();
  CHECK (cv_vol_rotate_begin (v, &both, 0) == -EROFS, "read-only: -EROFS");
  CHECK (logged ("opened read-only"), "log: %s", harness_logged ());
  read_back (v, "after the rotation, read-only");
  cv_vol_close (v);

out:
  cv_key_free (pass);
  unlink (vol);
  unlink (k1);
  rmdir (dir);
  cv_keys_cleanup ();
  return harness_done ("test-vol-rotate-begin");
}

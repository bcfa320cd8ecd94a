/* Provider "file": the KEK is the 32 bytes of a key file. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/secfile.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/aead_wrap.h"
#include "keys/keys.h"
#include "keys/providers.h"

#define KEK_LEN 32
#define KEK_ID_LEN 8
#define KEK_ID_INFO "cryptvol v1 kek id"

int
cv_keyfile_read (const char *path, struct cv_key **kek)
{
  /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
  CLEANUP_CLOSE int fd
      = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  CLEANUP_KEY struct cv_key *k = NULL;
  struct stat st;
  uint8_t extra;
  size_t got = 0, more = 0;
  int r;

  if (fd < 0 || fstat (fd, &st) < 0) {
    r = -errno;
    cv_err ("cannot open key file %s: %s", path, strerrordesc_np (-r));
    return r;
  }
  /* A FIFO or device could block or never end: only regular files. */
  if (!S_ISREG (st.st_mode)) {
    cv_err ("key file %s is not a regular file; a cryptvol key file holds "
            "exactly %d random bytes",
            path, KEK_LEN);
    return -EINVAL;
  }
  if (st.st_size != KEK_LEN) {
    cv_err ("key file %s is %lld bytes; a cryptvol key file holds exactly %d "
            "random bytes",
            path, (long long) st.st_size, KEK_LEN);
    return -EINVAL;
  }
  cv_secret_fd_check (fd, "key file", path);
  r = cv_key_new (KEK_LEN, &k);
  if (r < 0)
    return r;
  if ((r = cv_read_all (fd, k->b, KEK_LEN, &got)) < 0
      || (r = cv_read_all (fd, &extra, 1, &more)) < 0) {
    cv_err ("cannot read key file %s: %s", path, strerrordesc_np (-r));
    return r;
  }
  if (got != KEK_LEN || more != 0) {
    cv_err ("key file %s %s while read; it must hold exactly %d bytes", path,
            got != KEK_LEN ? "shrank" : "grew", KEK_LEN);
    return -EINVAL;
  }
  *kek = STEAL (k);
  return 0;
}

/* fsync the directory holding path, so that a new file's entry is durable. */
static int
fsync_parent (const char *path)
{
  CLEANUP_FREE char *copy = strdup (path);
  CLEANUP_CLOSE int dfd = -1;

  if (!copy)
    return -ENOMEM;
  dfd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync (dfd) < 0)
    return -errno;
  return 0;
}

int
cv_keyfile_create (const char *path)
{
  CLEANUP_KEY struct cv_key *k = NULL;
  CLEANUP_CLOSE int fd = -1;
  int r = cv_key_new (KEK_LEN, &k);

  if (r < 0)
    return r;
  r = cv_random (k->b, k->len);
  if (r < 0)
    return r;
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
  if (fd < 0) {
    r = -errno;
    if (r == -EEXIST)
      cv_err ("key file %s already exists; refusing to overwrite it", path);
    else
      cv_err ("cannot create key file %s: %s", path, strerrordesc_np (-r));
    return r;
  }
  /* The umask may only have removed bits; make the mode exact. */
  if (fchmod (fd, 0400) < 0)
    r = -errno;
  else if ((r = cv_write_all (fd, k->b, k->len)) == 0 && fsync (fd) < 0)
    r = -errno;
  if (r == 0)
    r = fsync_parent (path);
  if (r == 0)
    return 0;
  cv_err ("cannot write key file %s: %s; removing it", path,
          strerrordesc_np (-r));
  unlink (path);
  return r;
}

/* The key id of kek: hex of the first 8 bytes of HKDF-SHA256(kek, no salt,
 * "cryptvol v1 kek id"). It names a KEK without revealing it, so that unlock
 * tells a wrong key file from an altered wrap. *id is malloc'd. */
static int
kek_id (const struct cv_key *kek, char **id)
{
  uint8_t out[KEK_ID_LEN];
  int r = cv_hkdf_sha256 (kek->b, kek->len, NULL, 0, KEK_ID_INFO, out,
                          sizeof out);

  if (r == 0)
    r = cv_hex_encode (out, sizeof out, id);
  cv_wipe (out, sizeof out);
  return r;
}

/* Wrap dek under the key file ref. */
static int
file_wrap (const char *ref, const struct cv_creds *c, const struct cv_key *dek,
           const char *binding, json_t *w)
{
  CLEANUP_KEY struct cv_key *kek = NULL;
  CLEANUP_FREE char *id = NULL;
  int r;

  if (!ref) {
    cv_err ("a file wrap needs the path of its key file");
    return -EINVAL;
  }
  r = cv_keyfile_read (ref, &kek);
  if (r < 0)
    return r;
  r = kek_id (kek, &id);
  if (r < 0)
    return r;
  if (json_object_set_new (w, "kek_id", json_string (id)) < 0)
    return -ENOMEM;
  return cv_aead_wrap_seal (kek, dek, binding, w);
}

/* A wrap's kek_id as it may be logged: read from disk, so only when it is
 * hex (at most its first 16 characters are printed). */
static const char *
shown_id (const char *want)
{
  return strspn (want, "0123456789abcdef") >= 2 * KEK_ID_LEN ? want
                                                             : "a malformed id";
}

/* Does w open under kek although its kek_id is not kek's id? Tried on a
 * copy of w carrying kek's id, so that the answer holds whether or not the
 * wrap's additional data covers kek_id. 1: it opens (the key is right, the
 * kek_id was altered), 0: it does not (another key), or -errno. */
static int
opens_anyway (const struct cv_key *kek, const char *id, const json_t *w,
              const char *binding)
{
  json_auto_t *copy = json_deep_copy (w);
  CLEANUP_KEY struct cv_key *dek = NULL;
  int r;

  if (!copy || json_object_set_new (copy, "kek_id", json_string (id)) < 0)
    return -ENOMEM;
  r = cv_aead_wrap_open (kek, copy, binding, &dek);
  return r == 0 ? 1 : r == -EBADMSG ? 0 : r;
}

/* Unwrap w with the key file of the credentials. */
static int
file_unwrap (const json_t *w, const struct cv_creds *c, const char *binding,
             struct cv_key **dek)
{
  char label[CV_WRAP_LABEL_MAX];
  CLEANUP_KEY struct cv_key *kek = NULL;
  CLEANUP_FREE char *id = NULL;
  const char *want;
  int r;

  if (!c || !c->keyfile)
    return -ENOKEY;
  want = cv_wrap_get_string (w, "kek_id", &r);
  if (!want)
    return r;
  r = cv_keyfile_read (c->keyfile, &kek);
  if (r < 0)
    return r;
  r = kek_id (kek, &id);
  if (r < 0)
    return r;
  cv_wrap_label (w, label, sizeof label);
  if (strcmp (id, want) != 0) {
    /* Most likely another key file; but the key id is not authenticated on
     * its own, so ask the AEAD (one 64-byte open) before saying so. */
    r = opens_anyway (kek, id, w, binding);
    if (r < 0)
      return r;
    if (r == 1) {
      cv_warn ("%s: key file %s opens the wrap but the wrap's kek_id (%.16s) "
               "is not its key id %s: the wrap's kek_id was altered; refusing "
               "(remove the wrap and add it again, or restore the header from "
               "a backup)",
               label, c->keyfile, shown_id (want), id);
      return -EBADMSG;
    }
    cv_debug ("%s: key file %s is not this wrap's key (key id %s, wrap wants "
              "%.16s)",
              label, c->keyfile, id, shown_id (want));
    return -EKEYREJECTED;
  }
  r = cv_aead_wrap_open (kek, w, binding, dek);
  if (r == -EBADMSG)
    cv_warn ("%s: wrap does not authenticate under key file %s although the "
             "key id matches: it was altered or copied from another volume",
             label, c->keyfile);
  return r;
}

const struct cv_provider cv_provider_file = {
  .type = "file",
  .wrap = file_wrap,
  .unwrap = file_unwrap,
};

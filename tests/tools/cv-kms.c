/* cv-kms: drive the KMS provider's rewrap (ReEncrypt) on a volume, for
 * tests, until cryptvol-keymgr has a rewrap command of its own.
 *   cv-kms HEADER rewrap WRAP_ID NEW_KEY_REF [--remove-old]
 *          [--kms-endpoint URL] [--kms-region R] [--ca-bundle FILE] [--debug]
 * Adds a wrap of the same DEK under NEW_KEY_REF (the DEK never leaves KMS),
 * checks that the new wrap unlocks the volume (unwrap + header MAC), commits,
 * and with --remove-old removes wrap WRAP_ID in a second commit. Prints the
 * new wrap's id. Credentials come from the usual AWS chain. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keys/keys.h"

static int
usage (void)
{
  fprintf (stderr, "usage: cv-kms HEADER rewrap WRAP_ID NEW_KEY_REF "
                   "[--remove-old] [--kms-endpoint URL] [--kms-region R] "
                   "[--ca-bundle FILE] [--debug]\n");
  return 2;
}

int
main (int argc, char **argv)
{
  struct cv_creds creds = { .pbkdf = CV_PBKDF_DEFAULT };
  bool remove_old = false;
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_KEY struct cv_key *dek = NULL;
  struct cv_header *h = NULL;
  json_t *w, *old = NULL, *nw = NULL;
  json_int_t max = -1;
  size_t i, old_index = 0;
  unsigned valid;
  int r;

  if (argc < 5 || strcmp (argv[2], "rewrap") != 0)
    return usage ();
  for (int a = 5; a < argc; a++) {
    if (strcmp (argv[a], "--remove-old") == 0)
      remove_old = true;
    else if (strcmp (argv[a], "--debug") == 0)
      cv_log_set_debug (true);
    else if (a + 1 < argc && strcmp (argv[a], "--kms-endpoint") == 0)
      creds.kms_endpoint = argv[++a];
    else if (a + 1 < argc && strcmp (argv[a], "--kms-region") == 0)
      creds.kms_region = argv[++a];
    else if (a + 1 < argc && strcmp (argv[a], "--ca-bundle") == 0)
      creds.ca_bundle = argv[++a];
    else
      return usage ();
  }
  const char *path = argv[1], *new_ref = argv[4];
  json_int_t want = strtoll (argv[3], NULL, 10);
  const struct cv_provider *p = cv_provider_find ("kms");

  fd = open (path, O_RDWR | O_CLOEXEC);
  if (fd < 0 || (r = cv_lock_header (fd, true)) < 0
      || (r = cv_hdr_read (fd, path, &h, &valid)) < 0) {
    fprintf (stderr, "cv-kms: cannot open the header of %s\n", path);
    return 1;
  }
  json_array_foreach (h->wraps, i, w)
  {
    json_int_t id = json_integer_value (json_object_get (w, "id"));
    if (id > max)
      max = id;
    if (id == want) {
      old = w;
      old_index = i;
    }
  }
  if (!old || !p || !p->rewrap) {
    fprintf (stderr, "cv-kms: %s has no wrap %s (or no kms provider)\n", path,
             argv[3]);
    r = -ENOENT;
    goto out;
  }
  /* Ids are never reused: past every id present and the header's count. */
  if (max + 1 < h->next_wrap_id)
    max = h->next_wrap_id - 1;
  nw = json_pack ("{s:I}", "id", max + 1);
  if ((r = p->rewrap (old, new_ref, &creds, cv_hdr_binding (h), nw)) < 0)
    goto out;
  /* The new wrap must open this volume before anything is committed. */
  if ((r = p->unwrap (nw, &creds, cv_hdr_binding (h), &dek)) < 0
      || (r = cv_hdr_authenticate (h, dek)) < 0) {
    fprintf (stderr, "cv-kms: the new wrap does not unlock %s (%d)\n", path, r);
    r = r < 0 ? r : -EBADMSG;
    goto out;
  }
  if (json_array_append (h->wraps, nw) < 0) {
    r = -ENOMEM;
    goto out;
  }
  h->next_wrap_id = max + 2;
  if ((r = cv_hdr_commit (fd, path, h)) < 0)
    goto out;
  if (remove_old
      && ((r = json_array_remove (h->wraps, old_index)) < 0
          || (r = cv_hdr_commit (fd, path, h)) < 0))
    goto out;
  printf ("%lld\n", (long long) (max + 1));
out:
  json_decref (nw);
  cv_hdr_free (h);
  cv_keys_cleanup ();
  return r < 0 ? 1 : 0;
}

/* cv-tamper: rewrite a cryptvol header the way an attacker or a bit flip
 * would, for tests. The copies it writes have valid checksums, so what stops
 * the result is the MAC, the wrap binding or the parser, not the checksum.
 *   cv-tamper HEADER set-size BYTES        change volume size (MAC now wrong)
 *   cv-tamper HEADER set-wraps FROM        take the wraps of volume FROM
 *   cv-tamper HEADER corrupt-copy N        flip a byte of copy N's JSON
 *   cv-tamper HEADER set-wrap ID MEMBER JSON
 *                   set member MEMBER (a.b for a member of object a) of wrap
 *                   ID to the JSON value JSON */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "format/header-internal.h"

static struct cv_header *
read_or_die (const char *path, int *fd)
{
  struct cv_header *h = NULL;
  unsigned valid;

  *fd = open (path, O_RDWR);
  if (*fd < 0 || cv_hdr_read (*fd, path, &h, &valid) < 0) {
    fprintf (stderr, "cv-tamper: cannot read header %s\n", path);
    exit (2);
  }
  return h;
}

/* Set member path ("a" or "a.b") of wrap id of h to the JSON text value. */
static int
set_wrap (struct cv_header *h, long long id, const char *path,
          const char *value)
{
  json_t *v = json_loads (value, JSON_DECODE_ANY, NULL);
  json_t *w = NULL, *o;
  size_t i;
  char key[128];
  const char *dot = strchr (path, '.');

  json_array_foreach (
      h->wraps, i, o) if (json_integer_value (json_object_get (o, "id")) == id)
      w
      = o;
  if (!v || !w || strlen (path) >= sizeof key) {
    fprintf (stderr, "cv-tamper: no wrap %lld, or %s is not JSON\n", id, value);
    json_decref (v);
    return -EINVAL;
  }
  if (dot) {
    snprintf (key, sizeof key, "%.*s", (int) (dot - path), path);
    w = json_object_get (w, key);
    path = dot + 1;
  }
  return json_object_set_new (w, path, v) == 0 ? 0 : -EINVAL;
}

int
main (int argc, char **argv)
{
  if (argc != 4 && !(argc == 6 && strcmp (argv[2], "set-wrap") == 0)) {
    fprintf (stderr, "usage: cv-tamper HEADER set-size BYTES | set-wraps FROM "
                     "| corrupt-copy N | set-wrap ID MEMBER JSON\n");
    return 2;
  }
  CLEANUP_CLOSE int fd = -1;
  struct cv_header *h = read_or_die (argv[1], &fd);
  int rc;

  if (strcmp (argv[2], "set-size") == 0) {
    h->size = strtoull (argv[3], NULL, 10);
    rc = cv_hdr_commit (fd, argv[1], h);
  } else if (strcmp (argv[2], "set-wraps") == 0) {
    CLEANUP_CLOSE int ofd = -1;
    struct cv_header *o = read_or_die (argv[3], &ofd);
    json_decref (h->wraps);
    h->wraps = json_deep_copy (o->wraps);
    cv_hdr_free (o);
    rc = cv_hdr_commit (fd, argv[1], h);
  } else if (strcmp (argv[2], "corrupt-copy") == 0) {
    int copy = atoi (argv[3]);
    uint8_t b;
    uint64_t at = (uint64_t) copy * CV_HDR_COPY_SIZE + CV_HDR_BIN_SIZE + 10;
    rc = cv_pread_all (fd, &b, 1, at, NULL);
    b ^= 0x20;
    if (rc == 0)
      rc = cv_pwrite_all (fd, &b, 1, at, 0);
  } else if (strcmp (argv[2], "set-wrap") == 0) {
    rc = set_wrap (h, strtoll (argv[3], NULL, 10), argv[4], argv[5]);
    if (rc == 0)
      rc = cv_hdr_commit (fd, argv[1], h);
  } else {
    fprintf (stderr, "cv-tamper: unknown action %s\n", argv[2]);
    rc = -EINVAL;
  }
  cv_hdr_free (h);
  return rc < 0 ? 1 : 0;
}

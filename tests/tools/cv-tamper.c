/* cv-tamper: rewrite a cryptvol header the way an attacker or a bit flip
 * would, for tests. The copies it writes have valid checksums, so what stops
 * the result is the MAC, the wrap binding or the parser, not the checksum.
 *   cv-tamper HEADER set-size BYTES        change volume size (MAC now wrong)
 *   cv-tamper HEADER set-wraps FROM        take the wraps of volume FROM
 *   cv-tamper HEADER corrupt-copy N        flip a byte of copy N's JSON */
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

int
main (int argc, char **argv)
{
  if (argc != 4) {
    fprintf (stderr, "usage: cv-tamper HEADER set-size BYTES | set-wraps FROM "
                     "| corrupt-copy N\n");
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
  } else {
    fprintf (stderr, "cv-tamper: unknown action %s\n", argv[2]);
    rc = -EINVAL;
  }
  cv_hdr_free (h);
  return rc < 0 ? 1 : 0;
}

/* cv-tamper: rewrite a cryptvol header the way an attacker or a bit flip
 * would, for tests. The copies it writes have valid checksums, so what stops
 * the result is the MAC, the wrap binding or the parser, not the checksum.
 *   cv-tamper HEADER set-size BYTES        change volume size (MAC now wrong)
 *   cv-tamper HEADER set-wraps FROM        take the wraps of volume FROM
 *   cv-tamper HEADER corrupt-copy N        flip a byte of copy N's JSON
 *   cv-tamper HEADER set-json COPY PATH VALUE
 *        set the JSON member at PATH (dot-separated keys and array indexes,
 *        e.g. wraps.0.ref, volume.size, next_wrap_id) of copy COPY (0, 1 or
 *        both) to VALUE (JSON text; "-" deletes it), keeping its seqid and
 *        fixing its checksum; nothing else of the copy changes */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "crypto/prim.h"
#include "format/header-internal.h"

/* A header device for descriptor fd (common/dev.h). */
#define FDEV(fd, name) ((struct cv_dev[1]){ cv_dev_file ((fd), (name)) })

/* The JSON value at path in root, and its parent and last key, or NULL. */
static json_t *
walk (json_t *root, char *path, json_t **parent, char **last)
{
  json_t *cur = root;
  char *save = NULL;

  *parent = NULL;
  for (char *tok = strtok_r (path, ".", &save); tok;
       tok = strtok_r (NULL, ".", &save)) {
    *parent = cur;
    *last = tok;
    if (json_is_array (cur))
      cur = json_array_get (cur, strtoul (tok, NULL, 10));
    else
      cur = json_object_get (cur, tok);
    if (!cur && strtok_r (NULL, ".", &save))
      return NULL;
    if (!cur)
      break;
  }
  return cur;
}

/* set-json on one copy: edit its JSON text, fix its checksum. */
static int
set_json (int fd, int copy, const char *path, const char *value)
{
  CLEANUP_FREE uint8_t *buf = malloc (CV_HDR_COPY_SIZE);
  CLEANUP_FREE char *p = strdup (path);
  uint64_t off = (uint64_t) copy * CV_HDR_COPY_SIZE;
  json_t *parent, *v = NULL;
  char *last = NULL;

  if (!buf || !p || cv_pread_all (fd, buf, CV_HDR_COPY_SIZE, off, NULL) < 0)
    return -EIO;
  uint32_t len
      = (uint32_t) buf[12] << 24 | buf[13] << 16 | buf[14] << 8 | buf[15];
  json_t *root = json_loadb ((char *) buf + CV_HDR_BIN_SIZE, len, 0, NULL);
  if (!root)
    return -EBADMSG;
  walk (root, p, &parent, &last);
  if (!parent || !last)
    return -ENOENT;
  if (strcmp (value, "-") != 0
      && !(v = json_loads (value, JSON_DECODE_ANY, NULL)))
    return -EINVAL;
  size_t i = strtoul (last, NULL, 10);
  if (json_is_array (parent) && v && i >= json_array_size (parent))
    json_array_append_new (parent, v); /* past the end: appended */
  else if (json_is_array (parent))
    v ? json_array_set_new (parent, i, v) : json_array_remove (parent, i);
  else
    v ? json_object_set_new (parent, last, v) : json_object_del (parent, last);
  CLEANUP_FREE char *text = json_dumps (root, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref (root);
  size_t n = strlen (text);
  if (n > CV_HDR_JSON_MAX)
    return -E2BIG;
  memset (buf + CV_HDR_BIN_SIZE, 0, CV_HDR_JSON_MAX);
  memcpy (buf + CV_HDR_BIN_SIZE, text, n);
  buf[12] = n >> 24, buf[13] = n >> 16, buf[14] = n >> 8, buf[15] = n;
  memset (buf + 48, 0, 32); /* the checksum, doc/format.md */
  if (cv_sha256 (buf, CV_HDR_BIN_SIZE + n, buf + 48) < 0)
    return -EIO;
  return cv_pwrite_all (fd, buf, CV_HDR_COPY_SIZE, off, 0);
}

static struct cv_header *
read_or_die (const char *path, int *fd)
{
  struct cv_header *h = NULL;
  unsigned valid;

  *fd = open (path, O_RDWR);
  if (*fd < 0 || cv_hdr_read (FDEV (*fd, path), &h, &valid) < 0) {
    fprintf (stderr, "cv-tamper: cannot read header %s\n", path);
    exit (2);
  }
  return h;
}

int
main (int argc, char **argv)
{
  if (argc == 6 && strcmp (argv[2], "set-json") == 0) {
    CLEANUP_CLOSE int fd = open (argv[1], O_RDWR);
    int rc = fd < 0 ? -errno : 0;
    for (int c = 0; c < 2 && rc == 0; c++)
      if (strcmp (argv[3], "both") == 0 || atoi (argv[3]) == c)
        rc = set_json (fd, c, argv[4], argv[5]);
    if (rc < 0)
      fprintf (stderr, "cv-tamper: set-json %s: %s\n", argv[4], strerror (-rc));
    return rc < 0 ? 1 : 0;
  }
  if (argc != 4) {
    fprintf (stderr, "usage: cv-tamper HEADER set-size BYTES | set-wraps FROM "
                     "| corrupt-copy N | set-json COPY PATH VALUE\n");
    return 2;
  }
  CLEANUP_CLOSE int fd = -1;
  struct cv_header *h = read_or_die (argv[1], &fd);
  int rc;

  if (strcmp (argv[2], "set-size") == 0) {
    h->size = strtoull (argv[3], NULL, 10);
    rc = cv_hdr_commit (FDEV (fd, argv[1]), h);
  } else if (strcmp (argv[2], "set-wraps") == 0) {
    CLEANUP_CLOSE int ofd = -1;
    struct cv_header *o = read_or_die (argv[3], &ofd);
    json_decref (h->wraps);
    h->wraps = json_deep_copy (o->wraps);
    cv_hdr_free (o);
    rc = cv_hdr_commit (FDEV (fd, argv[1]), h);
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

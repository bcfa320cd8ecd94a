/* Stores that are files or block devices: what the io_uring and portable
 * backends share (open, size, the read-only mapping, close). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "io/io-internal.h"

/* Map a non-empty regular file opened without O_DIRECT, whole, read-only and
 * shared (cv_io_map). Without a mapping the data path reads by pread: a
 * failure here is not an error. */
static void
map_file (struct cv_io_file *f)
{
  struct stat st;
  void *p;

  if (f->direct || fstat (f->fd, &st) < 0 || !S_ISREG (st.st_mode)
      || st.st_size <= 0 || (uint64_t) st.st_size > SIZE_MAX)
    return;
  p = mmap (NULL, (size_t) st.st_size, PROT_READ, MAP_SHARED, f->fd, 0);
  if (p == MAP_FAILED) {
    cv_debug ("%s: cannot map it (%s); reads go through pread", f->path,
              strerror (errno));
    return;
  }
  f->map = p;
  f->map_len = (size_t) st.st_size;
}

int
cv_io_file_open (const struct cv_io_open_opts *o, const struct cv_io_ops *ops,
                 struct cv_io **out)
{
  int flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC
              | (o->direct ? O_DIRECT : 0);
  CLEANUP_CLOSE int fd = open (o->path, flags);
  struct cv_io_file *f;

  if (fd < 0) {
    int err = errno;
    cv_err ("cannot open volume %s: %s%s", o->path, strerror (err),
            err == EINVAL && o->direct
                ? " (the file system does not support O_DIRECT; "
                  "use direct=false)"
                : "");
    return -err;
  }
  f = calloc (1, sizeof *f);
  if (!f || !(f->path = strdup (o->path))) {
    free (f);
    cv_err ("%s: out of memory", o->path);
    return -ENOMEM;
  }
  f->base.ops = ops;
  f->fd = STEAL_FD (fd);
  f->direct = o->direct;
  f->faults = o->faults;
  map_file (f);
  *out = &f->base;
  return 0;
}

void
cv_io_file_close (struct cv_io *io)
{
  struct cv_io_file *f = (struct cv_io_file *) io;

  if (f->map)
    munmap ((void *) f->map, f->map_len);
  close (f->fd);
  free (f->path);
  free (f);
}

int
cv_io_file_sync_range (struct cv_io *io, uint64_t off, uint64_t len)
{
  const struct cv_io_file *f = (const struct cv_io_file *) io;

  if (sync_file_range (f->fd, (off_t) off, (off_t) len,
                       SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE
                           | SYNC_FILE_RANGE_WAIT_AFTER)
      < 0)
    return -errno;
  return 0;
}

int
cv_io_file_size (struct cv_io *io, uint64_t *size)
{
  struct cv_io_file *f = (struct cv_io_file *) io;
  struct stat st;
  int rc = 0;

  if (fstat (f->fd, &st) < 0)
    rc = -errno;
  else if (S_ISBLK (st.st_mode))
    rc = ioctl (f->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
  else if (S_ISREG (st.st_mode))
    *size = (uint64_t) st.st_size;
  else
    rc = -EINVAL;
  if (rc < 0)
    cv_err ("%s: cannot find its size: %s", f->path,
            rc == -EINVAL ? "not a regular file or block device"
                          : strerror (-rc));
  return rc;
}

int
cv_io_file_map (struct cv_io *io, const uint8_t **base, uint64_t *len)
{
  const struct cv_io_file *f = (const struct cv_io_file *) io;

  if (!f->map)
    return -ENOTSUP;
  *base = f->map;
  *len = f->map_len;
  return 0;
}

/* Header devices (dev.h): the dispatch, and the one for files and block
 * devices. A file's locks are OFD byte-range locks (fcntl F_OFD_SETLK[W]) on
 * single bytes far beyond any header or data, so they never meet real I/O.
 * OFD locks belong to the open file description: two descriptors from two
 * open(2) calls conflict even within one process, and a lock goes when its
 * descriptor is closed. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <unistd.h>

#include "common/dev.h"
#include "common/fdio.h"
#include "common/log.h"

static_assert (sizeof (off_t) == 8, "64-bit file offsets");

/* The lock bytes (their offsets are part of the format: doc/format.md). */
static const off_t lock_byte[] = {
  [CV_DEV_LOCK_HEADER] = (off_t) 1 << 62,
  [CV_DEV_LOCK_IN_USE] = ((off_t) 1 << 62) + 1,
  [CV_DEV_LOCK_COMMIT] = ((off_t) 1 << 62) + 2,
};

/* A file device that owns its descriptor (cv_dev_file_open). */
struct file_dev {
  struct cv_dev d;
  char *path;
};

static int
file_pread (struct cv_dev *d, void *buf, size_t len, uint64_t off, size_t *got)
{
  return cv_pread_all (d->fd, buf, len, off, got);
}

static int
file_pwrite (struct cv_dev *d, const void *buf, size_t len, uint64_t off,
             bool dsync)
{
  return cv_pwrite_all (d->fd, buf, len, off, dsync ? RWF_DSYNC : 0);
}

static int
file_flush (struct cv_dev *d)
{
  return fdatasync (d->fd) < 0 ? -errno : 0;
}

static int
file_size (struct cv_dev *d, uint64_t *size)
{
  struct stat st;

  if (fstat (d->fd, &st) < 0)
    return -errno;
  if (S_ISBLK (st.st_mode))
    return ioctl (d->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
  if (!S_ISREG (st.st_mode))
    return -EINVAL;
  *size = (uint64_t) st.st_size;
  return 0;
}

static int
file_resize (struct cv_dev *d, uint64_t size)
{
  if (size > INT64_MAX)
    return -EFBIG;
  return ftruncate (d->fd, (off_t) size) < 0 ? -errno : 0;
}

static int
file_lock (struct cv_dev *d, enum cv_dev_lock which, short type, bool wait)
{
  struct flock fl = {
    .l_type = type,
    .l_whence = SEEK_SET,
    .l_start = lock_byte[which],
    .l_len = 1,
    .l_pid = 0,
  };
  int r;

  do
    r = fcntl (d->fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    return 0;
  if (!wait && (errno == EAGAIN || errno == EACCES))
    return -EBUSY;
  return -errno;
}

static int
file_holder (struct cv_dev *d, char *who, size_t who_len)
{
  struct flock fl = { .l_type = F_WRLCK,
                      .l_whence = SEEK_SET,
                      .l_start = lock_byte[CV_DEV_LOCK_IN_USE],
                      .l_len = 1,
                      .l_pid = 0 };

  if (who && who_len)
    who[0] = '\0';
  if (fcntl (d->fd, F_OFD_GETLK, &fl) < 0) {
    int e = errno;
    cv_err ("cannot test the volume in-use lock of %s: %s", d->name,
            strerror (e));
    return -e;
  }
  return fl.l_type == F_UNLCK ? 0 : fl.l_type == F_RDLCK ? 1 : 2;
}

/* A borrowed descriptor stays open. */
static void
file_close_borrowed (struct cv_dev *d)
{}

static void
file_close (struct cv_dev *d)
{
  struct file_dev *f = (struct file_dev *) d;

  close (d->fd); /* releases the locks */
  free (f->path);
  free (f);
}

#define FILE_OPS                                                               \
  .name = "file", .pread = file_pread, .pwrite = file_pwrite,                  \
  .flush = file_flush, .size = file_size, .resize = file_resize,               \
  .lock = file_lock, .holder = file_holder
static const struct cv_dev_ops borrowed_ops
    = { FILE_OPS, .close = file_close_borrowed };
static const struct cv_dev_ops owned_ops = { FILE_OPS, .close = file_close };

struct cv_dev
cv_dev_file (int fd, const char *name)
{
  return (struct cv_dev){ .ops = &borrowed_ops, .fd = fd, .name = name };
}

int
cv_dev_file_open (const char *path, bool readonly, struct cv_dev **out)
{
  int fd = open (path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  struct file_dev *f;

  if (fd < 0)
    return -errno;
  f = calloc (1, sizeof *f);
  if (!f || !(f->path = strdup (path))) {
    free (f);
    close (fd);
    return -ENOMEM;
  }
  f->d = (struct cv_dev){ .ops = &owned_ops, .fd = fd, .name = f->path };
  *out = &f->d;
  return 0;
}

bool
cv_dev_is_file (const struct cv_dev *d)
{
  return d->fd >= 0;
}

int
cv_dev_pread (struct cv_dev *d, void *buf, size_t len, uint64_t off,
              size_t *got)
{
  return d->ops->pread (d, buf, len, off, got);
}

int
cv_dev_pwrite (struct cv_dev *d, const void *buf, size_t len, uint64_t off,
               bool dsync)
{
  return d->ops->pwrite (d, buf, len, off, dsync);
}

int
cv_dev_flush (struct cv_dev *d)
{
  return d->ops->flush (d);
}

int
cv_dev_size (struct cv_dev *d, uint64_t *size)
{
  return d->ops->size (d, size);
}

int
cv_dev_resize (struct cv_dev *d, uint64_t size)
{
  return d->ops->resize (d, size);
}

int
cv_dev_lock (struct cv_dev *d, enum cv_dev_lock which, short type, bool wait)
{
  return d->ops->lock (d, which, type, wait);
}

int
cv_dev_holder (struct cv_dev *d, char *who, size_t who_len)
{
  return d->ops->holder (d, who, who_len);
}

void
cv_dev_close (struct cv_dev *d)
{
  if (d)
    d->ops->close (d);
}

/* Placeholder until the RBD backend lands: rbd: paths are refused. */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "io/io-internal.h"
#include "io/rbd.h"

bool
cv_rbd_is_path (const char *path)
{
  return path && strncmp (path, "rbd:", 4) == 0;
}

int
cv_rbd_parse (const char *path, struct cv_rbd_spec *s)
{
  cv_err ("%s: RBD volumes are not supported yet", path);
  return -ENOTSUP;
}

int
cv_rbd_create (const char *path, const struct cv_rbd_opts *o, uint64_t size)
{
  return cv_rbd_parse (path, NULL);
}

int
cv_rbd_remove (const char *path, const struct cv_rbd_opts *o)
{
  return cv_rbd_parse (path, NULL);
}

int
cv_rbd_dev_open (const char *path, const struct cv_rbd_opts *o, bool readonly,
                 struct cv_dev **out)
{
  return cv_rbd_parse (path, NULL);
}

static int
rbd_open (const struct cv_io_open_opts *o, struct cv_io **out)
{
  return cv_rbd_parse (o->path, NULL);
}

const struct cv_io_ops cv_io_rbd_ops = { .name = "rbd", .open = rbd_open };

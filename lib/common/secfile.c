/* The one check that a secret file is private to its owner. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/secfile.h"

/* Warn if st is a regular file with any group or other permission bit. */
static void
check_mode (const struct stat *st, const char *what, const char *name)
{
  if (!S_ISREG (st->st_mode) || !(st->st_mode & 077))
    return;
  cv_warn ("%s %s can be accessed by group or others (mode %04o); "
           "chmod 600 %s",
           what, name, (unsigned) (st->st_mode & 07777), name);
}

int
cv_secret_fd_check (int fd, const char *what, const char *name)
{
  struct stat st;
  char link[32], path[PATH_MAX];
  ssize_t n;

  if (fstat (fd, &st) < 0)
    return -errno;
  if (!name && S_ISREG (st.st_mode)) {
    snprintf (link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink (link, path, sizeof path - 1);
    if (n < 0)
      snprintf (path, sizeof path, "(fd %d)", fd);
    else
      path[n] = '\0';
    name = path;
  }
  check_mode (&st, what, name);
  return 0;
}

int
cv_secret_path_check (const char *path, const char *what)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return -errno;
  check_mode (&st, what, path);
  return 0;
}

/* The one check that a secret file is private to its owner. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "common/secfile.h"

/* The POSIX access ACL as the kernel stores it in the extended attribute
 * "system.posix_acl_access" (the format libacl reads; little-endian). */
#define ACL_XATTR_VERSION 2
enum {
  ACL_USER = 0x02,
  ACL_GROUP_OBJ = 0x04,
  ACL_GROUP = 0x08,
  ACL_MASK = 0x10,
  ACL_OTHER = 0x20
};

static unsigned
le16 (const uint8_t *p)
{
  return (unsigned) p[0] | (unsigned) p[1] << 8;
}

static uint32_t
le32 (const uint8_t *p)
{
  return (uint32_t) le16 (p) | (uint32_t) le16 (p + 2) << 16;
}

/* Whether the file's ACL (xattr value a, n bytes) lets no one read or write
 * it but its owner and the user running us: systemd hands a service its
 * credentials as root's files with an ACL entry for the service's user,
 * which stat shows as group bits (the ACL's mask). False if it lets anyone
 * else, or cannot be read. */
static bool
acl_private (const uint8_t *a, size_t n)
{
  unsigned mask = 7;

  if (n < 4 || (n - 4) % 8 || le32 (a) != ACL_XATTR_VERSION)
    return false;
  for (size_t i = 4; i < n; i += 8)
    if (le16 (a + i) == ACL_MASK)
      mask = le16 (a + i + 2);
  for (size_t i = 4; i < n; i += 8) {
    unsigned tag = le16 (a + i);
    unsigned perm = le16 (a + i + 2);
    uint32_t id = le32 (a + i + 4);
    if (tag == ACL_USER && (perm & mask) && id != (uint32_t) geteuid ())
      return false;
    if ((tag == ACL_GROUP_OBJ || tag == ACL_GROUP) && (perm & mask))
      return false;
    if (tag == ACL_OTHER && perm)
      return false;
  }
  return true;
}

/* Whether the group bits of the file open on fd (or at path) are an ACL's
 * mask that grants no one else (acl_private). */
static bool
private_by_acl (int fd, const char *path)
{
  uint8_t a[512];
  ssize_t n = fd >= 0 ? fgetxattr (fd, "system.posix_acl_access", a, sizeof a)
                      : getxattr (path, "system.posix_acl_access", a, sizeof a);

  return n > 0 && acl_private (a, (size_t) n);
}

/* Warn if st is a regular file with any group or other permission bit that
 * is not an ACL's mask granting only us (fd, or path if fd < 0). */
static void
check_mode (const struct stat *st, int fd, const char *path, const char *what,
            const char *name)
{
  if (!S_ISREG (st->st_mode) || !(st->st_mode & 077))
    return;
  if (!(st->st_mode & 007) && private_by_acl (fd, path))
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
  check_mode (&st, fd, NULL, what, name);
  return 0;
}

int
cv_secret_path_check (const char *path, const char *what)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return -errno;
  check_mode (&st, -1, path, what, path);
  return 0;
}

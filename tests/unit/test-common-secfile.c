/* Secret-file permissions (lib/common/secfile.c): a file group or others can
 * access is named with its mode and the fix, a private one and a pipe pass in
 * silence, and neither check ever refuses. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/secfile.h"
#include "harness.h"

static bool
logged (const char *s)
{
  return strstr (harness_logged (), s) != NULL;
}

/* A file of mode mode, checked through its fd and through its path. */
static void
test_mode (const char *dir, mode_t mode, bool warns)
{
  char p[512], m[32];
  CLEANUP_CLOSE int fd = -1;

  snprintf (p, sizeof p, "%s/secret-%04o", dir, (unsigned) mode);
  snprintf (m, sizeof m, "mode %04o", (unsigned) mode);
  fd = open (p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  CHECK (fd >= 0 && fchmod (fd, mode) == 0, "create %s", p);

  harness_log_clear ();
  CHECK (cv_secret_fd_check (fd, "PIN file", p) == 0, "fd check, %s", m);
  if (warns)
    CHECK (logged ("warning: PIN file ") && logged (p) && logged (m)
               && logged ("chmod 600 "),
           "fd %s warns: %s", m, harness_logged ());
  else
    CHECK (harness_logged ()[0] == '\0', "fd %s silent: %s", m,
           harness_logged ());

  harness_log_clear ();
  CHECK (cv_secret_path_check (p, "passphrase file") == 0, "path check, %s", m);
  if (warns)
    CHECK (logged ("warning: passphrase file ") && logged (m),
           "path %s warns: %s", m, harness_logged ());
  else
    CHECK (harness_logged ()[0] == '\0', "path %s silent: %s", m,
           harness_logged ());
}

/* A file with an access ACL of n entries {tag, perm, id} (the kernel's
 * xattr format), checked by path: warns or not. False if the file system
 * takes no ACL. */
static bool
test_acl (const char *dir, const char *name, const unsigned (*e)[3], size_t n,
          bool warns)
{
  char p[512];
  uint8_t a[4 + 8 * 8] = { 2, 0, 0, 0 }; /* version 2, little-endian */
  CLEANUP_CLOSE int fd = -1;

  snprintf (p, sizeof p, "%s/%s", dir, name);
  fd = open (p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  for (size_t i = 0; i < n; i++) {
    uint8_t *q = a + 4 + 8 * i;
    q[0] = (uint8_t) e[i][0];
    q[2] = (uint8_t) e[i][1];
    for (int b = 0; b < 4; b++)
      q[4 + b] = (uint8_t) (e[i][2] >> (8 * b));
  }
  if (fd < 0 || fsetxattr (fd, "system.posix_acl_access", a, 4 + 8 * n, 0) < 0)
    return false;
  harness_log_clear ();
  CHECK (cv_secret_path_check (p, "key file") == 0, "acl %s", name);
  CHECK (warns == logged ("warning: key file "), "acl %s: %s: %s", name,
         warns ? "no warning" : "a warning", harness_logged ());
  return true;
}

/* systemd's credentials: root's file, an ACL entry for the service's user
 * (here: us), shown as mode 0440; no warning. An entry for anyone else, or
 * for the group, warns. */
static void
test_acls (const char *dir)
{
  unsigned me = (unsigned) geteuid (), other = me + 4242;
  const unsigned cred[][3] = { { 0x01, 4, 0 },
                               { 0x02, 4, me },
                               { 0x04, 0, 0 },
                               { 0x10, 4, 0 },
                               { 0x20, 0, 0 } };
  const unsigned user[][3] = { { 0x01, 4, 0 },
                               { 0x02, 4, other },
                               { 0x04, 0, 0 },
                               { 0x10, 4, 0 },
                               { 0x20, 0, 0 } };
  const unsigned group[][3] = { { 0x01, 4, 0 },
                                { 0x02, 4, me },
                                { 0x04, 4, 0 },
                                { 0x10, 4, 0 },
                                { 0x20, 0, 0 } };

  if (!test_acl (dir, "cred", cred, 5, false)) {
    printf ("no POSIX ACLs on %s: ACL checks skipped\n", dir);
    return;
  }
  test_acl (dir, "acl-user", user, 5, true);
  test_acl (dir, "acl-group", group, 5, true);
}

int
main (void)
{
  char dir[] = "/tmp/test-secfile-XXXXXX";
  int fds[2];

  harness_init ();
  harness_mkdtemp (dir);
  test_mode (dir, 0600, false);
  test_mode (dir, 0400, false);
  test_mode (dir, 0640, true);
  test_mode (dir, 0604, true);
  test_mode (dir, 0644, true);

  test_acls (dir);

  /* An fd without a name (--passphrase-fd 3 <FILE): named by its path. */
  char p[512];
  snprintf (p, sizeof p, "%s/secret-0644", dir);
  CLEANUP_CLOSE int ffd = open (p, O_RDONLY | O_CLOEXEC);
  harness_log_clear ();
  CHECK (cv_secret_fd_check (ffd, "passphrase", NULL) == 0, "unnamed fd");
  CHECK (logged ("warning: passphrase ") && logged (p) && logged ("mode 0644"),
         "unnamed fd named by its path: %s", harness_logged ());

  /* A pipe (--passphrase-fd from a shell pipeline): nothing to say. */
  CHECK (pipe (fds) == 0, "pipe");
  harness_log_clear ();
  CHECK (cv_secret_fd_check (fds[0], "passphrase", NULL) == 0, "pipe");
  CHECK (harness_logged ()[0] == '\0', "pipe silent: %s", harness_logged ());
  close (fds[0]);
  close (fds[1]);

  /* Failures come back as errno, unlogged: the caller's open or read says. */
  harness_log_clear ();
  CHECK (cv_secret_fd_check (-1, "PIN", "fd -1") == -EBADF, "bad fd");
  char absent[600];
  snprintf (absent, sizeof absent, "%s/absent", dir);
  CHECK (cv_secret_path_check (absent, "PIN file") == -ENOENT, "absent");
  CHECK (harness_logged ()[0] == '\0', "failures unlogged: %s",
         harness_logged ());
  harness_rm_rf (dir);
  return harness_done ("test-common-secfile");
}

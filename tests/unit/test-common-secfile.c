/* Secret-file permissions (lib/common/secfile.c): a file group or others can
 * access is named with its mode and the fix, a private one and a pipe pass in
 * silence, and neither check ever refuses. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
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

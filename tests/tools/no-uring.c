/* no-uring: run a command where io_uring is refused, as a container's
 * seccomp profile (Docker's default among them) refuses it. Installs a
 * seccomp filter that fails io_uring_setup, io_uring_enter and
 * io_uring_register with EPERM (or the errno given), then execs the command;
 * the filter is inherited by everything it runs.
 *
 * Usage: no-uring [-e EPERM|ENOSYS] COMMAND [ARGS...] */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

int
main (int argc, char **argv)
{
  int err = EPERM, rc;
  scmp_filter_ctx ctx;

  if (argc > 2 && strcmp (argv[1], "-e") == 0) {
    if (strcmp (argv[2], "ENOSYS") == 0)
      err = ENOSYS;
    else if (strcmp (argv[2], "EPERM") != 0) {
      fprintf (stderr, "no-uring: -e %s: expected EPERM or ENOSYS\n", argv[2]);
      return 2;
    }
    argv += 2, argc -= 2;
  }
  if (argc < 2) {
    fprintf (stderr, "usage: no-uring [-e EPERM|ENOSYS] COMMAND [ARGS...]\n");
    return 2;
  }
  if (!(ctx = seccomp_init (SCMP_ACT_ALLOW))) {
    fprintf (stderr, "no-uring: seccomp_init failed\n");
    return 1;
  }
  if ((rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (err),
                              SCMP_SYS (io_uring_setup), 0))
          < 0
      || (rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (err),
                                 SCMP_SYS (io_uring_enter), 0))
             < 0
      || (rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (err),
                                 SCMP_SYS (io_uring_register), 0))
             < 0
      || (rc = seccomp_load (ctx)) < 0) {
    fprintf (stderr, "no-uring: installing the seccomp filter: %s\n",
             strerror (-rc));
    seccomp_release (ctx);
    return 1;
  }
  seccomp_release (ctx);
  execvp (argv[1], argv + 1);
  fprintf (stderr, "no-uring: %s: %s\n", argv[1], strerror (errno));
  return 127;
}

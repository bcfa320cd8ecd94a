/* cryptvol-keymgr genkey: a new 32-byte key-encryption key file. */
#include <getopt.h>
#include <stdio.h>

#include "keymgr.h"

int
cmd_genkey (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr genkey FILE\n"
        "Writes 32 random bytes to FILE (created, mode 0400; an existing "
        "file is never\noverwritten).\n";
  struct common_opts co;
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind];
  if ((rc = cv_keyfile_create (path)) == 0)
    report (co.json, json_pack ("{s:s}", "keyfile", path),
            "wrote a new 32-byte key to %s\n", path);
  common_free (&co);
  return exit_code (rc);
}

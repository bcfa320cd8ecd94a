/* cryptvol-keymgr genkey: a new 32-byte key-encryption key file. */
#include <getopt.h>
#include <stdio.h>

#include "keymgr.h"

int
cmd_genkey (int argc, char **argv)
{
  if (argc != 2 || argv[1][0] == '-') {
    fprintf (argc == 2 ? stdout : stderr,
             "usage: cryptvol-keymgr genkey FILE\n"
             "Writes 32 random bytes to FILE (created, mode 0400; an "
             "existing file is never overwritten).\n");
    return argc == 2 ? EXIT_OK : EXIT_USAGE;
  }
  int rc = cv_keyfile_create (argv[1]);
  if (rc == 0)
    printf ("wrote a new 32-byte key to %s\n", argv[1]);
  return exit_code (rc);
}

/* cv_lock_in_use_holder (lib/format/lock.c): who holds a volume's in-use
 * lock, told from a read-only descriptor without taking the lock, so that
 * info never disturbs a server or an offline keymgr. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "format/header.h"
#include "harness.h"

int
main (void)
{
  char path[] = "/tmp/test-lock-holder-XXXXXX";
  CLEANUP_CLOSE int made = mkstemp (path);

  harness_init ();
  CHECK (made >= 0, "mkstemp");
  CLEANUP_CLOSE int server = open (path, O_RDWR);
  CLEANUP_CLOSE int keymgr = open (path, O_RDWR);
  CLEANUP_CLOSE int info = open (path, O_RDONLY);

  CHECK (cv_lock_in_use_holder (FDEV (info, "volume")) == 0, "nobody");
  CHECK (cv_lock_in_use (FDEV (server, "volume"), false, false) == 0,
         "server: shared");
  CHECK (cv_lock_in_use_holder (FDEV (info, "volume")) == 1, "held shared");
  /* The probe took nothing: the server's lock alone keeps keymgr out, and
   * once it is gone keymgr gets its exclusive lock. */
  CHECK (cv_lock_in_use (FDEV (keymgr, "volume"), true, false) == -EBUSY,
         "keymgr: busy");
  close (server);
  server = -1;
  CHECK (cv_lock_in_use_holder (FDEV (info, "volume")) == 0,
         "released with the fd");
  CHECK (cv_lock_in_use (FDEV (keymgr, "volume"), true, false) == 0,
         "keymgr: exclusive");
  CHECK (cv_lock_in_use_holder (FDEV (info, "volume")) == 2, "held exclusive");
  /* The descriptor's own lock is not someone else's. */
  CHECK (cv_lock_in_use_holder (FDEV (keymgr, "volume")) == 0, "own lock");

  harness_log_clear ();
  CHECK (
      cv_lock_in_use_holder (FDEV (-1, "volume")) == -EBADF
          && strstr (harness_logged (), "cannot test the volume in-use lock"),
      "bad fd: %s", harness_logged ());
  unlink (path);
  return harness_done ("test-format-lock-holder");
}

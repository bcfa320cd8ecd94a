/* Many volumes in one process, as a server of many exports opens them: more
 * than there are pthread keys (PTHREAD_KEYS_MAX, 1024), each read from the
 * same thread, which keeps one io_uring ring for all of them (not one per
 * volume); a second thread has its own, freed when it exits; a volume
 * closed and another opened (perhaps at the same address) never reuses the
 * closed one's thread state. */
#include <dirent.h>
#include <pthread.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "test-vol-model.h"

#define NVOLS 1100
#define VOLSIZE (64 * 1024)

static struct cv_vol *vols[NVOLS];
static char paths[NVOLS][200];
static struct vm m;

/* The io_uring instances this process holds: its fds that are rings. */
static int
rings (void)
{
  DIR *d = opendir ("/proc/self/fd");
  struct dirent *de;
  char link[300], target[64];
  int n = 0;

  while (d && (de = readdir (d))) {
    snprintf (link, sizeof link, "/proc/self/fd/%s", de->d_name);
    ssize_t len = readlink (link, target, sizeof target - 1);
    if (len > 0) {
      target[len] = '\0';
      n += strcmp (target, "anon_inode:[io_uring]") == 0;
    }
  }
  if (d)
    closedir (d);
  return n;
}

/* Write len bytes of img to fd, leaving holes where it is zero (the
 * volume's journal area): a thousand copies stay small. */
static bool
write_sparse (int fd, const uint8_t *img, size_t len)
{
  static const uint8_t zero[4096];

  for (size_t off = 0; off < len; off += sizeof zero) {
    size_t n = len - off < sizeof zero ? len - off : sizeof zero;
    if (memcmp (img + off, zero, n) != 0
        && pwrite (fd, img + off, n, (off_t) off) != (ssize_t) n)
      return false;
  }
  return ftruncate (fd, (off_t) len) == 0;
}

/* Drop CAP_IPC_LOCK from the effective set and lower RLIMIT_MEMLOCK to
 * what is locked now, so that no new io_uring ring fits. False if the
 * process did not have it (the limit applied already). */
static bool
lose_ipc_lock (void)
{
  struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2];
  struct rlimit rl = { 0, RLIM_INFINITY };

  if (syscall (SYS_capget, &h, d) < 0
      || !(d[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32))))
    return false;
  d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
  if (syscall (SYS_capset, &h, d) < 0 || getrlimit (RLIMIT_MEMLOCK, &rl) < 0)
    return false;
  rl.rlim_cur = 0;
  return setrlimit (RLIMIT_MEMLOCK, &rl) == 0;
}

static int
open_copy (const char *path, struct cv_vol **v)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_vol_opts o
      = { .path = path, .creds = &c, .read_path = CV_READ_PREAD };

  return cv_vol_open (&o, v);
}

/* Read the first 4 KiB of volume i and compare with the model. */
static bool
read_ok (struct cv_vol *v)
{
  uint8_t buf[4096];

  return cv_vol_pread (v, buf, sizeof buf, 0) == 0
         && memcmp (buf, m.model, sizeof buf) == 0;
}

static void *
second_thread (void *arg)
{
  int *before_exit = arg;
  bool ok = true;

  for (int i = 0; i < 10; i++)
    ok &= read_ok (vols[i]);
  CHECK (ok, "second thread: reads: %s", harness_logged ());
  *before_exit = rings ();
  return NULL;
}

int
main (void)
{
  struct rlimit rl;
  bool ok = true;
  int opened = 0, in_thread = 0;
  pthread_t t;

  vm_init ();
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  if (getrlimit (RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < NVOLS * 3 + 64) {
    printf ("SKIP: RLIMIT_NOFILE %llu is too low for %d volumes\n",
            (unsigned long long) rl.rlim_cur, NVOLS);
    return 77;
  }
  vm_create (&m, 4096, VOLSIZE, false);
  vm_close (&m);

  /* Copies of one volume: each file its own volume to the library. */
  CLEANUP_FREE uint8_t *img = malloc (DOFF + VOLSIZE + GUARD);
  int fd = open (m.path, O_RDONLY);
  ssize_t len = img ? read (fd, img, DOFF + VOLSIZE + GUARD) : -1;
  close (fd);
  CHECK (len > DOFF, "read %s", m.path);
  for (int i = 0; i < NVOLS && len > DOFF; i++) {
    snprintf (paths[i], sizeof paths[i], "%s/v%d", vm_dir, i);
    fd = open (paths[i], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ok &= fd >= 0 && write_sparse (fd, img, (size_t) len);
    close (fd);
  }
  CHECK (ok, "copies of the volume");

  harness_log_clear ();
  for (int i = 0; i < NVOLS; i++)
    opened += open_copy (paths[i], &vols[i]) == 0;
  CHECK (opened == NVOLS, "%d of %d volumes opened: %s", opened, NVOLS,
         harness_logged ());
  ok = true;
  for (int i = 0; i < opened; i++)
    ok &= read_ok (vols[i]);
  CHECK (ok, "every volume reads back from one thread: %s", harness_logged ());
  CHECK (rings () <= 1, "one thread reading %d volumes holds %d rings", opened,
         rings ());

  if (opened == NVOLS) {
    pthread_create (&t, NULL, second_thread, &in_thread);
    pthread_join (t, NULL);
    CHECK (in_thread <= 2 && rings () <= 1,
           "a second thread: %d rings while it ran, %d after it exited",
           in_thread, rings ());

    /* A thread whose ring cannot be made (without CAP_IPC_LOCK, over
     * RLIMIT_MEMLOCK) still serves, through the portable backend. */
    if (lose_ipc_lock ()) {
      harness_log_clear ();
      in_thread = 0;
      pthread_create (&t, NULL, second_thread, &in_thread);
      pthread_join (t, NULL);
      CHECK (strstr (harness_logged (), "use the portable backend"),
             "no fallback from a ring that cannot be made: %s",
             harness_logged ());
    } else
      printf ("no CAP_IPC_LOCK to drop: ring fallback not tested\n");

    /* A closed volume's state is not reused by the next one opened. */
    cv_vol_close (vols[0]);
    vols[0] = NULL;
    CHECK (open_copy (paths[0], &vols[0]) == 0, "reopen: %s",
           harness_logged ());
    CHECK (vols[0] && read_ok (vols[0]), "the reopened volume reads back: %s",
           harness_logged ());
  }

  for (int i = 0; i < NVOLS; i++) {
    cv_vol_close (vols[i]);
    unlink (paths[i]);
  }
  vm_destroy (&m);
  vm_cleanup ();
  return harness_done ("test-vol-many");
}

/* Online DEK rotation (lib/vol/rotate-online.c): the engine re-encrypts a
 * volume while client threads write and read it at every alignment, each in
 * a region of its own with its own model; when it is done every byte reads
 * back as the model says, through the data path and straight from the file
 * under the new DEK alone. A rotation that cryptvol-keymgr begins in the
 * header on disk (cv_rot_prepare) is taken up by the served volume; each
 * refusal of cv_vol_rotate_start and the controls is checked; pause holds
 * the boundary while clients go on. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "test-vol-model.h"

/* A header device for descriptor fd (common/dev.h). */
#define FDEV(fd, name) ((struct cv_dev[1]){ cv_dev_file ((fd), (name)) })

#define VOLSIZE (8 * 1024 * 1024)
#define NCLIENTS 2

/* Open m with the credentials kept, as a server with a control socket. */
static int
sopen (struct vm *m, bool keep)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_vol_opts o
      = { .path = m->path, .creds = &c, .io = m->io, .keep_creds = keep };

  m->v = NULL;
  return cv_vol_open (&o, &m->v);
}

/* The rotation's state now. */
static void
rstate (struct vm *m, struct cv_rot_status *st)
{
  cv_vol_rotate_status (m->v, st);
}

/* Poll the rotation's state until it is want (or failed, or 60 s). */
static bool
wait_state (struct vm *m, const char *want)
{
  struct cv_rot_status st;

  for (int i = 0; i < 60000; i++) {
    rstate (m, &st);
    if (strcmp (st.state, want) == 0)
      return true;
    if (strcmp (st.state, "failed") == 0) {
      CHECK (0, "rotation failed: %s", st.error);
      return false;
    }
    usleep (1000);
  }
  CHECK (0, "rotation never reached \"%s\" (state %s, %llu of %llu)", want,
         st.state, (unsigned long long) st.done, (unsigned long long) st.total);
  return false;
}

/* A client: random writes and reads of its region until told to stop. */
struct client {
  struct vm *m;
  uint64_t lo, len;
  uint64_t rng;
  atomic_bool *stop;
  unsigned long writes, reads, errors;
};

static uint64_t
crnd (struct client *c)
{
  c->rng ^= c->rng << 13;
  c->rng ^= c->rng >> 7;
  c->rng ^= c->rng << 17;
  return c->rng;
}

static void *
client_main (void *arg)
{
  struct client *c = arg;
  struct vm *m = c->m;
  static const uint32_t sizes[] = { 1, 511, 4096, 4097, 65536, 262144 + 3 };
  uint8_t *buf = malloc (300 * 1024);

  while (buf && !atomic_load (c->stop)) {
    uint32_t len = sizes[crnd (c) % ARRAY_SIZE (sizes)];
    uint64_t off = c->lo + crnd (c) % (c->len - len);
    if (crnd (c) & 1) {
      for (uint32_t i = 0; i < len; i++)
        buf[i] = (uint8_t) crnd (c);
      if (cv_vol_pwrite (m->v, buf, len, off, (crnd (c) & 7) == 0) == 0)
        memcpy (m->model + off, buf, len);
      else
        c->errors++;
      c->writes++;
    } else {
      if (cv_vol_pread (m->v, buf, len, off) != 0
          || memcmp (buf, m->model + off, len) != 0)
        c->errors++;
      c->reads++;
    }
  }
  free (buf);
  return NULL;
}

/* Run NCLIENTS clients on m until the rotation is done; check they saw no
 * error and the volume matches the model through the data path and on
 * disk under the new DEK alone. */
static void
serve_through_rotation (struct vm *m, const char *what)
{
  pthread_t th[NCLIENTS];
  struct client c[NCLIENTS];
  atomic_bool stop = false;
  uint64_t part = m->size / NCLIENTS;

  for (int i = 0; i < NCLIENTS; i++) {
    c[i] = (struct client){ .m = m,
                            .lo = i * part,
                            .len = part,
                            .rng = 0x1234567 + (uint64_t) i,
                            .stop = &stop };
    pthread_create (&th[i], NULL, client_main, &c[i]);
  }
  bool done = wait_state (m, "done");
  atomic_store (&stop, true);
  unsigned long writes = 0, reads = 0, errors = 0;
  for (int i = 0; i < NCLIENTS; i++) {
    pthread_join (th[i], NULL);
    writes += c[i].writes, reads += c[i].reads, errors += c[i].errors;
  }
  struct cv_rot_status st;
  rstate (m, &st);
  CHECK (done && st.done == m->size && st.steps > 4,
         "%s: state %s, %llu of %llu in %llu steps", what, st.state,
         (unsigned long long) st.done, (unsigned long long) st.total,
         (unsigned long long) st.steps);
  CHECK (errors == 0 && writes > 10 && reads > 10,
         "%s: clients: %lu writes, %lu reads, %lu errors (%s)", what, writes,
         reads, errors, harness_logged ());
  CHECK (!cv_vol_rotating (m->v, NULL), "%s: still rotating", what);
  vm_check (m, what);
  cv_key_free (m->dek);
  cv_key_free (m->odek);
  m->odek = NULL;
  cv_key_from (cv_vol_dek (m->v)->b, CV_DEK_LEN, &m->dek);
  vm_check_disk (m, what);
}

/* Copy the first len bytes of file from over to (whole file: UINT64_MAX). */
static int
copy_file (const char *from, const char *to, uint64_t len)
{
  CLEANUP_CLOSE int in = open (from, O_RDONLY | O_CLOEXEC);
  CLEANUP_CLOSE int out = open (to, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  static uint8_t buf[1 << 20];
  uint64_t off = 0;

  if (in < 0 || out < 0)
    return -errno;
  while (off < len) {
    ssize_t n = pread (in, buf, len - off < sizeof buf ? len - off : sizeof buf,
                       (off_t) off);
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    if (pwrite (out, buf, (size_t) n, (off_t) off) != n)
      return -EIO;
    off += (uint64_t) n;
  }
  return 0;
}

/* Begin a rotation as cryptvol-keymgr rotate-dek --control does: in the
 * header on disk, under the header lock, from the DEK dek. */
static int
begin_on_disk (struct vm *m, const struct cv_key *dek, uint64_t step)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_header *h = NULL;
  unsigned valid;
  int fd = open (m->path, O_RDWR | O_CLOEXEC);
  int rc = fd < 0 ? -errno : cv_lock_header (FDEV (fd, "volume"), true);

  if (rc == 0) {
    if ((rc = cv_hdr_read (FDEV (fd, m->path), &h, &valid)) == 0
        && (rc
            = cv_rot_prepare (h, m->path, m->path, &c, dek, step, true, NULL))
               == 0)
      rc = cv_hdr_commit (FDEV (fd, m->path), h);
    cv_unlock_header (FDEV (fd, "volume"));
  }
  cv_hdr_free (h);
  if (fd >= 0)
    close (fd);
  return rc;
}

int
main (void)
{
  struct vm m;
  struct cv_rot_status st;

  vm_init ();

  /* A rotation begun on the open volume, run by the engine. */
  vm_create (&m, 4096, VOLSIZE, false);
  CHECK (cv_vol_rotate_begin (m.v, &(struct cv_creds){ .keyfile = vm_keyfile },
                              64 * 1024)
             == 0,
         "begin: %s", harness_logged ());
  rstate (&m, &st);
  CHECK (strcmp (st.state, "idle") == 0 && strlen (st.id) == 16,
         "a rotation not started is idle with its id: %s \"%s\"", st.state,
         st.id);
  CHECK (cv_vol_rotate_pause (m.v) == -ENOENT, "pause with no engine");
  CHECK (cv_vol_rotate_set_rate (m.v, -1) == -EINVAL, "rate -1");
  CHECK (cv_vol_rotate_start (m.v, NAN) == -EINVAL, "rate NaN");
  CHECK (cv_vol_rotate_start (m.v, 0) == 0, "start: %s", harness_logged ());
  serve_through_rotation (&m, "engine");
  vm_destroy (&m);

  /* keymgr's rotation in the header on disk, taken up while serving, with
   * a pause in the middle: the boundary stays while clients go on. */
  vm_create (&m, 512, VOLSIZE, false);
  vm_close (&m);
  CHECK (sopen (&m, true) == 0, "open: %s", harness_logged ());
  harness_log_clear ();
  CHECK (cv_vol_rotate_start (m.v, 0) == -ENOENT
             && strstr (harness_logged (), "rotate-dek"),
         "start with no rotation on disk: %s", harness_logged ());
  CHECK (begin_on_disk (&m, m.dek, 128 * 1024) == 0, "begin on disk: %s",
         harness_logged ());
  harness_log_clear ();
  CHECK (cv_vol_reload (m.v) == -EINVAL
             && strstr (harness_logged (), "has not taken up"),
         "reload of a header with a rotation not taken up: %s",
         harness_logged ());
  CHECK (cv_vol_rotate_start (m.v, 4) == 0, "adopt: %s", harness_logged ());
  CHECK (cv_vol_rotating (m.v, NULL), "adopted: rotating");
  CHECK (cv_vol_rotate_pause (m.v) == 0, "pause");
  rstate (&m, &st);
  CHECK (strcmp (st.state, "pausing") == 0 || strcmp (st.state, "paused") == 0,
         "right after a pause: %s", st.state);
  wait_state (&m, "paused");
  rstate (&m, &st);
  uint64_t held = st.done;
  for (int i = 0; i < 50; i++)
    CHECK (vm_write (&m, (uint64_t) (rnd () % (VOLSIZE - 9000)), 9000, i & 1)
               == 0,
           "write while paused");
  rstate (&m, &st);
  CHECK (strcmp (st.state, "paused") == 0 && st.done == held && held < m.size,
         "paused: %s at %llu, was %llu", st.state, (unsigned long long) st.done,
         (unsigned long long) held);
  CHECK (cv_vol_rotate_set_rate (m.v, 0) == 0, "rate unlimited");
  CHECK (cv_vol_rotate_resume (m.v) == 0, "resume");
  serve_through_rotation (&m, "adopted");
  CHECK (cv_vol_rotate_resume (m.v) == -ENOENT, "resume after the end");
  vm_close (&m);
  vm_open (&m);
  CHECK (!cv_vol_rotating (m.v, NULL), "reopened: no rotation");
  vm_check (&m, "reopened after the online rotation");
  vm_close (&m);

  /* Refusals of a rotation on disk the server cannot take up. */
  CHECK (sopen (&m, false) == 0, "open without credentials");
  CHECK (begin_on_disk (&m, m.dek, 0) == 0, "begin on disk");
  harness_log_clear ();
  CHECK (cv_vol_rotate_start (m.v, 0) == -ENOKEY
             && strstr (harness_logged (), "no credentials"),
         "no kept credentials: %s", harness_logged ());
  vm_close (&m);
  /* The volume opens with the new DEK (the rotation is on disk): a
   * rotation begun from another DEK than the one served is refused. */
  vm_open (&m);
  CHECK (cv_vol_rotating (m.v, NULL), "the rotation begun on disk resumes");
  CHECK (cv_vol_rotate_start (m.v, 0) == 0 && wait_state (&m, "done"),
         "continued at open");
  cv_key_free (m.dek);
  cv_key_from (cv_vol_dek (m.v)->b, CV_DEK_LEN, &m.dek);
  vm_check (&m, "continued at open");
  vm_close (&m);
  CHECK (sopen (&m, true) == 0, "open");
  CHECK (begin_on_disk (&m, m.dek, 0) == 0, "begin on disk");
  harness_log_clear ();
  CHECK (begin_on_disk (&m, m.dek, 0) == -EALREADY
             && strstr (harness_logged (), "already in progress"),
         "a second begin: %s", harness_logged ());
  CHECK (cv_vol_revoke (m.v, "test") == 0, "revoke");
  harness_log_clear ();
  CHECK (cv_vol_rotate_start (m.v, 0) == -EPERM
             && strstr (harness_logged (), "revoked"),
         "start while revoked: %s", harness_logged ());
  CHECK (cv_vol_resume (m.v) == 0, "resume: %s", harness_logged ());
  CHECK (cv_vol_rotate_start (m.v, 0) == 0 && wait_state (&m, "done"),
         "adopt after resume: %s", harness_logged ());
  vm_close (&m);

  /* Headers put back under a served volume from a copy of it that went on
   * without it: one whose rotation is under way, one begun from another
   * DEK. Both are refused and the server keeps serving its own. */
  char copy[sizeof m.path];
  snprintf (copy, sizeof copy, "%.180s.copy", m.path);
  CHECK (copy_file (m.path, copy, UINT64_MAX) == 0, "copy the volume");
  CHECK (sopen (&m, true) == 0, "open");
  struct vm m2 = m;
  snprintf (m2.path, sizeof m2.path, "%s", copy);
  m2.v = NULL;
  CHECK (sopen (&m2, true) == 0, "open the copy: %s", harness_logged ());
  CHECK (cv_vol_rotate_begin (m2.v, &(struct cv_creds){ .keyfile = vm_keyfile },
                              64 * 1024)
                 == 0
             && cv_vol_rotate_start (m2.v, 1) == 0,
         "rotate the copy: %s", harness_logged ());
  do
    rstate (&m2, &st);
  while (st.steps == 0 && strcmp (st.state, "running") == 0);
  cv_vol_rotate_stop (m2.v);
  CHECK (copy_file (copy, m.path, DOFF) == 0, "put a header back");
  harness_log_clear ();
  CHECK (cv_vol_rotate_start (m.v, 0) == -EINVAL
             && strstr (harness_logged (), "did not run"),
         "a rotation under way elsewhere: %s", harness_logged ());
  CHECK (cv_vol_rotate_start (m2.v, 0) == 0 && wait_state (&m2, "done")
             && cv_vol_rotate_begin (
                    m2.v, &(struct cv_creds){ .keyfile = vm_keyfile }, 0)
                    == 0,
         "rotate the copy again: %s", harness_logged ());
  cv_vol_close (m2.v);
  CHECK (copy_file (copy, m.path, DOFF) == 0, "put a header back");
  harness_log_clear ();
  CHECK (cv_vol_rotate_start (m.v, 0) == -EINVAL
             && strstr (harness_logged (), "another DEK"),
         "a rotation begun from another DEK: %s", harness_logged ());
  CHECK (!cv_vol_rotating (m.v, NULL) && vm_read (&m, 0, 65536, false) == 0,
         "still serving with its own DEK");
  unlink (copy);
  vm_destroy (&m);

  vm_cleanup ();
  return harness_done ("test-vol-rotate-online");
}

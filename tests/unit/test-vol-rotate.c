/* DEK rotation (lib/vol/rotate.c) and the data path around its boundary: a
 * rotation cut by a kill at each fault point of a step is finished by the
 * next open (journal recovery); a sector of the interrupted step that is
 * neither old nor new (torn) is refused, not guessed; an I/O error at each
 * operation of a step or of a recovery is returned once and leaves a volume
 * the next open makes consistent; requests straddling the boundary read and
 * write what the model says. The kills happen in a forked child, as a crash
 * would: CV_FAULT_KILL_AT (lib/common/fault.h); the I/O errors and short
 * transfers come from the portable backend (lib/io/backend.h). */
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>

#include "test-vol-model.h"

#define VOLSIZE (6 * CHUNK + 2 * 4096) /* 28 or 38 steps (see main) */

/* The fault points of one rotation step (step < 1 MiB: one hotzone piece),
 * in order. kill_at counts from the start of cv_vol_rotate_run. */
static const char *const point[] = {
  "rotate: journal written",
  "rotate: hotzone piece written",
  "header commit: copy 0 written, copy 1 not",
  "rotate: step committed",
};
#define NPOINTS (sizeof point / sizeof *point)
#define NJOURNALLED                                                            \
  2 /* points before the header commit: the journal finishes */

static char trace[256];
static char
    open_log[sizeof harness_log]; /* what the last open_recovered logged */

/* Open for the rotation engine: buffered, as cryptvol-keymgr rotate-dek does
 * (direct_recovery covers O_DIRECT). The data path is tested both ways. */
static int
eopen (struct vm *m, bool readonly, bool exclusive)
{
  bool direct = m->direct;

  m->direct = false;
  int rc = vm_open_opts (m, readonly, exclusive);
  m->direct = direct;
  return rc;
}

/* In a child, open the volume exclusively and continue its rotation until
 * the process is killed at fault point kill_at; check that it was, there. */
static void
run_killed (struct vm *m, unsigned long kill_at, const char *where)
{
  char n[32], line[256], last[256] = "";
  int status = 0;

  fflush (NULL);
  pid_t pid = fork ();
  if (pid == 0) {
    if (!freopen (trace, "w", stderr) || eopen (m, false, true) < 0)
      _exit (2);
    snprintf (n, sizeof n, "%lu", kill_at);
    setenv ("CV_FAULT_KILL_AT", n, 1);
    setenv ("CV_FAULT_TRACE", "1", 1);
    cv_vol_rotate_run (m->v, NULL, NULL);
    _exit (3); /* not killed */
  }
  CHECK (pid > 0 && waitpid (pid, &status, 0) == pid && WIFSIGNALED (status)
             && WTERMSIG (status) == SIGKILL,
         "child not killed at point %lu (status %#x)", kill_at, status);
  FILE *f = fopen (trace, "r");
  while (f && fgets (line, sizeof line, f))
    memcpy (last, line, sizeof line);
  if (f)
    fclose (f);
  snprintf (line, sizeof line, "fault point %lu: %s\n", kill_at, where);
  CHECK (strcmp (last, line) == 0, "killed at \"%.*s\", expected \"%s\"",
         (int) strcspn (last, "\n"), last, where);
}

/* The rotation boundary of the open volume (the volume must be rotating). */
static uint64_t
boundary (struct vm *m)
{
  uint64_t b = 0;

  CHECK (cv_vol_rotating (m->v, &b), "a rotation is in progress");
  return b;
}

/* An operation succeeded, said nothing, and the volume is still the model. */
static void
op_ok (struct vm *m, int rc, const char *op, uint64_t off, uint32_t len)
{
  char what[96];

  snprintf (what, sizeof what, "%s %u at %llu (ss %u, boundary %llu)", op, len,
            (unsigned long long) off, m->ss, (unsigned long long) boundary (m));
  CHECK (rc == 0 && error_lines () == 0, "%s: rc %d: %s", what, rc,
         harness_logged ());
  vm_check (m, what);
}

/* Open (recovering what a kill interrupted): the boundary is want and the
 * volume reads as the model, through the data path and on disk. What the
 * open logged goes to open_log. */
static void
open_recovered (struct vm *m, uint64_t want, const char *what)
{
  harness_log_clear ();
  int rc = eopen (m, false, false);
  CHECK (rc == 0, "%s: open: %d: %s", what, rc, harness_logged ());
  if (rc < 0)
    exit (harness_done ("test-vol-rotate (cannot go on)"));
  snprintf (open_log, sizeof open_log, "%s", harness_logged ());
  CHECK (boundary (m) == want, "%s: boundary %llu, expected %llu", what,
         (unsigned long long) boundary (m), (unsigned long long) want);
  vm_check (m, what);
  vm_check_disk (m, what);
}

/* cv_vol_rotate_begin on the open volume: a new DEK, its wraps re-made
 * under the test key file. */
static int
rotate_begin (struct vm *m, uint64_t step)
{
  struct cv_creds c = { .keyfile = vm_keyfile };

  return cv_vol_rotate_begin (m->v, &c, step);
}

/* Start a rotation to a new DEK with the given step; the volume ends closed.
 * From then on m->dek is the new DEK and m->odek the old one. */
static void
begin (struct vm *m, uint64_t step)
{
  vm_close (m);
  harness_log_clear ();
  CHECK (eopen (m, false, true) == 0, "exclusive open: %s", harness_logged ());
  int rc = rotate_begin (m, step);
  CHECK (rc == 0 && error_lines () == 0, "rotate_begin: %d: %s", rc,
         harness_logged ());
  cv_key_free (m->odek);
  m->odek = m->dek;
  m->dek = NULL;
  if (cv_key_from (cv_vol_dek (m->v)->b, cv_vol_dek (m->v)->len, &m->dek) < 0)
    exit (99);
  CHECK (boundary (m) == 0, "a new rotation starts at 0");
  vm_check (m, "after rotate_begin");
  vm_check_disk (m, "after rotate_begin");

  /* A second one is refused and changes nothing. */
  harness_log_clear ();
  rc = rotate_begin (m, step);
  CHECK (rc == -EALREADY && error_lines () == 1, "second rotate_begin: %d: %s",
         rc, harness_logged ());
  vm_close (m);
  /* No step has run: there is no journal record to replay. */
  open_recovered (m, 0, "begun, reopened");
  vm_close (m);
}

/* Writes, zeroes and reads of ranges around the boundary, unaligned too,
 * through the data path opened as configured; then the same reopened. */
static void
straddle (struct vm *m)
{
  vm_close (m);
  vm_open (m);
  const uint64_t b = boundary (m), ss = m->ss;
  const int64_t delta[] = { -(int64_t) ss - 1, -1, 0, 1, (int64_t) ss / 2 };
  const uint32_t len[]
      = { 1,        2, (uint32_t) ss, (uint32_t) ss + 2, 2 * (uint32_t) ss + 3,
          CHUNK + 5 };
  unsigned n = 0;

  CHECK (b > 0 && b < m->size, "the boundary %llu is inside the volume",
         (unsigned long long) b);
  for (size_t d = 0; d < sizeof delta / sizeof *delta; d++)
    for (size_t l = 0; l < sizeof len / sizeof *len; l++) {
      /* Centred on boundary + delta. */
      int64_t off = (int64_t) b + delta[d] - len[l] / 2;
      if (off < 0 || (uint64_t) off + len[l] > m->size)
        continue;
      n++;
      if (n % 3 == 0)
        op_ok (m, vm_zero (m, (uint64_t) off, len[l]), "zero", (uint64_t) off,
               len[l]);
      else
        op_ok (m, vm_write (m, (uint64_t) off, len[l], n & 1), "write",
               (uint64_t) off, len[l]);
      op_ok (m, vm_read (m, (uint64_t) off, len[l], n & 2), "read",
             (uint64_t) off, len[l]);
    }
  CHECK (n >= 25, "only %u straddling ranges", n);
  CHECK (boundary (m) == b, "requests do not move the boundary");
  vm_check_disk (m, "after straddling requests");
  vm_close (m);
  vm_open (m);
  CHECK (boundary (m) == b, "the boundary is kept");
  vm_check (m, "straddled, reopened");
}

/* Kill a step at each of its fault points in turn. Before the step's header
 * commit the journal finishes it at the next open; a read-only open is
 * refused until then. */
static void
cut_each_point (struct vm *m, uint64_t step)
{
  for (unsigned i = 0; i < NPOINTS; i++) {
    uint64_t b = boundary (m);
    char what[128];
    vm_close (m);
    run_killed (m, i + 1, point[i]);
    snprintf (what, sizeof what, "killed at \"%s\"", point[i]);
    if (i < NJOURNALLED) {
      harness_log_clear ();
      int rc = eopen (m, true, false);
      CHECK (rc == -EROFS && error_lines () == 1
                 && strstr (harness_logged (), "read-write once"),
             "%s: read-only open: %d: %s", what, rc, harness_logged ());
      if (rc == 0)
        vm_close (m);
    }
    open_recovered (m, b + step, what);
    CHECK ((i < NJOURNALLED)
               == (strstr (open_log, "finishing an interrupted") != NULL),
           "%s: recovery said: %s", what, open_log);
  }
}

/* The hotzone of the next step cut after its journal was written, with the
 * first half of its sectors already under the new DEK (as a crash during the
 * hotzone write leaves them): recovery re-encrypts only the rest. */
static void
cut_half_written (struct vm *m, uint64_t step)
{
  uint64_t b = boundary (m), half = step / m->ss / 2;
  struct cv_xts *x = NULL;
  char want[128];

  vm_close (m);
  run_killed (m, 1, point[0]);
  uint8_t *p = m->buf;
  memcpy (p, m->model + b, half * m->ss);
  int fd = open (m->path, O_WRONLY | O_CLOEXEC);
  CHECK (fd >= 0 && cv_xts_new (CV_XTS_AUTO, m->dek->b, m->ss, &x) == 0
             && cv_xts_encrypt (x, p, p, b / m->ss, half) == 0
             && pwrite (fd, p, half * m->ss, m->doff + b)
                    == (ssize_t) (half * m->ss),
         "write half the hotzone under the new DEK");
  cv_xts_free (x);
  if (fd >= 0)
    close (fd);
  open_recovered (m, b + step, "half the hotzone written");
  snprintf (want, sizeof want, "%llu of %llu sectors were still under the old",
            (unsigned long long) (step / m->ss - half),
            (unsigned long long) (step / m->ss));
  CHECK (strstr (open_log, want), "recovery said: %s", open_log);
}

/* A sector of the interrupted step that is neither its old nor its new
 * ciphertext is refused with -EIO naming it, at every open, until it is
 * restored; then recovery goes on. after names the point of the kill: with
 * the hotzone still old, or already new. */
static void
cut_torn (struct vm *m, uint64_t step, unsigned after)
{
  uint64_t b = boundary (m), sec = b / m->ss + 1;
  uint8_t saved[4096], junk[4096];
  char want[64];

  vm_close (m);
  run_killed (m, after + 1, point[after]);
  int fd = open (m->path, O_RDWR | O_CLOEXEC);
  rnd_fill (junk, m->ss);
  CHECK (fd >= 0 && pread (fd, saved, m->ss, m->doff + sec * m->ss) == m->ss
             && pwrite (fd, junk, m->ss, m->doff + sec * m->ss) == m->ss,
         "tear sector %llu", (unsigned long long) sec);
  snprintf (want, sizeof want, "sector %llu of the interrupted",
            (unsigned long long) sec);
  for (int i = 0; i < 2; i++) {
    harness_log_clear ();
    int rc = eopen (m, false, i == 1);
    CHECK (rc == -EIO && error_lines () == 1 && strstr (harness_logged (), want)
               && strstr (harness_logged (), "neither its old nor its new"),
           "torn sector after \"%s\": open: %d: %s", point[after], rc,
           harness_logged ());
    if (rc == 0)
      vm_close (m);
  }
  CHECK (pwrite (fd, saved, m->ss, m->doff + sec * m->ss) == m->ss,
         "restore sector %llu", (unsigned long long) sec);
  if (fd >= 0)
    close (fd);
  open_recovered (m, b + step, "torn sector restored");
}

static struct cv_io_faults faults;

/* Fail operations nth to nth + count - 1 of the portable backend, counted
 * from now, with EIO; nth = 0 disarms. */
static void
arm (unsigned long nth, unsigned long count)
{
  faults.ops = CV_IO_OP_READ | CV_IO_OP_WRITE | CV_IO_OP_FLUSH;
  faults.nth = nth;
  faults.count = count;
  faults.err = EIO;
  __atomic_store_n (&faults.seen, 0, __ATOMIC_SEQ_CST);
}

/* An I/O error at each operation of a rotation step (reading the hotzone,
 * syncing it before the journal names it, writing it durably):
 * cv_vol_rotate_run returns it, logged once. A failure after the step's
 * journal was written is finished from the journal at once, so the open
 * volume keeps serving the right data; the next open finds the same. */
static void
run_faults (struct vm *m, uint64_t step)
{
  static const char *const op[] = { "reading", "syncing", "writing" };
  const unsigned journalled = 2; /* ops before it leave the step undone */
  uint64_t b;

  vm_close (m);
  m->io = CV_IO_POSIX;
  m->faults = &faults;
  for (unsigned i = 0; i < ARRAY_SIZE (op); i++) {
    char what[64];
    snprintf (what, sizeof what, "rotate_run failing at %s", op[i]);
    harness_log_clear ();
    arm (0, 0);
    CHECK (eopen (m, false, true) == 0, "%s: open: %s", what,
           harness_logged ());
    b = boundary (m);
    arm (i + 1, 1);
    int rc = cv_vol_rotate_run (m->v, NULL, NULL);
    arm (0, 0);
    CHECK (rc == -EIO && error_lines () == 1
               && strstr (harness_logged (), "rotation: ")
               && strstr (harness_logged (), op[i]),
           "%s: %d: %s", what, rc, harness_logged ());
    CHECK (boundary (m) == (i < journalled ? b : b + step),
           "%s: the boundary is where the data is: %llu (from %llu)", what,
           (unsigned long long) boundary (m), (unsigned long long) b);
    vm_check (m, what);
    vm_close (m);
    open_recovered (m, i < journalled ? b : b + step, what);
    vm_close (m);
  }

  /* The flush of a step's written hotzone fails (the offline run's one
   * flush per step: the second flush of the step, after the sync before its
   * journal): the step is finished from its journal at once. */
  harness_log_clear ();
  arm (0, 0);
  CHECK (eopen (m, false, true) == 0, "open before a failed flush: %s",
         harness_logged ());
  b = boundary (m);
  arm (2, 1);
  faults.ops = CV_IO_OP_FLUSH;
  int frc = cv_vol_rotate_run (m->v, NULL, NULL);
  arm (0, 0);
  CHECK (frc == -EIO && error_lines () == 1
             && strstr (harness_logged (), "rotation: syncing"),
         "rotate_run failing at the hotzone's flush: %d: %s", frc,
         harness_logged ());
  CHECK (boundary (m) == b + step,
         "a failed flush: the boundary is where the data is: %llu (from %llu)",
         (unsigned long long) boundary (m), (unsigned long long) b);
  vm_check (m, "rotate_run failing at the hotzone's flush");
  vm_close (m);
  open_recovered (m, b + step, "reopened after a failed flush");
  vm_close (m);

  /* The hotzone's write fails, and so does every operation after it, the
   * step's recovery too: the open volume refuses I/O (what it holds may no
   * longer match its boundary) until it is opened again, which finishes the
   * step. */
  harness_log_clear ();
  CHECK (eopen (m, false, true) == 0, "open: %s", harness_logged ());
  b = boundary (m);
  uint8_t byte;
  arm (3, 1000);
  int rc = cv_vol_rotate_run (m->v, NULL, NULL);
  arm (0, 0);
  CHECK (rc == -EIO
             && strstr (harness_logged (),
                        "serves no I/O until it is opened again"),
         "a step that cannot be finished: %d: %s", rc, harness_logged ());
  CHECK (cv_vol_pread (m->v, &byte, 1, 0) == -EIO
             && cv_vol_pwrite (m->v, &byte, 1, b, false) == -EIO,
         "no I/O after an unfinished step");
  harness_log_clear ();
  CHECK (cv_vol_rotate_run (m->v, NULL, NULL) == -EIO
             && strstr (harness_logged (), "open the volume again"),
         "no rotation after an unfinished step: %s", harness_logged ());
  vm_close (m);
  open_recovered (m, b + step, "reopened after an unfinished step");
  vm_close (m);

  m->io = CV_IO_AUTO;
  m->faults = NULL;
  vm_open (m);
}

/* An I/O error at each operation of the recovery of an interrupted step
 * (reading the hotzone, writing its old sectors again, syncing): the open
 * fails with it, logged once, and the next open recovers. */
static void
recover_faults (struct vm *m, uint64_t step)
{
  uint64_t b = boundary (m);

  vm_close (m);
  run_killed (m, 1, point[0]);
  m->io = CV_IO_POSIX;
  m->faults = &faults;
  for (unsigned long i = 1; i <= 3; i++) {
    harness_log_clear ();
    arm (i, 1);
    int rc = eopen (m, false, false);
    arm (0, 0);
    CHECK (rc == -EIO && error_lines () == 1
               && strstr (harness_logged (), "rotation: "),
           "recovery failing at operation %lu: %d: %s", i, rc,
           harness_logged ());
    if (rc == 0)
      vm_close (m);
  }
  open_recovered (m, b + step, "recovered after failed recoveries");
  m->io = CV_IO_AUTO;
  m->faults = NULL;
}

/* Corrupt the journal record of a step cut after it was written: flip a
 * bit of the byte at offset at of the record. */
static void
corrupt_journal (struct vm *m, off_t at)
{
  int fd = open (m->path, O_RDWR | O_CLOEXEC);
  uint8_t byte;

  at += CV_HDR_AREA_SIZE; /* the journal follows the header copies */
  CHECK (fd >= 0 && pread (fd, &byte, 1, at) == 1 && (byte ^= 1, 1)
             && pwrite (fd, &byte, 1, at) == 1,
         "corrupt the journal record");
  if (fd >= 0)
    close (fd);
}

/* A journal record that does not authenticate (torn while it was written,
 * so before any data of its step) is ignored: the step is not replayed, and
 * the volume, whose hotzone is still old, reads as before. One whose hotzone
 * cannot be (not a whole number of sectors) is refused with -EBADMSG until
 * it is mended. */
static void
cut_torn_journal (struct vm *m, uint64_t step)
{
  uint64_t b = boundary (m);

  vm_close (m);
  run_killed (m, 1, point[0]);
  corrupt_journal (m, 4096); /* the first sector tag */
  open_recovered (m, b, "journal record torn");
  CHECK (!strstr (open_log, "finishing"), "a torn record is not replayed: %s",
         open_log);

  vm_close (m);
  run_killed (m, 1, point[0]);
  corrupt_journal (m, 24 + 7); /* the hotzone length's low byte */
  harness_log_clear ();
  int rc = eopen (m, false, false);
  CHECK (rc == -EBADMSG && error_lines () == 1
             && strstr (harness_logged (), "journal is malformed"),
         "malformed journal record: %d: %s", rc, harness_logged ());
  if (rc == 0)
    vm_close (m);
  corrupt_journal (m, 24 + 7);
  open_recovered (m, b + step, "journal record mended");
}

static unsigned progress_calls;
static uint64_t progress_last;

static void
progress (uint64_t done, uint64_t total, void *arg)
{
  struct vm *m = arg;

  CHECK (done > progress_last && done <= total && total == m->size,
         "progress %llu of %llu after %llu", (unsigned long long) done,
         (unsigned long long) total, (unsigned long long) progress_last);
  progress_calls++;
  progress_last = done;
}

/* Run the rotation to its end, on the portable backend with short transfers
 * of 7 bytes: the old DEK is gone, everything is under the new one, and a
 * reopened volume reads the same. */
static void
finish (struct vm *m, uint64_t step)
{
  uint64_t b = boundary (m);

  vm_close (m);
  harness_log_clear ();
  arm (0, 0);
  faults.short_max = 7;
  m->io = CV_IO_POSIX;
  m->faults = &faults;
  CHECK (eopen (m, false, true) == 0, "exclusive open: %s", harness_logged ());
  m->io = CV_IO_AUTO;
  m->faults = NULL;
  progress_calls = 0;
  progress_last = b;
  harness_log_clear ();
  int rc = cv_vol_rotate_run (m->v, progress, m);
  CHECK (rc == 0 && error_lines () == 0, "rotate_run: %d: %s", rc,
         harness_logged ());
  CHECK (progress_calls == (m->size - b + step - 1) / step
             && progress_last == m->size,
         "%u progress calls, last %llu", progress_calls,
         (unsigned long long) progress_last);
  CHECK (!cv_vol_rotating (m->v, NULL), "the rotation is over");
  cv_key_free (m->odek);
  m->odek = NULL;
  vm_check (m, "after the rotation");
  vm_check_disk (m, "after the rotation");
  harness_log_clear ();
  rc = cv_vol_rotate_run (m->v, NULL, NULL);
  CHECK (rc == -EINVAL && error_lines () == 1, "rotate_run again: %d: %s", rc,
         harness_logged ());
  CHECK (faults.seen > 0, "the rotation ran on the portable backend");
  vm_close (m);
  faults.short_max = 0;
  vm_open (m);
  CHECK (!cv_vol_rotating (m->v, NULL), "no rotation after reopening");
  vm_check (m, "after the rotation, reopened");
}

/* A read-only volume cannot begin a rotation. */
static void
readonly_begin (struct vm *m)
{
  vm_close (m);
  CHECK (vm_open_opts (m, true, false) == 0, "read-only open");
  int rc = rotate_begin (m, 0);
  CHECK (rc == -EROFS, "rotate_begin on a read-only volume: %d", rc);
  CHECK (!cv_vol_rotating (m->v, NULL), "no rotation begun");
  vm_close (m);
  vm_open (m);
  vm_check (m, "after a refused rotate_begin");
}

/* The rotation engine on a direct=true (O_DIRECT) volume: its buffers must
 * be aligned, or finishing an interrupted step at open fails with EINVAL.
 * main() makes malloc put every buffer of 64 KiB or more in its own mmap, 16
 * bytes past a page boundary, so that a buffer from malloc would fail in
 * every run. */
static void
direct_recovery (struct vm *m)
{
  const uint64_t step = 256 * 1024;

  begin (m, step);
  run_killed (m, 1, point[0]);
  harness_log_clear ();
  m->io = CV_IO_POSIX;
  int rc = vm_open_opts (m, false, false);
  m->io = CV_IO_AUTO;
  CHECK (rc == 0,
         "direct=true open of a volume with an interrupted rotation step: "
         "%d: %s",
         rc, harness_logged ());
  if (rc == 0) {
    CHECK (boundary (m) == step, "recovered");
    vm_check (m, "direct=true recovery");
    vm_close (m);
  }
  open_recovered (m, step, "recovered buffered");
  finish (m, step);
}

/* A volume whose data starts right after the header copies has no room for
 * the journal: a rotation is refused, once, and nothing changes. */
static void
no_journal_room (void)
{
  struct vm m;

  vm_doff = CV_HDR_AREA_SIZE;
  vm_create (&m, 4096, 4 * 4096, false);
  vm_doff = DOFF;
  vm_close (&m);
  CHECK (eopen (&m, false, true) == 0, "exclusive open");
  harness_log_clear ();
  int rc = rotate_begin (&m, 0);
  CHECK (rc == -ENOSPC && error_lines () == 1
             && strstr (harness_logged (), "no room for the rotation journal"),
         "rotate_begin without room for the journal: %d: %s", rc,
         harness_logged ());
  CHECK (!cv_vol_rotating (m.v, NULL), "no rotation begun");
  vm_close (&m);
  vm_open (&m);
  vm_check (&m, "after a refused rotate_begin");
  vm_check_disk (&m, "after a refused rotate_begin");
  vm_destroy (&m);
}

/* A rotation whose steps span several of the offline run's read pieces
 * (1 MiB) and end off their edges, on the default backend (io_uring where
 * it works): with reads ahead and two threads on the cipher, every sector
 * ends under the new DEK and reads as written. */
static void
pipelined (void)
{
  const uint64_t step = 3 * 1024 * 1024 + 3 * 4096;
  struct vm m;

  vm_create (&m, 4096, 2 * step + 5 * 4096, false);
  begin (&m, step);
  /* Out of the page cache, so that reads wait for the disk. */
  int fd = open (m.path, O_RDONLY | O_CLOEXEC);
  CHECK (fd >= 0 && fdatasync (fd) == 0
             && posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED) == 0,
         "drop %s from the page cache", m.path);
  if (fd >= 0)
    close (fd);
  harness_log_clear ();
  CHECK (eopen (&m, false, true) == 0, "exclusive open: %s", harness_logged ());
  int rc = cv_vol_rotate_run (m.v, NULL, NULL);
  CHECK (rc == 0 && error_lines () == 0, "pipelined rotate_run: %d: %s", rc,
         harness_logged ());
  CHECK (!cv_vol_rotating (m.v, NULL), "the pipelined rotation is over");
  cv_key_free (m.odek);
  m.odek = NULL;
  vm_check (&m, "after a pipelined rotation");
  vm_check_disk (&m, "after a pipelined rotation");
  vm_destroy (&m);
}

int
main (void)
{
  mallopt (M_MMAP_THRESHOLD, 64 * 1024);
  mallopt (M_TOP_PAD, 0);
  vm_init ();
  snprintf (trace, sizeof trace, "%s/fault-trace", vm_dir);
  no_journal_room ();
  pipelined ();
  for (int direct = 0; direct < 2; direct++) {
    /* 512-byte sectors buffered, 4096 with O_DIRECT; steps that put the
     * boundary off chunk edges. */
    unsigned ss = direct ? 4096 : 512;
    uint64_t step = direct ? 7 * 4096 : 41 * 512;
    struct vm m;
    vm_create (&m, ss, VOLSIZE, direct);
    readonly_begin (&m);
    begin (&m, step);
    /* Three whole steps, then a kill: the boundary is at 3 steps. */
    run_killed (&m, 3 * NPOINTS, point[NPOINTS - 1]);
    open_recovered (&m, 3 * step, "three steps");
    straddle (&m);
    run_faults (&m, step);
    recover_faults (&m, step);
    cut_each_point (&m, step);
    cut_half_written (&m, step);
    cut_torn (&m, step, 0);
    cut_torn (&m, step, 1);
    cut_torn_journal (&m, step);
    straddle (&m);
    finish (&m, step);
    if (direct)
      direct_recovery (&m);
    vm_destroy (&m);
  }
  unlink (trace);
  vm_cleanup ();
  return harness_done ("test-vol-rotate");
}

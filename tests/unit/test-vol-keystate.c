/* The key state of a served volume (lib/vol/keystate.c, watch.c) on
 * file-wrapped volumes: a key file removed or replaced revokes, restored
 * resumes; requests refused with EPERM while revoked and counted; requests
 * in flight during a revocation complete whole, every acknowledged write
 * reads back after resume and no read returns data decrypted with a wiped
 * key; transient failures (CV_KEY_CHECK_FAIL) keep serving through the
 * grace period, measured on a fake clock; resume=false; reload; the watch
 * thread; the events. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "test-vol-model.h"
#include "vol/vol-internal.h"

/* A header device for descriptor fd (common/dev.h). */
#define FDEV(fd, name) ((struct cv_dev[1]){ cv_dev_file ((fd), (name)) })

#define BS 4096
#define NBLOCKS 64
#define VOLSIZE (NBLOCKS * BS)

/* --- a fake clock for the grace period ---------------------------------- */

static time_t fake_now = 1700000000;

static time_t
fake_time (void)
{
  return fake_now;
}

/* --- events ----------------------------------------------------------- */

static char events[16384];
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;

static void
sink (void *arg, struct cv_vol *v, json_t *ev)
{
  char *s = json_dumps (ev, JSON_COMPACT | JSON_SORT_KEYS);

  pthread_mutex_lock (&ev_lock);
  if (s && strlen (events) + strlen (s) + 2 < sizeof events) {
    strcat (events, s);
    strcat (events, "\n");
  }
  pthread_mutex_unlock (&ev_lock);
  free (s);
}

static bool
event_seen (const char *what)
{
  pthread_mutex_lock (&ev_lock);
  bool r = strstr (events, what) != NULL;
  pthread_mutex_unlock (&ev_lock);
  return r;
}

static void
events_clear (void)
{
  pthread_mutex_lock (&ev_lock);
  events[0] = '\0';
  pthread_mutex_unlock (&ev_lock);
}

/* --- helpers ---------------------------------------------------------- */

static char aside[160], other[160];

/* Reopen m's volume keeping its credentials (a server with key-check=). */
static void
reopen_keeping (struct vm *m)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_vol_opts o
      = { .path = m->path, .creds = &c, .io = m->io, .keep_creds = true };

  vm_close (m);
  harness_log_clear ();
  int rc = cv_vol_open (&o, &m->v);
  CHECK (rc == 0, "reopen: %s", harness_logged ());
  if (rc < 0)
    exit (harness_done ("test-vol-keystate (cannot go on)"));
}

static enum cv_key_state
state (struct vm *m)
{
  struct cv_vol_status st;

  cv_vol_get_status (m->v, &st);
  return st.state;
}

static void
set_opts (struct vm *m, unsigned grace, bool serve, bool resume)
{
  struct cv_watch_opts o = { .interval_s = 0,
                             .grace_s = grace,
                             .serve_unreachable = serve,
                             .resume = resume };
  CHECK (cv_watch_add (m->v, &o) == 0, "set options");
}

/* Lines of the log that contain s. */
static int
log_count (const char *s)
{
  int n = 0;

  for (const char *p = harness_logged (); (p = strstr (p, s)); p++)
    n++;
  return n;
}

/* --- the tests -------------------------------------------------------- */

static void
test_classify (void)
{
  static const struct {
    int err;
    enum cv_check_class c;
  } t[] = {
    { 0, CV_CHECK_OK },
    { -EKEYREVOKED, CV_CHECK_REVOKED },
    { -EACCES, CV_CHECK_REVOKED },
    { -ENOENT, CV_CHECK_REVOKED },
    { -EBADMSG, CV_CHECK_REVOKED },
    { -EKEYREJECTED, CV_CHECK_REVOKED },
    { -EINVAL, CV_CHECK_REVOKED },
    { -ETIMEDOUT, CV_CHECK_TRANSIENT },
    { -ECONNREFUSED, CV_CHECK_TRANSIENT },
    { -EAGAIN, CV_CHECK_TRANSIENT },
    { -EIO, CV_CHECK_TRANSIENT },
    { -EPROTO, CV_CHECK_TRANSIENT },
    { -EKEYEXPIRED, CV_CHECK_TRANSIENT },
    { -ENOKEY, CV_CHECK_TRANSIENT },
    { -ENOMEM, CV_CHECK_TRANSIENT },
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    CHECK (cv_check_classify (t[i].err) == t[i].c, "classify %s: %d",
           strerror (-t[i].err), cv_check_classify (t[i].err));

  /* The reason a revocation's cause gives, as status shows it. */
  char buf[128];
  CHECK (strstr (cv_check_reason ("kms", -EKEYREVOKED, buf, sizeof buf),
                 "disabled or pending deletion"),
         "kms disabled: %s", buf);
  CHECK (strcmp (cv_check_reason ("file", -EKEYREJECTED, buf, sizeof buf),
                 "wrong key file")
             == 0,
         "file rejected");
  CHECK (strcmp (cv_check_reason ("tpm2", -ENOENT, buf, sizeof buf),
                 strerrordesc_np (ENOENT))
             == 0,
         "unknown type: %s", buf);
}

/* A volume opened without keeping its credentials cannot be checked or
 * resumed, nor watched. */
static void
test_no_creds (struct vm *m)
{
  struct cv_watch_opts o = { .interval_s = 5, .grace_s = 5, .resume = true };

  harness_log_clear ();
  CHECK (cv_vol_check_key (m->v) == -ENOKEY, "check without credentials");
  CHECK (strstr (harness_logged (), "kept no credentials"), "message: %s",
         harness_logged ());
  CHECK (cv_watch_add (m->v, &o) == -EINVAL, "watch without credentials");
  CHECK (cv_vol_revoke (m->v, "operator lock") == 0, "revoke");
  CHECK (cv_vol_resume (m->v) == -ENOKEY, "resume without credentials");
  CHECK (cv_vol_reload (m->v) == -EPERM, "reload while revoked");
  CHECK (strstr (harness_logged (), "reload refused while the key is revoked"),
         "message: %s", harness_logged ());
}

/* The key file removed, restored, replaced by another key. */
static void
test_keyfile (struct vm *m)
{
  struct cv_vol_status st;
  uint8_t *b = m->buf;

  harness_log_clear ();
  events_clear ();
  CHECK (cv_vol_check_key (m->v) == 0, "check: %s", harness_logged ());
  cv_vol_get_status (m->v, &st);
  CHECK (st.state == CV_KEY_UNLOCKED && st.wrap_id == 0
             && strcmp (st.wrap_type, "file") == 0
             && strcmp (st.last_outcome, "ok") == 0 && st.last_check[0]
             && st.cause[0] == '\0',
         "status after a good check: %s wrap %lld %s \"%s\"",
         cv_key_state_name (st.state), (long long) st.wrap_id, st.wrap_type,
         st.last_outcome);
  CHECK (event_seen ("{\"error\":\"\",\"event\":\"check\",\"outcome\":\"ok\""),
         "check event: %s", events);

  /* Counters: one read and one write of known sizes. */
  uint64_t served = st.served, rd = st.bytes_read, wr = st.bytes_written;
  CHECK (cv_vol_pread (m->v, b, 1000, 7) == 0, "read");
  CHECK (cv_vol_pwrite (m->v, m->model + 7, 1000, 7, false) == 0, "write");
  cv_vol_get_status (m->v, &st);
  CHECK (st.served == served + 2 && st.bytes_read == rd + 1000
             && st.bytes_written == wr + 1000,
         "counters: served %llu read %llu written %llu",
         (unsigned long long) st.served, (unsigned long long) st.bytes_read,
         (unsigned long long) st.bytes_written);
  /* A request that fails (beyond the end) is counted as failed, not
   * served nor refused. */
  uint64_t failed = st.failed, ok_checks = st.checks_ok;
  CHECK (ok_checks >= 1 && st.last_ok > 0, "a good check counted (%llu)",
         (unsigned long long) ok_checks);
  CHECK (cv_vol_pread (m->v, b, BS, m->size) == -EIO, "read beyond the end");
  CHECK (cv_vol_zero (m->v, BS, m->size, false) == -ENOSPC,
         "zero beyond the end");
  cv_vol_get_status (m->v, &st);
  CHECK (st.failed == failed + 2 && st.served == served + 2,
         "failed %llu (was %llu), served %llu", (unsigned long long) st.failed,
         (unsigned long long) failed, (unsigned long long) st.served);
  failed = st.failed;

  /* Removed: the check revokes; every request is refused, logged once. */
  CHECK (rename (vm_keyfile, aside) == 0, "move the key file away");
  harness_log_clear ();
  CHECK (cv_vol_check_key (m->v) == -ENOENT, "check, key file gone");
  CHECK (state (m) == CV_KEY_REVOKED, "revoked");
  CHECK (log_count ("key revoked") == 1, "one revocation message: %s",
         harness_logged ());
  CHECK (strstr (harness_logged (), "request id none"), "check logged: %s",
         harness_logged ());
  uint64_t refused = st.refused;
  harness_log_clear ();
  CHECK (cv_vol_pread (m->v, b, BS, 0) == -EPERM, "read refused");
  CHECK (cv_vol_pwrite (m->v, b, BS, 0, true) == -EPERM, "write refused");
  CHECK (cv_vol_zero (m->v, BS, 0, false) == -EPERM, "zero refused");
  CHECK (cv_vol_flush (m->v) == -EPERM, "flush refused");
  CHECK (harness_logged ()[0] == '\0', "refusals are not logged: %s",
         harness_logged ());
  CHECK (cv_vol_size (m->v) == m->size, "size still known");
  cv_vol_get_status (m->v, &st);
  CHECK (st.refused == refused + 4 && strstr (st.cause, "key check of wrap 0"),
         "refused %llu, cause \"%s\"", (unsigned long long) st.refused,
         st.cause);
  CHECK (st.failed == failed, "a refusal is not a failure (%llu failed)",
         (unsigned long long) st.failed);
  CHECK (st.checks_revoked >= 1 && st.checks_ok == ok_checks,
         "the revoking check counted as revoked (%llu)",
         (unsigned long long) st.checks_revoked);
  CHECK (event_seen ("\"event\":\"revoke\""), "revoke event: %s", events);

  /* Still gone: a check while revoked keeps it revoked; so does unlock. */
  CHECK (cv_vol_check_key (m->v) == -ENOENT, "check while revoked");
  CHECK (cv_vol_resume (m->v) == -ENOENT, "resume with the key gone");
  CHECK (state (m) == CV_KEY_REVOKED, "still revoked");

  /* Restored: the next check resumes, data intact. */
  CHECK (rename (aside, vm_keyfile) == 0, "restore the key file");
  harness_log_clear ();
  CHECK (cv_vol_check_key (m->v) == 0, "check, key back: %s",
         harness_logged ());
  CHECK (state (m) == CV_KEY_UNLOCKED, "resumed");
  CHECK (strstr (harness_logged (), "key usable again (wrap 0): serving"),
         "resume logged: %s", harness_logged ());
  CHECK (event_seen ("{\"event\":\"resume\",\"wrap\":0}"), "resume event: %s",
         events);
  vm_check (m, "after resume");

  /* Another key in the key file's place: revoked (the wrap does not open
   * with it), then resumed by the operator once the right one is back. */
  CHECK (rename (vm_keyfile, aside) == 0, "move the key file away");
  CHECK (cv_keyfile_create (vm_keyfile) == 0, "another key");
  CHECK (cv_vol_check_key (m->v) == -EKEYREJECTED, "check, another key");
  CHECK (state (m) == CV_KEY_REVOKED, "revoked by another key");
  CHECK (rename (aside, vm_keyfile) == 0, "restore the key file");
  CHECK (cv_vol_resume (m->v) == 0, "unlock: %s", harness_logged ());
  CHECK (cv_vol_resume (m->v) == 0, "unlock when not revoked");
  vm_check (m, "after the operator's unlock");
}

/* Transient failures: serve through the grace period, then fail closed;
 * on-unreachable=serve; resume=false. */
static void
test_grace (struct vm *m)
{
  time_t (*wall) (void) = cv_vol_time;

  cv_vol_time = fake_time;
  set_opts (m, 10, false, true);
  CHECK (cv_vol_check_key (m->v) == 0, "check");
  time_t good = fake_now;
  struct cv_vol_status st0;
  cv_vol_get_status (m->v, &st0);
  CHECK (st0.last_ok == (int64_t) good, "last_ok %lld is the check's time",
         (long long) st0.last_ok);

  setenv ("CV_KEY_CHECK_FAIL", "110", 1); /* ETIMEDOUT */
  harness_log_clear ();
  events_clear ();
  fake_now += 4;
  CHECK (cv_vol_check_key (m->v) == -ETIMEDOUT, "unreachable");
  CHECK (state (m) == CV_KEY_GRACE, "grace");
  CHECK (strstr (harness_logged (), "serving for up to 10 s"), "grace: %s",
         harness_logged ());
  CHECK (event_seen ("\"entered\":true"), "grace event: %s", events);
  CHECK (cv_vol_pread (m->v, m->buf, BS, 0) == 0, "served in grace");
  fake_now += 5; /* 9 s since the last success */
  CHECK (cv_vol_check_key (m->v) == -ETIMEDOUT, "unreachable");
  CHECK (state (m) == CV_KEY_GRACE, "still in grace at 9 s");
  fake_now += 1; /* 10 s */
  CHECK (cv_vol_check_key (m->v) == -ETIMEDOUT, "unreachable");
  CHECK (state (m) == CV_KEY_REVOKED, "failed closed at 10 s");
  struct cv_vol_status st;
  cv_vol_get_status (m->v, &st);
  CHECK (strstr (st.cause, "key service unreachable since 2023-11-14T22:13:20Z")
             && strstr (st.last_outcome, "unreachable: Connection timed out"),
         "cause \"%s\", outcome \"%s\"", st.cause, st.last_outcome);
  CHECK (st.checks_unreachable == st0.checks_unreachable + 3
             && st.checks_ok == st0.checks_ok && st.last_ok == (int64_t) good,
         "3 unreachable checks (%llu), last_ok still %lld",
         (unsigned long long) (st.checks_unreachable - st0.checks_unreachable),
         (long long) st.last_ok);
  CHECK (cv_vol_pread (m->v, m->buf, BS, 0) == -EPERM, "refused");
  fake_now += 100;
  CHECK (cv_vol_check_key (m->v) == -ETIMEDOUT, "still unreachable");
  unsetenv ("CV_KEY_CHECK_FAIL");
  CHECK (cv_vol_check_key (m->v) == 0, "reachable again");
  CHECK (state (m) == CV_KEY_UNLOCKED, "resumed");

  /* on-unreachable=serve: grace never ends in a revocation. */
  set_opts (m, 10, true, true);
  setenv ("CV_KEY_CHECK_FAIL", "11", 1); /* EAGAIN */
  harness_log_clear ();
  events_clear ();
  CHECK (cv_vol_check_key (m->v) == -EAGAIN, "unreachable");
  fake_now += 1000;
  CHECK (cv_vol_check_key (m->v) == -EAGAIN, "unreachable");
  CHECK (state (m) == CV_KEY_GRACE, "serving on");
  CHECK (strstr (harness_logged (), "serving on (on-unreachable=serve)"),
         "message: %s", harness_logged ());
  unsetenv ("CV_KEY_CHECK_FAIL");
  CHECK (cv_vol_check_key (m->v) == 0, "reachable again");
  CHECK (state (m) == CV_KEY_UNLOCKED, "grace over");
  CHECK (event_seen ("{\"entered\":false,\"event\":\"grace\"}"),
         "grace left: %s", events);

  /* resume=false: a revocation is final. */
  set_opts (m, 10, false, false);
  CHECK (cv_vol_revoke (m->v, "operator lock") == 0, "lock");
  CHECK (cv_vol_revoke (m->v, "again") == 0, "lock twice");
  CHECK (cv_vol_check_key (m->v) == -EKEYREVOKED, "no check asked");
  harness_log_clear ();
  CHECK (cv_vol_resume (m->v) == -EPERM, "no resume");
  CHECK (strstr (harness_logged (), "final until the server restarts"),
         "message: %s", harness_logged ());
  set_opts (m, 10, false, true);
  CHECK (cv_vol_resume (m->v) == 0, "resume allowed again");

  /* An operator's lock holds until unlock, whatever a check finds. */
  CHECK (cv_vol_revoke (m->v, "operator lock") == 0, "lock");
  CHECK (cv_vol_check_key (m->v) == 0 && state (m) == CV_KEY_REVOKED,
         "a check that finds the key usable does not end a lock");
  CHECK (cv_vol_resume (m->v) == 0 && state (m) == CV_KEY_UNLOCKED,
         "unlock ends it");
  cv_vol_time = wall;
}

/* Commit h to m's header (under the header lock, as keymgr does). */
static int
commit (struct vm *m, struct cv_header *h)
{
  CLEANUP_CLOSE int fd = open (m->path, O_RDWR | O_CLOEXEC);
  int rc = fd < 0 ? -errno : cv_lock_header (FDEV (fd, "volume"), true);

  if (rc == 0) {
    rc = cv_hdr_commit (FDEV (fd, m->path), h);
    cv_unlock_header (FDEV (fd, "volume"));
  }
  return rc;
}

static struct cv_header *
read_hdr (struct vm *m)
{
  CLEANUP_CLOSE int fd = open (m->path, O_RDONLY | O_CLOEXEC);
  struct cv_header *h = NULL;
  unsigned valid;

  if (fd < 0 || cv_hdr_read (FDEV (fd, m->path), &h, &valid) < 0)
    exit (harness_done ("test-vol-keystate (cannot read the header)"));
  return h;
}

/* Reload: a header of another volume or DEK refused; a removed wrap
 * replaced by another the credentials open, or refused. */
static void
test_reload (struct vm *m, struct vm *m2)
{
  char spec[200];
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_creds c2 = { .keyfile = other };
  CLEANUP_KEY struct cv_key *dek2 = NULL;
  struct cv_vol_status st;
  struct cv_header *h;

  events_clear ();
  CHECK (cv_vol_reload (m->v) == 0, "reload the same header: %s",
         harness_logged ());
  CHECK (event_seen ("\"event\":\"reload\""), "reload event: %s", events);

  /* Another DEK: refused, the previous header stays. */
  h = read_hdr (m);
  CHECK (cv_dek_generate (&dek2) == 0 && cv_hdr_seal (h, dek2) == 0
             && commit (m, h) == 0,
         "seal with another DEK");
  harness_log_clear ();
  CHECK (cv_vol_reload (m->v) == -EINVAL, "reload, another DEK");
  CHECK (strstr (harness_logged (), "not sealed with the DEK being served"),
         "message: %s", harness_logged ());
  CHECK (cv_hdr_seal (h, m->dek) == 0 && commit (m, h) == 0, "seal back");
  cv_hdr_free (h);

  /* Another volume's header: refused. */
  h = read_hdr (m2);
  CHECK (commit (m, h) == 0, "another volume's header");
  harness_log_clear ();
  CHECK (cv_vol_reload (m->v) == -EINVAL, "reload, another volume");
  CHECK (strstr (harness_logged (), "another uuid"), "message: %s",
         harness_logged ());
  cv_hdr_free (h);
  h = read_hdr (m);
  cv_hdr_free (h);

  /* Put m's own header back: m's key state kept its header in memory. */
  h = (struct cv_header *) cv_vol_header (m->v);
  CHECK (commit (m, h) == 0, "restore the header");

  /* A second wrap with the same key file; wrap 0 removed: wrap 1 taken. */
  h = read_hdr (m);
  snprintf (spec, sizeof spec, "file:%s", vm_keyfile);
  CHECK (cv_wrap_add (h, spec, &c, m->dek, NULL) == 0, "add wrap 1");
  CHECK (cv_hdr_wrap_remove (h, m->path, 0) == 0 && commit (m, h) == 0,
         "remove wrap 0");
  cv_hdr_free (h);
  CHECK (cv_vol_reload (m->v) == 0, "reload: %s", harness_logged ());
  cv_vol_get_status (m->v, &st);
  CHECK (st.wrap_id == 1, "wrap 1 in use, not %lld", (long long) st.wrap_id);
  CHECK (cv_vol_check_key (m->v) == 0, "check wrap 1: %s", harness_logged ());

  /* Only a wrap under another key file: refused, wrap 1 still checked. */
  h = read_hdr (m);
  snprintf (spec, sizeof spec, "file:%s", other);
  CHECK (cv_wrap_add (h, spec, &c2, m->dek, NULL) == 0, "add wrap 2");
  CHECK (cv_hdr_wrap_remove (h, m->path, 1) == 0 && commit (m, h) == 0,
         "remove wrap 1");
  cv_hdr_free (h);
  harness_log_clear ();
  CHECK (cv_vol_reload (m->v) == -ENOKEY, "reload, no wrap for us");
  CHECK (strstr (harness_logged (), "keeps the previous header and checks "
                                    "wrap 1"),
         "message: %s", harness_logged ());
  CHECK (cv_vol_check_key (m->v) == 0, "wrap 1 still checked");

  /* A check of a wrap the header does not have (cv_wrap_check directly). */
  harness_log_clear ();
  CHECK (cv_wrap_check (cv_vol_header (m->v), 7, &c, m->dek, NULL) == -ENOENT,
         "no wrap 7");
  CHECK (cv_wrap_check (cv_vol_header (m->v), 1, &c2, NULL, NULL)
             == -EKEYREJECTED,
         "another key file");
  /* A wrap (in a header in memory) that opens another DEK. */
  int64_t id = -1;
  h = read_hdr (m);
  snprintf (spec, sizeof spec, "file:%s", vm_keyfile);
  CHECK (cv_wrap_add (h, spec, &c, dek2, &id) == 0, "add a wrap of dek2");
  harness_log_clear ();
  CHECK (cv_wrap_check (h, id, &c, m->dek, NULL) == -EKEYREJECTED,
         "opens another DEK than the one held");
  CHECK (strstr (harness_logged (), "now opens another key than the volume's"),
         "message: %s", harness_logged ());
  harness_log_clear ();
  CHECK (cv_wrap_check (h, id, &c, NULL, NULL) == -EKEYREJECTED,
         "opens a DEK that does not authenticate the header");
  CHECK (strstr (harness_logged (), "is not this volume's DEK"), "message: %s",
         harness_logged ());
  cv_hdr_free (h);
}

/* Offer h to m's server as cryptvol-keymgr does (commit-header): copy 0,
 * without its trailing zeros. */
static int
offer (struct vm *m, const struct cv_header *h, uint64_t *seqid)
{
  CLEANUP_FREE uint8_t *buf = calloc (1, CV_HDR_COPY_SIZE);
  size_t len = CV_HDR_COPY_SIZE;

  if (!buf || cv_hdr_encode (h, 0, buf) < 0)
    return -ENOMEM;
  while (len && !buf[len - 1])
    len--;
  harness_log_clear ();
  return cv_vol_commit_header (m->v, buf, len, seqid);
}

/* commit-header: a header keymgr made is committed by the server when it
 * was made from the header on disk and passes reload's checks, or begins a
 * DEK rotation the server can take up; else nothing is written. */
static void
test_commit_header (struct vm *m)
{
  char spec[200];
  struct cv_creds c = { .keyfile = vm_keyfile };
  struct cv_creds c2 = { .keyfile = other };
  CLEANUP_KEY struct cv_key *dek2 = NULL, *dek1 = NULL;
  struct cv_header *h, *stale;
  uint64_t seq = 0, was;
  uint8_t junk[512];

  reopen_keeping (m);
  was = cv_vol_seqid (m->v);

  /* A wrap added with the DEK: committed, and served from then on. */
  h = read_hdr (m);
  stale = read_hdr (m);
  snprintf (spec, sizeof spec, "file:%s", other);
  CHECK (cv_wrap_add (h, spec, &c2, m->dek, NULL) == 0
             && cv_hdr_seal (h, m->dek) == 0,
         "add a wrap");
  events_clear ();
  CHECK (offer (m, h, &seq) == 0, "commit: %s", harness_logged ());
  CHECK (seq == was + 1 && cv_vol_seqid (m->v) == seq,
         "seqid %llu served, %llu committed, was %llu",
         (unsigned long long) cv_vol_seqid (m->v), (unsigned long long) seq,
         (unsigned long long) was);
  CHECK (event_seen ("\"event\":\"header\""), "header event: %s", events);
  cv_hdr_free (h);
  h = read_hdr (m);
  CHECK (cv_hdr_seqid (h) == seq && cv_hdr_wrap_find (h, 1, NULL) == 0,
         "on disk: seqid %llu, wrap 1",
         (unsigned long long) cv_hdr_seqid (h));
  cv_hdr_free (h);

  /* Made from a header that has changed since: refused. */
  CHECK (offer (m, stale, &seq) == -ESTALE, "stale");
  CHECK (strstr (harness_logged (), "was made from seqid"), "message: %s",
         harness_logged ());
  cv_hdr_free (stale);

  /* Not a header copy; more than one. */
  memset (junk, 0x5a, sizeof junk);
  harness_log_clear ();
  CHECK (cv_vol_commit_header (m->v, junk, sizeof junk, &seq) == -EBADMSG,
         "junk");
  CHECK (strstr (harness_logged (), "the header sent for commit"),
         "message: %s", harness_logged ());
  CHECK (cv_vol_commit_header (m->v, junk, CV_HDR_COPY_SIZE + 1, &seq)
             == -E2BIG,
         "too long");

  /* Sealed with another DEK, or dropping every wrap the server can open:
   * refused, nothing written. */
  h = read_hdr (m);
  CHECK (cv_dek_generate (&dek2) == 0 && cv_hdr_seal (h, dek2) == 0,
         "seal with another DEK");
  CHECK (offer (m, h, &seq) == -EINVAL, "another DEK");
  CHECK (strstr (harness_logged (), "the header sent is not sealed with the "
                                    "DEK being served"),
         "message: %s", harness_logged ());
  cv_hdr_free (h);
  h = read_hdr (m);
  CHECK (cv_hdr_wrap_remove (h, m->path, 0) == 0
             && cv_hdr_seal (h, m->dek) == 0,
         "remove wrap 0");
  CHECK (offer (m, h, &seq) == -ENOKEY, "no wrap for the server");
  CHECK (strstr (harness_logged (), "removes the wrap in use (0)"),
         "message: %s", harness_logged ());
  cv_hdr_free (h);
  h = read_hdr (m);
  CHECK (cv_hdr_seqid (h) == was + 1, "nothing written (seqid %llu)",
         (unsigned long long) cv_hdr_seqid (h));

  /* Not while revoked. */
  CHECK (cv_vol_revoke (m->v, "operator lock") == 0, "lock");
  CHECK (offer (m, h, &seq) == -EPERM, "revoked");
  CHECK (cv_vol_resume (m->v) == 0, "unlock");
  cv_hdr_free (h);

  /* A DEK rotation begun from the served DEK: committed, and taken up by
   * rotate (test-vol-rotate-online: the checks it shares with adopting one
   * from disk). */
  h = read_hdr (m);
  CHECK (cv_rot_prepare (h, m->path, m->path, &c, m->dek, 0, true, &dek1) == 0
             && cv_hdr_seal (h, dek1) == 0,
         "a rotation: %s", harness_logged ());
  CHECK (offer (m, h, &seq) == 0 && seq == was + 2, "rotation committed: %s",
         harness_logged ());
  cv_hdr_free (h);
  CHECK (cv_vol_rotate_start (m->v, 0) == 0, "taken up: %s",
         harness_logged ());
  struct cv_rot_status st;
  for (int i = 0; i < 60000; i++) {
    cv_vol_rotate_status (m->v, &st);
    if (strcmp (st.state, "done") == 0 || strcmp (st.state, "failed") == 0)
      break;
    usleep (1000);
  }
  CHECK (strcmp (st.state, "done") == 0, "rotation %s: %s", st.state,
         st.error);
  CHECK (cv_vol_pread (m->v, m->buf, BS, 0) == 0
             && memcmp (m->buf, m->model, BS) == 0,
         "reads back after the rotation");
  cv_key_free (m->dek);
  m->dek = STEAL (dek1);

  /* A volume served read-only takes no header change. */
  struct cv_vol_opts o
      = { .path = m->path, .creds = &c, .io = m->io, .readonly = true };
  struct vm ro = *m;
  CHECK (cv_vol_open (&o, &ro.v) == 0, "open read-only: %s",
         harness_logged ());
  h = read_hdr (m);
  CHECK (ro.v && offer (&ro, h, &seq) == -EROFS, "read-only");
  CHECK (strstr (harness_logged (), "served read-only"), "message: %s",
         harness_logged ());
  cv_hdr_free (h);
  cv_vol_close (ro.v);
}

/* --- requests in flight during revocations ----------------------------- */

#define NWRITERS 3
#define NREADERS 2
#define BLOCKS_PER 16 /* each writer's; readers read the blocks after */
#define RBASE (NWRITERS * BLOCKS_PER)

static struct vm *hm;
static volatile int stop;
static uint32_t acked[NBLOCKS]; /* last acknowledged sequence per block */
static int bad;                 /* reads that were not a whole valid block */
static unsigned long nwrites, nrefused;

/* Blocks readers read [RBASE, NBLOCKS) and writers write [0, RBASE). */
_Static_assert(RBASE + 4 < NBLOCKS, "room for the readers");

/* Block b's content for sequence seq: a header then bytes derived from it. */
static void
fill_block (uint8_t *p, uint32_t b, uint32_t seq)
{
  uint64_t x = (uint64_t) b << 32 | seq;

  memcpy (p, &b, 4);
  memcpy (p + 4, &seq, 4);
  for (size_t i = 8; i < BS; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t) x;
  }
}

static bool
valid_block (const uint8_t *p, uint32_t b)
{
  uint8_t want[BS];
  uint32_t hb, seq;

  memcpy (&hb, p, 4);
  memcpy (&seq, p + 4, 4);
  if (hb != b)
    return false;
  fill_block (want, b, seq);
  return memcmp (want, p, BS) == 0;
}

static void *
writer (void *arg)
{
  uintptr_t id = (uintptr_t) arg;
  uint8_t *p = aligned_alloc (4096, BS);
  uint32_t seq = 1;

  while (!__atomic_load_n (&stop, __ATOMIC_ACQUIRE)) {
    uint32_t b = (uint32_t) (id * BLOCKS_PER + seq % BLOCKS_PER);
    fill_block (p, b, seq);
    int rc = cv_vol_pwrite (hm->v, p, BS, (uint64_t) b * BS, seq % 4 == 0);
    if (rc == 0) {
      acked[b] = seq;
      __atomic_add_fetch (&nwrites, 1, __ATOMIC_RELAXED);
    } else if (rc == -EPERM)
      __atomic_add_fetch (&nrefused, 1, __ATOMIC_RELAXED);
    else
      __atomic_add_fetch (&bad, 1, __ATOMIC_RELAXED);
    seq++;
  }
  free (p);
  return NULL;
}

static void *
reader (void *arg)
{
  uint8_t *p = aligned_alloc (4096, 4 * BS);
  uint32_t n = 0;

  while (!__atomic_load_n (&stop, __ATOMIC_ACQUIRE)) {
    /* Blocks no writer writes: a read racing a write of the same block may
     * see some of its sectors old and some new. */
    uint32_t b = RBASE + n++ % (NBLOCKS - RBASE - 3);
    int rc = cv_vol_pread (hm->v, p, 4 * BS, (uint64_t) b * BS);
    if (rc == 0) {
      for (uint32_t i = 0; i < 4; i++)
        if (!valid_block (p + i * BS, b + i))
          __atomic_add_fetch (&bad, 1, __ATOMIC_RELAXED);
    } else if (rc != -EPERM)
      __atomic_add_fetch (&bad, 1, __ATOMIC_RELAXED);
  }
  free (p);
  return NULL;
}

/* Wait (yielding) until another write has been acknowledged. */
static void
await_write (void)
{
  unsigned long w = __atomic_load_n (&nwrites, __ATOMIC_RELAXED);

  while (__atomic_load_n (&nwrites, __ATOMIC_RELAXED) == w)
    sched_yield ();
}

static void
test_in_flight (struct vm *m)
{
  pthread_t th[NWRITERS + NREADERS];
  uint8_t *p = m->buf;

  hm = m;
  for (uint32_t b = 0; b < NBLOCKS; b++)
    fill_block (p + (size_t) b * BS, b, 0);
  CHECK (cv_vol_pwrite (m->v, p, VOLSIZE, 0, false) == 0, "fill");
  harness_log_clear ();
  for (uintptr_t i = 0; i < NWRITERS; i++)
    pthread_create (&th[i], NULL, writer, (void *) i);
  for (int i = 0; i < NREADERS; i++)
    pthread_create (&th[NWRITERS + i], NULL, reader, NULL);
  int cycles = 0, failed = 0;
  for (; cycles < 100; cycles++) {
    await_write ();
    if (cv_vol_revoke (m->v, "test") < 0 || cv_vol_resume (m->v) < 0)
      failed++;
    if (cycles % 2 == 0) /* some requests meet a revoked volume */
      sched_yield ();
  }
  CHECK (cv_vol_revoke (m->v, "test") == 0, "revoke");
  __atomic_store_n (&stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < NWRITERS + NREADERS; i++)
    pthread_join (th[i], NULL);
  CHECK (failed == 0, "%d revoke/resume cycles failed: %s", failed,
         harness_logged ());
  CHECK (bad == 0, "%d requests failed otherwise or read an invalid block",
         bad);
  CHECK (nwrites > 100, "%lu writes acknowledged", nwrites);
  CHECK (cv_vol_resume (m->v) == 0, "resume");
  /* Every acknowledged write reads back. */
  CHECK (cv_vol_pread (m->v, p, VOLSIZE, 0) == 0, "read back");
  int lost = 0;
  for (uint32_t b = 0; b < NBLOCKS; b++) {
    uint32_t seq;
    memcpy (&seq, p + (size_t) b * BS + 4, 4);
    if (!valid_block (p + (size_t) b * BS, b) || seq != acked[b])
      lost++;
  }
  CHECK (lost == 0, "%d blocks do not hold their last acknowledged write",
         lost);
  fprintf (stderr, "  %d cycles, %lu writes acknowledged, %lu refused\n",
           cycles, nwrites, nrefused);
  memcpy (m->model, p, VOLSIZE);
}

/* --- the watch thread ------------------------------------------------- */

/* Poll the status until the state is s (bounded: 20 s). */
static bool
await_state (struct vm *m, enum cv_key_state s)
{
  struct timespec d = { 0, 5 * 1000 * 1000 };

  for (int i = 0; i < 4000; i++) {
    if (state (m) == s)
      return true;
    nanosleep (&d, NULL);
  }
  return false;
}

static void
test_watch (struct vm *m)
{
  struct cv_watch_opts o
      = { .interval_s = 3600, .grace_s = 900, .resume = true };
  struct cv_vol_status st;

  CHECK (cv_watch_add (m->v, &o) == 0, "add");
  CHECK (cv_watch_start () == 0, "start");
  CHECK (cv_watch_start () == 0, "start again");
  cv_vol_get_status (m->v, &st);
  CHECK (st.next_check[0], "next check announced");
  CHECK (rename (vm_keyfile, aside) == 0, "move the key file away");
  cv_watch_wake (m->v);
  CHECK (await_state (m, CV_KEY_REVOKED), "revoked by the watch");
  CHECK (rename (aside, vm_keyfile) == 0, "restore the key file");
  cv_watch_wake (m->v);
  CHECK (await_state (m, CV_KEY_UNLOCKED), "resumed by the watch");
  cv_watch_stop ();
  cv_vol_get_status (m->v, &st);
  CHECK (st.next_check[0] == '\0', "no next check after stop");
  vm_check (m, "after the watch");
}

/* A volume in a DEK rotation: a revocation wipes both DEKs; a resume
 * recovers the old one from the header again, so data under either reads
 * back. */
static void
test_rotating (struct vm *m)
{
  struct cv_creds c = { .keyfile = vm_keyfile };
  uint64_t boundary = 1;

  vm_close (m);
  CHECK (vm_open_opts (m, false, true) == 0, "exclusive open: %s",
         harness_logged ());
  CHECK (cv_vol_rotate_begin (m->v, &c, 64 * 1024) == 0, "rotate_begin: %s",
         harness_logged ());
  reopen_keeping (m);
  CHECK (cv_vol_rotating (m->v, &boundary) && boundary == 0, "rotating");
  rnd_fill (m->model, 3 * BS);
  CHECK (cv_vol_pwrite (m->v, m->model, 3 * BS, 0, false) == 0, "write");
  CHECK (cv_vol_revoke (m->v, "test") == 0, "revoke");
  CHECK (!cv_vol_rotating (m->v, NULL), "both DEKs wiped");
  CHECK (cv_vol_resume (m->v) == 0, "resume: %s", harness_logged ());
  CHECK (cv_vol_rotating (m->v, NULL), "the old DEK recovered");
  vm_check (m, "after resume during a rotation");
}

/* A passphrase wrap in use: checks pass without the KDF (shown by the
 * test knob, which a real check would meet); an operator's lock and unlock
 * run it. */
static void
test_passphrase (struct vm *m)
{
  CLEANUP_KEY struct cv_key *pass = NULL;
  struct cv_creds c = { .pbkdf = { "argon2id", 1, 8192, 1, 0 } };
  struct cv_wrap_sel sel = CV_WRAP_SEL_ALL;
  struct cv_vol_status st;
  struct cv_header *h = read_hdr (m);

  CHECK (cv_key_from ("correct horse", 13, &pass) == 0, "passphrase");
  c.passphrase = pass;
  CHECK (cv_wrap_add (h, "passphrase", &c, cv_vol_dek (m->v), NULL) == 0
             && commit (m, h) == 0,
         "add a passphrase wrap: %s", harness_logged ());
  cv_hdr_free (h);
  CHECK (cv_wrap_sel_add (&sel, "passphrase") == 0, "select it");
  struct cv_vol_opts o = {
    .path = m->path, .creds = &c, .wraps = &sel, .io = m->io, .keep_creds = true
  };
  vm_close (m);
  CHECK (cv_vol_open (&o, &m->v) == 0, "open: %s", harness_logged ());
  cv_vol_get_status (m->v, &st);
  CHECK (strcmp (st.wrap_type, "passphrase") == 0, "wrap type %s",
         st.wrap_type);
  setenv ("CV_KEY_CHECK_FAIL", "110", 1);
  CHECK (cv_vol_check_key (m->v) == 0, "check without the KDF");
  unsetenv ("CV_KEY_CHECK_FAIL");
  CHECK (cv_vol_revoke (m->v, "operator lock") == 0, "lock");
  CHECK (cv_vol_resume (m->v) == 0, "unlock with the kept passphrase: %s",
         harness_logged ());
  vm_check (m, "after unlock");
}

int
main (void)
{
  struct vm m, m2, m3;

  vm_init ();
  cv_vol_set_event_sink (sink, NULL);
  snprintf (aside, sizeof aside, "%s/kek.aside", vm_dir);
  snprintf (other, sizeof other, "%s/kek.other", vm_dir);
  if (cv_keyfile_create (other) < 0)
    exit (1);
  test_classify ();
  vm_create (&m, 512, VOLSIZE, false);
  vm_create (&m2, 512, VOLSIZE, false);
  test_no_creds (&m);
  reopen_keeping (&m);
  CHECK (event_seen ("\"event\":\"unlock\""), "unlock event: %s", events);
  test_keyfile (&m);
  test_grace (&m);
  test_in_flight (&m);
  test_watch (&m);
  test_reload (&m, &m2);
  vm_create (&m3, 512, VOLSIZE, false);
  test_commit_header (&m3);
  test_rotating (&m3);
  test_passphrase (&m3);
  vm_destroy (&m3);
  vm_destroy (&m);
  vm_destroy (&m2);
  unlink (other);
  unlink (aside);
  vm_cleanup ();
  return harness_done ("test-vol-keystate");
}

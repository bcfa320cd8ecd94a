/* A served volume's key state: the key check, revocation (the customer's
 * kill switch: the DEK and every thread's cipher state wiped, requests
 * refused), grace while the key service is out of reach, resume, header
 * reload, status and events. The data path side (a read lock per request)
 * is in volume.c; the thread that runs the checks in watch.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/reqlog.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keys/keys.h"
#include "vol-internal.h"
#include "volume.h"

static time_t
wall_now (void)
{
  return time (NULL);
}

time_t (*cv_vol_time) (void) = wall_now;

static cv_vol_event_sink sink;
static void *sink_arg;

void
cv_vol_set_event_sink (cv_vol_event_sink fn, void *arg)
{
  sink_arg = arg;
  sink = fn;
}

void
cv_vol_event (struct cv_vol *v, json_t *ev)
{
  if (ev && sink)
    sink (sink_arg, v, ev);
  json_decref (ev);
}

const char *
cv_key_state_name (enum cv_key_state s)
{
  switch (s) {
  case CV_KEY_UNLOCKED:
    return "unlocked";
  case CV_KEY_GRACE:
    return "grace";
  case CV_KEY_REVOKED:
    return "revoked";
  }
  return "unknown";
}

/* t as RFC 3339 UTC into buf (32 bytes). */
static void
rfc3339 (time_t t, char *buf)
{
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The id of the last request this process made to a key service, or "". */
static void
last_request_id (char *buf, size_t len)
{
  size_t n = cv_reqlog_count ();
  const char *service, *op, *id = "";

  if (n > 0)
    cv_reqlog_get (n - 1, &service, &op, &id);
  snprintf (buf, len, "%s", id);
}

/* The type of wrap id of v's header into v->wrap_type (under slock). */
void
cv_vol_note_wrap (struct cv_vol *v, int64_t id)
{
  struct cv_wrap_info wi;

  pthread_mutex_lock (&v->slock);
  v->wrap_id = id;
  snprintf (v->wrap_type, sizeof v->wrap_type, "%s",
            cv_hdr_wrap_find (v->hdr, id, &wi) == 0 && wi.type ? wi.type : "");
  pthread_mutex_unlock (&v->slock);
}

void
cv_vol_key_init (struct cv_vol *v, int64_t wrap_id)
{
  const struct cv_watch_opts dflt = CV_WATCH_OPTS_DEFAULT;
  pthread_rwlockattr_t a;
  char rid[80] = "";

  pthread_rwlockattr_init (&a);
  pthread_rwlockattr_setkind_np (&a,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&v->klock, &a);
  pthread_rwlockattr_destroy (&a);
  pthread_mutex_init (&v->op_lock, NULL);
  pthread_mutex_init (&v->slock, NULL);
  v->state = CV_KEY_UNLOCKED;
  v->wopts = dflt;
  __atomic_store_n (&v->last_ok, cv_vol_time (), __ATOMIC_RELAXED);
  cv_vol_note_wrap (v, wrap_id);
  if (strcmp (v->wrap_type, "kms") == 0)
    last_request_id (rid, sizeof rid);
  cv_vol_event (v, json_pack ("{s:s, s:I, s:s, s:s}", "event", "unlock", "wrap",
                              (json_int_t) wrap_id, "type", v->wrap_type,
                              "request_id", rid));
}

void
cv_vol_key_fini (struct cv_vol *v)
{
  pthread_rwlock_destroy (&v->klock);
  pthread_mutex_destroy (&v->op_lock);
  pthread_mutex_destroy (&v->slock);
  cv_creds_free (v->creds);
}

/* Set the state and its cause (under op_lock; the state under klock). */
static void
set_state (struct cv_vol *v, enum cv_key_state s, const char *cause)
{
  pthread_rwlock_wrlock (&v->klock);
  __atomic_store_n (&v->state, s, __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&v->klock);
  pthread_mutex_lock (&v->slock);
  snprintf (v->cause, sizeof v->cause, "%s", cause);
  pthread_mutex_unlock (&v->slock);
}

/* Revoke (op_lock held): requests in flight finish, then the keys and
 * every thread's engines are wiped. */
static int
revoke_locked (struct cv_vol *v, const char *cause)
{
  pthread_rwlock_wrlock (&v->klock);
  if (v->state == CV_KEY_REVOKED) {
    pthread_rwlock_unlock (&v->klock);
    return 0;
  }
  cv_key_free (v->dek);
  cv_key_free (v->odek);
  v->dek = v->odek = NULL;
  cv_vol_wipe_threads (v);
  v->gen++;
  __atomic_store_n (&v->state, CV_KEY_REVOKED, __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&v->klock);
  pthread_mutex_lock (&v->slock);
  snprintf (v->cause, sizeof v->cause, "%s", cause);
  pthread_mutex_unlock (&v->slock);
  cv_err ("%s: key revoked: %s; the DEK is wiped and every request is "
          "refused (EPERM) %s",
          v->path, cause,
          v->wopts.resume ? "until the key is usable again"
                          : "until the server restarts (resume=false)");
  cv_vol_event (v, json_pack ("{s:s, s:s}", "event", "revoke", "cause", cause));
  return 0;
}

int
cv_vol_revoke (struct cv_vol *v, const char *cause)
{
  pthread_mutex_lock (&v->op_lock);
  int rc = revoke_locked (v, cause);
  v->operator_lock = true;
  pthread_mutex_unlock (&v->op_lock);
  return rc;
}

/* Say that v kept no credentials. */
static int
no_creds (struct cv_vol *v, const char *what)
{
  cv_err ("%s: cannot %s: the server kept no credentials (key-check=0); "
          "restart it",
          v->path, what);
  return -ENOKEY;
}

/* Unwrap the wrap in use again and authenticate the header with it: the
 * DEK in *dek and, during a DEK rotation, the old one in *odek. */
static int
unwrap_again (struct cv_vol *v, struct cv_key **dek, struct cv_key **odek)
{
  struct cv_key *k = NULL;
  int rc = cv_wrap_check (v->hdr, v->wrap_id, v->creds, NULL, &k);

  *odek = NULL;
  if (rc == 0 && cv_hdr_rotating (v->hdr)
      && (rc = cv_rot_old_dek (v, k, odek)) < 0)
    cv_key_free (k);
  else if (rc == 0)
    *dek = k;
  return rc;
}

/* Serve again with dek and odek (op_lock held): threads re-key lazily. */
static void
install (struct cv_vol *v, struct cv_key *dek, struct cv_key *odek)
{
  pthread_rwlock_wrlock (&v->klock);
  v->dek = dek;
  v->odek = odek;
  v->gen++;
  __atomic_store_n (&v->state, CV_KEY_UNLOCKED, __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&v->klock);
  pthread_mutex_lock (&v->slock);
  v->cause[0] = '\0';
  pthread_mutex_unlock (&v->slock);
  __atomic_store_n (&v->last_ok, cv_vol_time (), __ATOMIC_RELAXED);
  cv_warn ("%s: key usable again (wrap %lld): serving", v->path,
           (long long) v->wrap_id);
  cv_rot_engine_wake (v); /* a rotation waiting for the key goes on */
  cv_vol_event (v, json_pack ("{s:s, s:I}", "event", "resume", "wrap",
                              (json_int_t) v->wrap_id));
}

/* Refuse a resume that resume=false forbids. */
static int
final (struct cv_vol *v)
{
  cv_err ("%s: the key was revoked and resume=false: the revocation is "
          "final until the server restarts",
          v->path);
  return -EPERM;
}

int
cv_vol_resume (struct cv_vol *v)
{
  struct cv_key *dek, *odek;
  int rc = 0;

  pthread_mutex_lock (&v->op_lock);
  if (v->state != CV_KEY_REVOKED)
    ;
  else if (!v->wopts.resume)
    rc = final (v);
  else if (!v->creds)
    rc = no_creds (v, "resume");
  else if ((rc = unwrap_again (v, &dek, &odek)) == 0) {
    v->operator_lock = false;
    install (v, dek, odek);
  }
  pthread_mutex_unlock (&v->op_lock);
  return rc;
}

/* Record the outcome of a check for status and emit its event. */
static void
record (struct cv_vol *v, int rc, enum cv_check_class cls, const char *rid)
{
  const char *outcome = cls == CV_CHECK_OK        ? "ok"
                        : cls == CV_CHECK_REVOKED ? "revoked"
                                                  : "unreachable";
  const char *err = rc < 0 ? strerrordesc_np (-rc) : "";
  char now[32];

  rfc3339 (cv_vol_time (), now);
  pthread_mutex_lock (&v->slock);
  snprintf (v->last_check, sizeof v->last_check, "%s", now);
  if (rc < 0)
    snprintf (v->last_outcome, sizeof v->last_outcome, "%s: %s", outcome, err);
  else
    snprintf (v->last_outcome, sizeof v->last_outcome, "ok");
  snprintf (v->last_request_id, sizeof v->last_request_id, "%s", rid);
  v->checks[cls]++;
  pthread_mutex_unlock (&v->slock);
  if (rc < 0)
    cv_warn ("%s: key check of wrap %lld failed (%s: %s; request id %s)",
             v->path, (long long) v->wrap_id, outcome, err,
             rid[0] ? rid : "none");
  cv_vol_event (v,
                json_pack ("{s:s, s:s, s:s, s:s}", "event", "check", "outcome",
                           outcome, "error", err, "request_id", rid));
}

/* A transient failure while serving (op_lock held): enter grace, and fail
 * closed once it has lasted grace_s since the last successful check. */
static void
unreachable (struct cv_vol *v)
{
  char since[32], cause[128];

  rfc3339 (v->last_ok, since);
  snprintf (cause, sizeof cause, "key service unreachable since %s", since);
  if (v->state == CV_KEY_UNLOCKED) {
    set_state (v, CV_KEY_GRACE, cause);
    if (v->wopts.serve_unreachable)
      cv_warn ("%s: %s: serving on (on-unreachable=serve)", v->path, cause);
    else
      cv_warn ("%s: %s: serving for up to %u s after the last successful "
               "check (key-grace=), then refusing",
               v->path, cause, v->wopts.grace_s);
    cv_vol_event (v, json_pack ("{s:s, s:b, s:s}", "event", "grace", "entered",
                                1, "cause", cause));
  }
  if (!v->wopts.serve_unreachable
      && cv_vol_time () - v->last_ok >= (time_t) v->wopts.grace_s)
    revoke_locked (v, cause);
}

int
cv_vol_check_key (struct cv_vol *v)
{
  struct cv_key *dek = NULL, *odek = NULL;
  char before[80], rid[80];
  int rc;

  pthread_mutex_lock (&v->op_lock);
  if (!v->creds) {
    pthread_mutex_unlock (&v->op_lock);
    return no_creds (v, "check the key");
  }
  if (v->state == CV_KEY_REVOKED && !v->wopts.resume) {
    pthread_mutex_unlock (&v->op_lock);
    return -EKEYREVOKED;
  }
  last_request_id (before, sizeof before);
  if (v->state == CV_KEY_REVOKED)
    rc = unwrap_again (v, &dek, &odek);
  else if (strcmp (v->wrap_type, "passphrase") == 0)
    rc = 0; /* no key service can revoke a passphrase: spare the KDF */
  else
    rc = cv_wrap_check (v->hdr, v->wrap_id, v->creds, v->dek, NULL);
  last_request_id (rid, sizeof rid);
  if (strcmp (rid, before) == 0)
    rid[0] = '\0';
  enum cv_check_class cls = cv_check_classify (rc);
  record (v, rc, cls, rid);

  if (rc == 0) {
    if (v->state == CV_KEY_REVOKED && v->operator_lock) {
      /* The key is usable, but the operator locked the volume: it stays
       * locked until unlocked. */
      cv_key_free (dek);
      cv_key_free (odek);
    } else if (v->state == CV_KEY_REVOKED)
      install (v, dek, odek);
    else if (v->state == CV_KEY_GRACE) {
      set_state (v, CV_KEY_UNLOCKED, "");
      cv_warn ("%s: key service reachable again: grace period over", v->path);
      cv_vol_event (v,
                    json_pack ("{s:s, s:b}", "event", "grace", "entered", 0));
    }
    __atomic_store_n (&v->last_ok, cv_vol_time (), __ATOMIC_RELAXED);
  } else if (v->state == CV_KEY_REVOKED)
    ; /* still revoked */
  else if (cls == CV_CHECK_REVOKED) {
    char cause[256], why[128];
    snprintf (cause, sizeof cause, "key check of wrap %lld (%s): %s",
              (long long) v->wrap_id, v->wrap_type,
              cv_check_reason (v->wrap_type, rc, why, sizeof why));
    revoke_locked (v, cause);
  } else
    unreachable (v);
  pthread_mutex_unlock (&v->op_lock);
  return rc;
}

const char *
cv_vol_differs (const struct cv_vol *v, const struct cv_header *h,
                bool rotation)
{
  if (strcmp (cv_hdr_uuid (h), v->uuid) != 0)
    return "uuid";
  if (cv_hdr_size (h) != v->size)
    return "size";
  if (cv_hdr_sector_size (h) != v->ss)
    return "sector size";
  if (cv_hdr_data_offset (h) != v->data_offset)
    return "data offset";
  if (rotation && cv_hdr_rotating (h) != (v->odek != NULL))
    return "DEK rotation state";
  return NULL;
}

/* How a header under test is named in messages: one read from disk for a
 * reload, or one that cryptvol-keymgr sent to be committed. */
#define ON_DISK "reload refused: the header on disk"
#define OFFERED "header change refused: the header sent"

/* Does h describe the same volume as v (identity, geometry, DEK rotation
 * state)? If not, say what differs (of h, named as which says). */
static bool
same_volume (struct cv_vol *v, const struct cv_header *h, const char *which)
{
  const char *what = cv_vol_differs (v, h, true);

  if (what && cv_hdr_rotating (h) && !v->odek)
    cv_err ("%s: %s records a DEK rotation that this server has not taken "
            "up; take it up with cryptvol-keymgr rotate-dek %s --control "
            "SOCKET (or restart the server, which continues it)",
            v->hname, which, v->path);
  else if (what)
    cv_err ("%s: %s has another %s than the one being served; restart the "
            "server to use it",
            v->hname, which, what);
  return what == NULL;
}

/* Is h, authenticated under v's DEK, at least as new as the header v
 * serves, with its wraps as the key sealed them? A header written back from
 * before (dd of old copies) would re-admit removed wraps. 0 or -ESTALE /
 * -EBADMSG (logged). */
static int
fresher (const struct cv_vol *v, const struct cv_header *h, const char *which)
{
  uint64_t have = 0, got = 0;
  char why[256];

  cv_hdr_sealed (v->hdr, NULL, &have);
  cv_hdr_sealed (h, NULL, &got);
  if (got < have || cv_hdr_binds_wraps (v->hdr) > cv_hdr_binds_wraps (h)) {
    cv_err ("%s: %s (generation %llu) is older than the one being served "
            "(generation %llu): a stale header; the server keeps its header",
            v->hname, which, (unsigned long long) got,
            (unsigned long long) have);
    return -ESTALE;
  }
  if (cv_hdr_wraps_check (h, why, sizeof why) < 0) {
    cv_err ("%s: %s %s; the server keeps its header", v->hname, which, why);
    return -EBADMSG;
  }
  return 0;
}

/* A wrap of h that opens the volume with the kept credentials, when the
 * wrap in use is gone: its id in *id. h is authenticated under v's DEK, so
 * the DEK it opens is v's. */
static int
another_wrap (struct cv_vol *v, struct cv_header *h, int64_t *id,
              const char *which)
{
  struct cv_key *k = NULL;

  if (!v->creds || cv_unlock (h, v->hname, v->creds, NULL, &k, id) < 0) {
    cv_err ("%s: %s removes the wrap in use (%lld) and no other wrap opens "
            "with the server's credentials; the server keeps the previous "
            "header and checks wrap %lld",
            v->hname, which, (long long) v->wrap_id, (long long) v->wrap_id);
    return -ENOKEY;
  }
  cv_key_free (k);
  cv_info ("%s: wrap %lld was removed: checking wrap %lld from now on",
           v->hname, (long long) v->wrap_id, (long long) *id);
  return 0;
}

/* May v serve with h in place of its header (op_lock held)? The same volume
 * and DEK rotation state, sealed with v's DEK, no older, and a wrap that
 * opens with v's credentials: its id in *id. 0 or -errno (logged, h named
 * as which says). */
static int
acceptable (struct cv_vol *v, struct cv_header *h, int64_t *id,
            const char *which)
{
  int rc;

  *id = v->wrap_id;
  if (!same_volume (v, h, which))
    return -EINVAL;
  if (cv_hdr_authenticate (h, v->dek) < 0) {
    cv_err ("%s: %s is not sealed with the DEK being served (another "
            "volume's header, or altered); the server keeps the previous "
            "header",
            v->hname, which);
    return -EINVAL;
  }
  if ((rc = fresher (v, h, which)) < 0)
    return rc;
  if (cv_hdr_wrap_find (h, *id, NULL) < 0)
    return another_wrap (v, h, id, which);
  return 0;
}

/* Serve with h (taken) in place of v's header, checking wrap id from now
 * on (op_lock held); event names the change ("reload", "header"). */
static void
use_header (struct cv_vol *v, struct cv_header *h, int64_t id,
            const char *event)
{
  pthread_rwlock_wrlock (&v->klock);
  struct cv_header *old = v->hdr;
  v->hdr = h;
  pthread_rwlock_unlock (&v->klock);
  cv_hdr_free (old);
  cv_vol_note_wrap (v, id);
  cv_vol_event (v, json_pack ("{s:s, s:I}", "event", event, "seqid",
                              (json_int_t) cv_hdr_seqid (v->hdr)));
}

/* Read the header on disk: under the header lock when the server may take
 * it (a read-only server relies on each copy's checksum: a commit in
 * progress leaves one copy whole). */
int
cv_vol_read_header (struct cv_vol *v, struct cv_header **h)
{
  unsigned valid;
  int rc;

  if (!v->readonly && (rc = cv_lock_header (v->hdev, true)) < 0)
    return rc;
  rc = cv_hdr_read (v->hdev, h, &valid);
  if (!v->readonly)
    cv_unlock_header (v->hdev);
  return rc;
}

int
cv_vol_reload (struct cv_vol *v)
{
  struct cv_header *h = NULL;
  int64_t id;
  int rc;

  pthread_mutex_lock (&v->op_lock);
  if (v->state == CV_KEY_REVOKED) {
    cv_err ("%s: reload refused while the key is revoked (the header is "
            "authenticated with the DEK); unlock first",
            v->hname);
    rc = -EPERM;
  } else if ((rc = cv_vol_read_header (v, &h)) == 0
             && (rc = acceptable (v, h, &id, ON_DISK)) == 0) {
    use_header (v, STEAL (h), id, "reload");
    cv_info ("%s: header reloaded (seqid %llu)", v->hname,
             (unsigned long long) cv_hdr_seqid (v->hdr));
  }
  cv_hdr_free (h);
  pthread_mutex_unlock (&v->op_lock);
  return rc;
}

/* The checks of cv_vol_commit_header with op_lock and the header lock held:
 * h's seqid is that of the header on disk (cur, read here), and h is a
 * header v may serve with, or the beginning of a DEK rotation that v can
 * take up (its new DEK in *dek1). 0 or -errno (logged). */
static int
commit_check (struct cv_vol *v, struct cv_header *h, struct cv_header **cur,
              int64_t *id, struct cv_key **dek1)
{
  struct cv_hdr_rotation r;
  unsigned valid;
  int rc;

  if ((rc = cv_hdr_read (v->hdev, cur, &valid)) < 0)
    return rc;
  if (cv_hdr_seqid (h) != cv_hdr_seqid (*cur)) {
    cv_err ("%s: " OFFERED " was made from seqid %llu, but the header is "
            "now at seqid %llu (changed meanwhile: by a DEK rotation step or "
            "another change); nothing was changed: run the command again",
            v->hname, (unsigned long long) cv_hdr_seqid (h),
            (unsigned long long) cv_hdr_seqid (*cur));
    return -ESTALE;
  }
  if (!cv_hdr_rotating (h) || v->odek)
    return acceptable (v, h, id, OFFERED);
  /* A DEK rotation begun by keymgr: check it as the server will when it
   * takes it up, so that what is committed can be. */
  return cv_rot_begin_check (v, h, "the header sent", dek1, id, &r);
}

int
cv_vol_commit_header (struct cv_vol *v, const uint8_t *copy, size_t len,
                      uint64_t *seqid)
{
  CLEANUP_FREE uint8_t *buf = NULL;
  CLEANUP_KEY struct cv_key *dek1 = NULL;
  struct cv_header *h = NULL, *cur = NULL;
  uint64_t was = 0, gen = 0;
  int64_t id = -1;
  int rc;

  if (len > CV_HDR_COPY_SIZE) {
    cv_err ("%s: " OFFERED " is %zu bytes, more than a header copy (%d)",
            v->hname, len, CV_HDR_COPY_SIZE);
    return -E2BIG;
  }
  if (!(buf = calloc (1, CV_HDR_COPY_SIZE)))
    return -ENOMEM;
  memcpy (buf, copy, len);
  /* The decoder's message (the control reply's error) names it. */
  char name[512];
  snprintf (name, sizeof name, "%s: the header sent for commit", v->hname);
  if ((rc = cv_hdr_decode (buf, 0, name, &h)) < 0)
    return rc == -ENOMEM ? rc : -EBADMSG;
  pthread_mutex_lock (&v->op_lock);
  if (v->readonly) {
    cv_err ("%s: served read-only; a header change needs it served for "
            "writing",
            v->hname);
    rc = -EROFS;
  } else if (v->state == CV_KEY_REVOKED) {
    cv_err ("%s: header change refused while the key is revoked (the "
            "header is authenticated with the DEK); unlock first",
            v->hname);
    rc = -EPERM;
  } else if ((rc = cv_lock_header (v->hdev, true)) == 0) {
    if ((rc = commit_check (v, h, &cur, &id, &dek1)) == 0) {
      cv_hdr_sealed (cur, NULL, &was);
      rc = cv_hdr_commit (v->hdev, h);
    }
    /* A DEK holder's change (a new generation) is recorded in the seal
     * sector, under the DEK the header is sealed with. */
    if (rc == 0 && cv_hdr_sealed (h, NULL, &gen) && gen != was)
      rc = cv_seal_write (v->ddev, v->ddev == v->hdev, h,
                          dek1 ? dek1 : v->dek);
    cv_unlock_header (v->hdev);
  }
  if (rc == 0) {
    *seqid = cv_hdr_seqid (h);
    cv_info ("%s: header committed for cryptvol-keymgr (seqid %llu)%s",
             v->hname, (unsigned long long) cv_hdr_seqid (h),
             dek1 ? ": a DEK rotation, taken up by rotate" : "");
    /* A rotation is taken up from the header on disk (cv_vol_rotate_start);
     * until then v serves with its header, as after keymgr wrote it. */
    if (!dek1)
      use_header (v, STEAL (h), id, "header");
  }
  pthread_mutex_unlock (&v->op_lock);
  cv_hdr_free (cur);
  cv_hdr_free (h);
  return rc;
}

uint64_t
cv_vol_seqid (struct cv_vol *v)
{
  pthread_mutex_lock (&v->op_lock);
  uint64_t seqid = cv_hdr_seqid (v->hdr);
  pthread_mutex_unlock (&v->op_lock);
  return seqid;
}

void
cv_vol_get_status (struct cv_vol *v, struct cv_vol_status *st)
{
  memset (st, 0, sizeof *st);
  st->state = __atomic_load_n (&v->state, __ATOMIC_RELAXED);
  pthread_mutex_lock (&v->slock);
  st->wrap_id = v->wrap_id;
  memcpy (st->wrap_type, v->wrap_type, sizeof st->wrap_type);
  memcpy (st->cause, v->cause, sizeof st->cause);
  memcpy (st->last_check, v->last_check, sizeof st->last_check);
  memcpy (st->last_outcome, v->last_outcome, sizeof st->last_outcome);
  memcpy (st->last_request_id, v->last_request_id, sizeof st->last_request_id);
  if (v->next_check)
    rfc3339 (v->next_check, st->next_check);
  st->checks_ok = v->checks[CV_CHECK_OK];
  st->checks_revoked = v->checks[CV_CHECK_REVOKED];
  st->checks_unreachable = v->checks[CV_CHECK_TRANSIENT];
  pthread_mutex_unlock (&v->slock);
  st->last_ok = __atomic_load_n (&v->last_ok, __ATOMIC_RELAXED);
  struct cv_vol_counts n;
  cv_vol_counts (v, &n);
  st->served = n.served;
  st->refused = __atomic_load_n (&v->refused, __ATOMIC_RELAXED);
  st->failed = __atomic_load_n (&v->failed, __ATOMIC_RELAXED);
  st->bytes_read = n.bytes_read;
  st->bytes_written = n.bytes_written;
  st->xts_impl = v->xts_impl;
}

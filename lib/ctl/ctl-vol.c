/* The control commands on a served volume: struct cv_ctl_ops over lib/vol.
 * Each runs on the control thread; lib/vol serialises them with the key
 * watch and logs its own failures (which become the replies' errors). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "ctl/ctl.h"
#include "format/header.h"
#include "vol/volume.h"

/* The members every reply about the key state has. */
static void
put_state (json_t *reply, const struct cv_vol_status *st)
{
  json_object_set_new (reply, "state",
                       json_string (cv_key_state_name (st->state)));
  json_object_set_new (reply, "cause", json_string (st->cause));
}

/* The DEK rotation's snapshot, as "rotation" in status and the replies of
 * the rotate commands (doc/control.md). */
static void
put_rotation (json_t *reply, struct cv_vol *v)
{
  struct cv_rot_status r;

  cv_vol_rotate_status (v, &r);
  json_object_set_new (
      reply, "rotation",
      json_pack ("{s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:I, s:s, s:{s:I, s:I}, "
                 "s:I, s:s}",
                 "state", r.state, "id", r.id, "started", r.started, "done",
                 (json_int_t) r.done, "total", (json_int_t) r.total,
                 "rate_mib_s", r.rate_mib_s, "limit_mib_s", r.limit_mib_s,
                 "eta_s", (json_int_t) r.eta_s, "journal", r.journal, "step",
                 "start", (json_int_t) r.step_start, "len",
                 (json_int_t) r.step_len, "steps", (json_int_t) r.steps,
                 "error", r.error));
}

static int
status (void *arg, const json_t *req, json_t *reply)
{
  struct cv_vol_status st;

  cv_vol_get_status (arg, &st);
  put_state (reply, &st);
  json_object_set_new (reply, "wrap",
                       json_pack ("{s:I, s:s}", "id", (json_int_t) st.wrap_id,
                                  "type", st.wrap_type));
  json_object_set_new (reply, "last_check",
                       json_pack ("{s:s, s:s, s:s}", "time", st.last_check,
                                  "outcome", st.last_outcome, "request_id",
                                  st.last_request_id));
  json_object_set_new (reply, "next_check", json_string (st.next_check));
  json_object_set_new (
      reply, "requests",
      json_pack ("{s:I, s:I, s:I}", "served", (json_int_t) st.served, "refused",
                 (json_int_t) st.refused, "failed", (json_int_t) st.failed));
  json_object_set_new (reply, "bytes",
                       json_pack ("{s:I, s:I}", "read",
                                  (json_int_t) st.bytes_read, "written",
                                  (json_int_t) st.bytes_written));
  json_object_set_new (reply, "checks",
                       json_pack ("{s:I, s:I, s:I, s:I}", "ok",
                                  (json_int_t) st.checks_ok, "revoked",
                                  (json_int_t) st.checks_revoked, "unreachable",
                                  (json_int_t) st.checks_unreachable, "last_ok",
                                  (json_int_t) st.last_ok));
  json_object_set_new (reply, "xts_engine",
                       json_string (cv_xts_impl_name (st.xts_impl)));
  put_rotation (reply, arg);
  return 0;
}

static int
check (void *arg, const json_t *req, json_t *reply)
{
  struct cv_vol_status st;

  cv_vol_check_key (arg); /* its outcome is in the status */
  cv_vol_get_status (arg, &st);
  put_state (reply, &st);
  json_object_set_new (reply, "outcome", json_string (st.last_outcome));
  json_object_set_new (reply, "request_id", json_string (st.last_request_id));
  return 0;
}

static int
lock (void *arg, const json_t *req, json_t *reply)
{
  struct cv_vol_status st;
  int rc = cv_vol_revoke (arg, "locked through the control socket");

  cv_vol_get_status (arg, &st);
  put_state (reply, &st);
  return rc;
}

static int
unlock (void *arg, const json_t *req, json_t *reply)
{
  struct cv_vol_status st;
  int rc = cv_vol_resume (arg);

  cv_vol_get_status (arg, &st);
  put_state (reply, &st);
  return rc;
}

static int
reload (void *arg, const json_t *req, json_t *reply)
{
  int rc = cv_vol_reload (arg);

  json_object_set_new (reply, "seqid",
                       json_integer ((json_int_t) cv_vol_seqid (arg)));
  return rc;
}

/* The request's "rate" (checked by dispatch.c), or -1 if it has none. */
static double
rate_of (const json_t *req)
{
  const json_t *r = json_object_get (req, "rate");
  return r ? json_number_value (r) : -1;
}

static int
rotate (void *arg, const json_t *req, json_t *reply)
{
  double rate = rate_of (req);
  struct cv_rot_status r;

  if (rate < 0) {
    /* Sent again without a rate: keep the running rotation's limit (not
     * that of one that ended). */
    cv_vol_rotate_status (arg, &r);
    bool live = strcmp (r.state, "running") == 0
                || strcmp (r.state, "paused") == 0
                || strcmp (r.state, "waiting") == 0
                || strcmp (r.state, "failed") == 0;
    rate = live && isfinite (r.limit_mib_s) ? r.limit_mib_s : 0;
  }
  int rc = cv_vol_rotate_start (arg, rate);
  put_rotation (reply, arg);
  return rc;
}

static int
rotate_pause (void *arg, const json_t *req, json_t *reply)
{
  int rc = cv_vol_rotate_pause (arg);
  put_rotation (reply, arg);
  return rc;
}

static int
rotate_resume (void *arg, const json_t *req, json_t *reply)
{
  int rc = cv_vol_rotate_resume (arg);
  put_rotation (reply, arg);
  return rc;
}

static int
rotate_rate (void *arg, const json_t *req, json_t *reply)
{
  int rc = cv_vol_rotate_set_rate (arg, rate_of (req));
  put_rotation (reply, arg);
  return rc;
}

static int
commit_header (void *arg, const json_t *req, json_t *reply)
{
  const char *b64 = json_string_value (json_object_get (req, "header"));
  CLEANUP_FREE uint8_t *copy = NULL;
  size_t len;
  uint64_t seqid = 0;
  int rc;

  if (cv_b64_decode (b64, &copy, &len) < 0) {
    cv_err ("commit-header: \"header\" is not base64 (a header copy, as "
            "cryptvol-keymgr sends it)");
    return -EINVAL;
  }
  if ((rc = cv_vol_commit_header (arg, copy, len, &seqid)) == 0)
    json_object_set_new (reply, "seqid", json_integer ((json_int_t) seqid));
  return rc;
}

static const char *
uuid (void *arg)
{
  return cv_vol_uuid (arg);
}

const struct cv_ctl_ops cv_ctl_vol_ops = {
  .status = status,
  .check = check,
  .lock = lock,
  .unlock = unlock,
  .reload = reload,
  .rotate = rotate,
  .rotate_pause = rotate_pause,
  .rotate_resume = rotate_resume,
  .rotate_rate = rotate_rate,
  .commit_header = commit_header,
  .uuid = uuid,
};

/* The control commands on a served volume: struct cv_ctl_ops over lib/vol.
 * Each runs on the control thread; lib/vol serialises them with the key
 * watch and logs its own failures (which become the replies' errors). */
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

static int
status (void *arg, json_t *reply)
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
  json_object_set_new (reply, "requests",
                       json_pack ("{s:I, s:I}", "served",
                                  (json_int_t) st.served, "refused",
                                  (json_int_t) st.refused));
  json_object_set_new (reply, "bytes",
                       json_pack ("{s:I, s:I}", "read",
                                  (json_int_t) st.bytes_read, "written",
                                  (json_int_t) st.bytes_written));
  return 0;
}

static int
check (void *arg, json_t *reply)
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
lock (void *arg, json_t *reply)
{
  struct cv_vol_status st;
  int rc = cv_vol_revoke (arg, "locked through the control socket");

  cv_vol_get_status (arg, &st);
  put_state (reply, &st);
  return rc;
}

static int
unlock (void *arg, json_t *reply)
{
  struct cv_vol_status st;
  int rc = cv_vol_resume (arg);

  cv_vol_get_status (arg, &st);
  put_state (reply, &st);
  return rc;
}

static int
reload (void *arg, json_t *reply)
{
  int rc = cv_vol_reload (arg);

  json_object_set_new (
      reply, "seqid",
      json_integer ((json_int_t) cv_vol_seqid (arg)));
  return rc;
}

const struct cv_ctl_ops cv_ctl_vol_ops = {
  .status = status,
  .check = check,
  .lock = lock,
  .unlock = unlock,
  .reload = reload,
};

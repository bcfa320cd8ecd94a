/* A fake volume behind the control server's operations, for the unit tests
 * and the fuzz target: a key state that lock and unlock change, an unlock or
 * reload that fails when told to, the way lib/vol reports it, and a DEK
 * rotation that the rotate commands start, pause, resume and limit. A
 * server's exports are several of them. */
#ifndef CV_CTL_FAKE_H
#define CV_CTL_FAKE_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "common/encode.h"
#include "common/log.h"
#include "ctl/ctl.h"

struct fake_vol {
  const char *state; /* "unlocked", "grace", "revoked" */
  bool unlock_fails; /* unlock: the key is still disabled */
  bool reload_fails; /* reload: the header's DEK differs */
  unsigned calls;    /* operations run */
  unsigned check_ms; /* check: takes this long (a slow key service) */
  const char *rot;   /* rotation: "none", "idle", "running", "paused" */
  double limit;      /* its rate limit, MiB/s (0: unlimited) */
  const char *uuid;  /* NULL: not unlocked (lazy, or its unlock failed) */
  bool status_fails; /* status: the volume cannot say (not unlocked) */
};

/* The rotation, as ctl-vol.c puts it in a reply. */
static void
fake_put_rotation (struct fake_vol *f, json_t *reply)
{
  const char *st = f->rot ? f->rot : "none";
  json_object_set_new (
      reply, "rotation",
      json_pack ("{s:s, s:I, s:I, s:f}", "state", st, "done", (json_int_t) 0,
                 "total", (json_int_t) 64 << 20, "limit_mib_s", f->limit));
}

static int
fake_status (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  if (f->status_fails) {
    cv_err ("/v: not unlocked yet (unlock=lazy)");
    return -ENOKEY;
  }
  json_object_set_new (reply, "state", json_string (f->state));
  json_object_set_new (reply, "wrap",
                       json_pack ("{s:i, s:s}", "id", 0, "type", "file"));
  json_object_set_new (reply, "requests",
                       json_pack ("{s:i, s:i}", "served", 12, "refused", 3));
  fake_put_rotation (f, reply);
  return 0;
}

static int
fake_check (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  struct timespec t = { f->check_ms / 1000, f->check_ms % 1000 * 1000000L };
  f->calls++;
  nanosleep (&t, NULL);
  json_object_set_new (reply, "state", json_string (f->state));
  return 0;
}

static int
fake_lock (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  f->state = "revoked";
  json_object_set_new (reply, "state", json_string (f->state));
  return 0;
}

static int
fake_unlock (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  if (f->unlock_fails) {
    cv_err ("key file /k.kek: unwrap failed (the key differs); the volume "
            "stays revoked");
    return -EKEYREJECTED;
  }
  f->state = "unlocked";
  json_object_set_new (reply, "state", json_string (f->state));
  return 0;
}

static int
fake_reload (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  if (f->reload_fails)
    return -EINVAL; /* without a message: the reply says strerror */
  json_object_set_new (reply, "seqid", json_integer (7));
  return 0;
}

/* commit-header: decode the header as ctl-vol.c does; "committed" (seqid
 * 8) unless it is not base64 or reload_fails (the DEK differs). */
static int
fake_commit_header (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  uint8_t *copy = NULL;
  size_t len;

  f->calls++;
  if (cv_b64_decode (json_string_value (json_object_get (req, "header")),
                     &copy, &len)
      < 0) {
    cv_err ("commit-header: \"header\" is not base64");
    return -EINVAL;
  }
  free (copy);
  if (f->reload_fails) {
    cv_err ("header change refused: the header sent is not sealed with the "
            "DEK being served");
    return -EINVAL;
  }
  json_object_set_new (reply, "seqid", json_integer (8));
  return 0;
}

/* rotate: adopt a rotation recorded ("idle") or set the running one's rate,
 * as cv_vol_rotate_start; -ENOENT without one. */
static int
fake_rotate (void *arg, const json_t *req, json_t *reply)
{
  struct fake_vol *f = arg;
  const json_t *rate = json_object_get (req, "rate");
  f->calls++;
  if (!f->rot || strcmp (f->rot, "none") == 0) {
    cv_err ("/v: no DEK rotation to start (begin one with cryptvol-keymgr "
            "rotate-dek --control)");
    return -ENOENT;
  }
  if (strcmp (f->rot, "idle") == 0)
    f->rot = "running";
  if (rate)
    f->limit = json_number_value (rate);
  fake_put_rotation (f, reply);
  return 0;
}

/* pause, resume, rate: -ENOENT unless a rotation runs. */
static int
fake_rotate_change (struct fake_vol *f, const char *to, const json_t *req,
                    json_t *reply)
{
  const json_t *rate = json_object_get (req, "rate");
  f->calls++;
  if (!f->rot || (strcmp (f->rot, "running") && strcmp (f->rot, "paused"))) {
    cv_err ("/v: no DEK rotation runs");
    return -ENOENT;
  }
  if (to)
    f->rot = to;
  if (rate)
    f->limit = json_number_value (rate);
  fake_put_rotation (f, reply);
  return 0;
}

static int
fake_rotate_pause (void *arg, const json_t *req, json_t *reply)
{
  return fake_rotate_change (arg, "paused", req, reply);
}

static int
fake_rotate_resume (void *arg, const json_t *req, json_t *reply)
{
  return fake_rotate_change (arg, "running", req, reply);
}

static int
fake_rotate_rate (void *arg, const json_t *req, json_t *reply)
{
  return fake_rotate_change (arg, NULL, req, reply);
}

static const char *
fake_uuid (void *arg)
{
  return ((struct fake_vol *) arg)->uuid;
}

static const struct cv_ctl_ops fake_ops = {
  .status = fake_status,
  .check = fake_check,
  .lock = fake_lock,
  .unlock = fake_unlock,
  .reload = fake_reload,
  .rotate = fake_rotate,
  .rotate_pause = fake_rotate_pause,
  .rotate_resume = fake_rotate_resume,
  .rotate_rate = fake_rotate_rate,
  .commit_header = fake_commit_header,
  .uuid = fake_uuid,
};

#endif

/* A fake volume behind the control server's operations, for the unit tests
 * and the fuzz target: a key state that lock and unlock change, and an
 * unlock or reload that fails when told to, the way lib/vol reports it. */
#ifndef CV_CTL_FAKE_H
#define CV_CTL_FAKE_H

#include <errno.h>
#include <stdbool.h>
#include <time.h>

#include "common/log.h"
#include "ctl/ctl.h"

struct fake_vol {
  const char *state; /* "unlocked", "grace", "revoked" */
  bool unlock_fails; /* unlock: the key is still disabled */
  bool reload_fails; /* reload: the header's DEK differs */
  unsigned calls;    /* operations run */
  unsigned check_ms; /* check: takes this long (a slow key service) */
};

static int
fake_status (void *arg, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  json_object_set_new (reply, "state", json_string (f->state));
  json_object_set_new (reply, "wrap",
                       json_pack ("{s:i, s:s}", "id", 0, "type", "file"));
  json_object_set_new (reply, "requests",
                       json_pack ("{s:i, s:i}", "served", 12, "refused", 3));
  return 0;
}

static int
fake_check (void *arg, json_t *reply)
{
  struct fake_vol *f = arg;
  struct timespec t = { f->check_ms / 1000, f->check_ms % 1000 * 1000000L };
  f->calls++;
  nanosleep (&t, NULL);
  json_object_set_new (reply, "state", json_string (f->state));
  return 0;
}

static int
fake_lock (void *arg, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  f->state = "revoked";
  json_object_set_new (reply, "state", json_string (f->state));
  return 0;
}

static int
fake_unlock (void *arg, json_t *reply)
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
fake_reload (void *arg, json_t *reply)
{
  struct fake_vol *f = arg;
  f->calls++;
  if (f->reload_fails)
    return -EINVAL; /* without a message: the reply says strerror */
  json_object_set_new (reply, "seqid", json_integer (7));
  return 0;
}

static const struct cv_ctl_ops fake_ops = {
  .status = fake_status,
  .check = fake_check,
  .lock = fake_lock,
  .unlock = fake_unlock,
  .reload = fake_reload,
};

#endif

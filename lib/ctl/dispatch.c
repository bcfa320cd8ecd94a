/* The control protocol: one request line in, one reply line out. This is
 * the parser of untrusted input (tests/fuzz/fuzz-control.c drives it). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "ctl/audit.h"
#include "ctl/ctl.h"

#define KNOWN "status, check, lock, unlock, reload"
#define EXAMPLE "send one JSON object per line, e.g. {\"cmd\":\"status\"}"

typedef int (*ctl_op) (void *arg, json_t *reply);

/* The operation named name, or NULL. */
static ctl_op
find_op (const struct cv_ctl_ops *ops, const char *name)
{
  const struct {
    const char *name;
    ctl_op op;
  } table[] = {
    { "status", ops->status }, { "check", ops->check },   { "lock", ops->lock },
    { "unlock", ops->unlock }, { "reload", ops->reload },
  };

  for (size_t i = 0; i < ARRAY_SIZE (table); i++)
    if (strcmp (name, table[i].name) == 0)
      return table[i].op;
  return NULL;
}

/* Format into err (size n) with every byte that is not printable ASCII
 * replaced by '?': names and parser messages quote the peer's bytes, which
 * need not be UTF-8, and a reply must be valid JSON. */
__attribute__ ((format (printf, 3, 4))) static void
say (char *err, size_t n, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (err, n, fmt, ap);
  va_end (ap);
  for (char *p = err; *p; p++)
    if (*p < 0x20 || *p > 0x7e)
      *p = '?';
}

/* Parse a request into *req and its command name *cmd (owned by *req), or
 * say in err what is wrong and return -EINVAL. */
static int
parse (const char *line, size_t len, json_t **req, const char **cmd, char *err,
       size_t n)
{
  json_error_t e;
  const char *key;
  json_t *val;

  *cmd = NULL;
  if (!(*req = json_loadb (line, len, JSON_REJECT_DUPLICATES, &e))) {
    say (err, n, "malformed request (%s, column %d); " EXAMPLE, e.text,
         e.column);
    return -EINVAL;
  }
  if (!json_is_object (*req)) {
    say (err, n, "a request is a JSON object; " EXAMPLE);
    return -EINVAL;
  }
  json_object_foreach (*req, key, val)
  {
    if (strcmp (key, "cmd") != 0) {
      say (err, n, "unknown member \"%.64s\"; a request has only \"cmd\"", key);
      return -EINVAL;
    }
  }
  if (!(*cmd = json_string_value (json_object_get (*req, "cmd")))) {
    say (err, n, "missing \"cmd\" (a string: one of " KNOWN ")");
    return -EINVAL;
  }
  return 0;
}

char *
cv_ctl_dispatch (const struct cv_ctl_opts *o, const struct cv_ctl_peer *peer,
                 const char *line, size_t len)
{
  char err[640] = "";
  json_auto_t *req = NULL;
  json_auto_t *reply = json_pack ("{s:b}", "ok", 1);
  json_auto_t *rec
      = json_pack ("{s:s, s:{s:I, s:I}}", "event", "control", "peer", "uid",
                   (json_int_t) peer->uid, "pid", (json_int_t) peer->pid);
  const char *cmd;
  ctl_op op = NULL;

  if (!reply || !rec)
    return NULL;
  if (parse (line, len, &req, &cmd, err, sizeof err) == 0) {
    if (!(op = find_op (o->ops, cmd)))
      say (err, sizeof err, "unknown command \"%.64s\"; known: " KNOWN, cmd);
    else
      json_object_set_new (rec, "command", json_string (cmd));
  }
  if (op && strcmp (cmd, "status") == 0) {
    json_object_set_new (reply, "volume", json_string (o->volume));
    json_object_set_new (reply, "uuid", json_string (o->uuid));
  }
  if (op) {
    cv_log_clear_last_error ();
    int rc = op (o->arg, reply);
    if (rc < 0)
      say (err, sizeof err, "%s",
           cv_log_last_error ()[0] ? cv_log_last_error () : strerror (-rc));
  }
  if (err[0]) {
    json_decref (reply);
    reply = json_pack ("{s:b, s:s}", "ok", 0, "error", err);
    json_object_set_new (rec, "error", json_string (err));
  }
  json_object_set_new (rec, "result", json_string (err[0] ? "error" : "ok"));
  cv_audit_write (o->audit, o->volume, o->uuid, rec);

  CLEANUP_FREE char *s = reply ? json_dumps (reply, JSON_COMPACT) : NULL;
  char *out = NULL;
  if (s && asprintf (&out, "%s\n", s) < 0)
    out = NULL;
  return out;
}

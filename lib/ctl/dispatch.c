/* The control protocol: one request line in, one reply line out, for the
 * export the request names. This is the parser of untrusted input
 * (tests/fuzz/fuzz-control.c drives it). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "ctl/audit.h"
#include "ctl/ctl.h"

#define KNOWN                                                                  \
  "status, check, lock, unlock, reload, rotate, rotate-pause, "                \
  "rotate-resume, rotate-rate, commit-header"
#define EXAMPLE "send one JSON object per line, e.g. {\"cmd\":\"status\"}"

typedef int (*ctl_op) (void *arg, const json_t *req, json_t *reply);

/* A command: its operation and the member it takes besides "cmd" ("rate":
 * MiB/s; "header": a header copy in base64), if any, and whether that
 * member is required. */
struct command {
  const char *name;
  ctl_op op;
  const char *member;
  bool required;
};

/* The command named name, or false. */
static bool
find_command (const struct cv_ctl_ops *ops, const char *name,
              struct command *out)
{
  const struct command table[] = {
    { "status", ops->status, NULL, false },
    { "check", ops->check, NULL, false },
    { "lock", ops->lock, NULL, false },
    { "unlock", ops->unlock, NULL, false },
    { "reload", ops->reload, NULL, false },
    { "rotate", ops->rotate, "rate", false },
    { "rotate-pause", ops->rotate_pause, NULL, false },
    { "rotate-resume", ops->rotate_resume, NULL, false },
    { "rotate-rate", ops->rotate_rate, "rate", true },
    { "commit-header", ops->commit_header, "header", true },
  };

  for (size_t i = 0; i < ARRAY_SIZE (table); i++)
    if (strcmp (name, table[i].name) == 0) {
      *out = table[i];
      return out->op != NULL;
    }
  return false;
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
 * say in err what is wrong and return -EINVAL. Its other members are
 * checked against the command (check_members). */
static int
parse (const char *line, size_t len, json_t **req, const char **cmd, char *err,
       size_t n)
{
  json_error_t e;

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
  if (!(*cmd = json_string_value (json_object_get (*req, "cmd")))) {
    say (err, n, "missing \"cmd\" (a string: one of " KNOWN ")");
    return -EINVAL;
  }
  return 0;
}

/* Check req's members against command c: "cmd", "export" (a string), and
 * c's own member if it has one (required or not). "rate" is MiB/s, a finite
 * number >= 0. Returns 0, or -EINVAL with err saying what is wrong. */
static int
check_members (const struct command *c, const json_t *req, char *err, size_t n)
{
  const char *key;
  json_t *val;

  json_object_foreach ((json_t *) req, key, val)
  {
    if (strcmp (key, "cmd") == 0 || strcmp (key, "export") == 0
        || (c->member && strcmp (key, c->member) == 0))
      continue;
    if (c->member)
      say (err, n,
           "unknown member \"%.64s\" for \"%s\"; it takes \"cmd\", "
           "(optionally) \"export\" and%s \"%s\"",
           key, c->name, c->required ? "" : " (optionally)", c->member);
    else
      say (err, n,
           "unknown member \"%.64s\" for \"%s\"; it takes only \"cmd\" and "
           "(optionally) \"export\"",
           key, c->name);
    return -EINVAL;
  }
  val = json_object_get (req, "export");
  if (val && !json_is_string (val)) {
    CLEANUP_FREE char *v = json_dumps (val, JSON_ENCODE_ANY | JSON_COMPACT);
    say (err, n, "\"export\" must be a string (an export name), not %.64s",
         v ? v : "that");
    return -EINVAL;
  }
  if (!c->member)
    return 0;
  val = json_object_get (req, c->member);
  if (strcmp (c->member, "header") == 0) {
    if (json_is_string (val))
      return 0;
    say (err, n,
         "\"%s\" needs \"header\": a header copy in base64 (cryptvol-keymgr "
         "sends it; see doc/control.md)",
         c->name);
    return -EINVAL;
  }
  if (!val && c->required) {
    say (err, n,
         "\"%s\" needs \"rate\": MiB/s, a number >= 0 (0: unlimited), e.g. "
         "{\"cmd\":\"%s\",\"rate\":50}",
         c->name, c->name);
    return -EINVAL;
  }
  if (val
      && (!json_is_number (val) || !isfinite (json_number_value (val))
          || json_number_value (val) < 0)) {
    CLEANUP_FREE char *v = json_dumps (val, JSON_ENCODE_ANY | JSON_COMPACT);
    say (err, n,
         "\"rate\" must be MiB/s, a number >= 0 (0: unlimited), not %.64s",
         v ? v : "that");
    return -EINVAL;
  }
  return 0;
}

/* The names of o's exports that fit in n bytes of buf, comma-separated
 * ("..." when some did not fit). */
static void
export_names (const struct cv_ctl_opts *o, char *buf, size_t n)
{
  size_t used = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < o->nexports; i++) {
    const char *name = o->exports[i].name;
    size_t len = strlen (name) + (i ? 2 : 0) + 2; /* ", " and quotes */
    if (used + len + 4 >= n) {
      snprintf (buf + used, n - used, "%s...", i ? ", " : "");
      return;
    }
    used += (size_t) snprintf (buf + used, n - used, "%s\"%s\"", i ? ", " : "",
                               name);
  }
}

/* The export req names (its "export", checked to be a string), or, without
 * one, the only export. NULL with err saying what to do: an unknown name,
 * or none named on a server with several (for status: NULL and no error,
 * which means every export). */
static const struct cv_ctl_export *
find_export (const struct cv_ctl_opts *o, const json_t *req, const char *cmd,
             char *err, size_t n)
{
  const char *name = json_string_value (json_object_get (req, "export"));
  char names[256];

  if (name) {
    for (size_t i = 0; i < o->nexports; i++)
      if (strcmp (o->exports[i].name, name) == 0)
        return &o->exports[i];
    export_names (o, names, sizeof names);
    say (err, n,
         "unknown export \"%.64s\"; this server has %zu: %s ({\"cmd\":"
         "\"status\"} or cryptvol-keymgr status --control PATH lists them)",
         name, o->nexports, o->nexports ? names : "none");
    return NULL;
  }
  if (o->nexports == 1)
    return &o->exports[0];
  if (o->nexports == 0)
    say (err, n, "this server has no export");
  else if (strcmp (cmd, "status") != 0)
    say (err, n,
         "this server has %zu exports: name one with \"export\", e.g. "
         "{\"cmd\":\"%.32s\",\"export\":\"NAME\"} (cryptvol-keymgr %.32s "
         "--control PATH --export NAME); {\"cmd\":\"status\"} lists them",
         o->nexports, cmd, cmd);
  return NULL;
}

/* e's uuid ("" while not known). */
static const char *
uuid_of (const struct cv_ctl_opts *o, const struct cv_ctl_export *e)
{
  const char *u = e && o->ops->uuid ? o->ops->uuid (e->arg) : NULL;
  return u ? u : "";
}

void
cv_ctl_audit (const struct cv_ctl_opts *o, const struct cv_ctl_export *e,
              json_t *rec)
{
  if (!o->audit)
    return;
  if (!e && o->nexports == 1)
    e = &o->exports[0];
  json_auto_t *r = json_copy (rec);
  if (!r)
    return;
  if (e)
    json_object_set_new (r, "export", json_string (e->name));
  cv_audit_write (o->audit, e ? e->volume : "", uuid_of (o, e), r);
}

/* Run command c on export e: its members into reply, status's with the
 * export's name, volume and uuid first. Returns 0, or -errno with err
 * saying why. */
static int
run_on (const struct cv_ctl_opts *o, const struct command *c,
        const struct cv_ctl_export *e, const json_t *req, json_t *reply,
        char *err, size_t n)
{
  if (strcmp (c->name, "status") == 0) {
    json_object_set_new (reply, "export", json_string (e->name));
    json_object_set_new (reply, "volume", json_string (e->volume));
    json_object_set_new (reply, "uuid", json_string (uuid_of (o, e)));
  }
  cv_log_clear_last_error ();
  int rc = c->op (e->arg, req, reply);
  if (rc < 0)
    say (err, n, "%s",
         cv_log_last_error ()[0] ? cv_log_last_error () : strerror (-rc));
  return rc;
}

/* status of every export, as "exports": an array of status replies (one
 * whose status failed has "error" instead of the state). */
static void
status_all (const struct cv_ctl_opts *o, const struct command *c,
            const json_t *req, json_t *reply)
{
  json_t *all = json_array ();

  for (size_t i = 0; all && i < o->nexports; i++) {
    char err[640] = "";
    json_t *one = json_object ();
    if (one && run_on (o, c, &o->exports[i], req, one, err, sizeof err) < 0) {
      json_decref (one);
      one = json_pack ("{s:s, s:s, s:s, s:s}", "export", o->exports[i].name,
                       "volume", o->exports[i].volume, "uuid",
                       uuid_of (o, &o->exports[i]), "error", err);
    }
    json_array_append_new (all, one);
  }
  json_object_set_new (reply, "exports", all);
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
  const struct cv_ctl_export *e = NULL;
  struct command c;
  bool run = false;

  if (!reply || !rec)
    return NULL;
  if (parse (line, len, &req, &cmd, err, sizeof err) == 0) {
    if (!find_command (o->ops, cmd, &c))
      say (err, sizeof err, "unknown command \"%.64s\"; known: " KNOWN, cmd);
    else {
      json_object_set_new (rec, "command", json_string (cmd));
      run = check_members (&c, req, err, sizeof err) == 0
            && ((e = find_export (o, req, cmd, err, sizeof err)) || !err[0]);
    }
  }
  if (!e && json_is_string (json_object_get (req, "export")))
    json_object_set (rec, "export", json_object_get (req, "export"));
  /* The rate goes in the record; a header (64 KiB) does not: its seqid is
   * in the server's log and the volume's header. */
  if (run && c.member && strcmp (c.member, "rate") == 0
      && json_object_get (req, c.member))
    json_object_set (rec, c.member, json_object_get (req, c.member));
  if (run && e)
    run_on (o, &c, e, req, reply, err, sizeof err);
  else if (run)
    status_all (o, &c, req, reply);
  if (err[0]) {
    json_decref (reply);
    reply = json_pack ("{s:b, s:s}", "ok", 0, "error", err);
    json_object_set_new (rec, "error", json_string (err));
  }
  json_object_set_new (rec, "result", json_string (err[0] ? "error" : "ok"));
  cv_ctl_audit (o, e, rec);

  CLEANUP_FREE char *s = reply ? json_dumps (reply, JSON_COMPACT) : NULL;
  char *out = NULL;
  if (s && asprintf (&out, "%s\n", s) < 0)
    out = NULL;
  return out;
}

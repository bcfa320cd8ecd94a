/* The audit log (--audit-log FILE): one JSON line per command with the time,
 * command, volume, the wraps it touched, the result and the key services'
 * request ids. Never key material: only ids, types and key references. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/reqlog.h"
#include "format/header.h"
#include "keymgr.h"

static const char *log_path;
static const char *command;
static json_t *record;
static char last_error[1024];

/* Keep the last error message for the record; print everything to stderr
 * as the default sink does. */
static void
sink (enum cv_log_level level, const char *msg)
{
  static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };

  if (level == CV_LOG_ERROR)
    snprintf (last_error, sizeof last_error, "%s", msg);
  fprintf (stderr, "%s%s\n", prefix[level], msg);
}

void
audit_init (const char *cmd)
{
  command = cmd;
  record = json_object ();
  json_object_set_new (record, "wraps", json_array ());
  cv_log_set_sink (sink);
}

void
audit_set_path (const char *path)
{
  log_path = path;
}

void
audit_volume (const char *path, const char *uuid)
{
  json_object_set_new (record, "volume", json_string (path));
  json_object_set_new (record, "uuid", json_string (uuid));
}

void
audit_wrap (const struct cv_wrap_info *w, const char *action)
{
  json_t *e = json_pack ("{s:s, s:I, s:s?, s:s?}", "action", action, "id",
                         (json_int_t) w->id, "type", w->type, "ref", w->ref);
  json_array_append_new (json_object_get (record, "wraps"), e);
}

int
audit_end (int code)
{
  char now[32];

  if (!log_path || !record)
    return code;
  cv_now_rfc3339 (now);
  json_object_set_new (record, "time", json_string (now));
  json_object_set_new (record, "command", json_string (command));
  json_object_set_new (record, "result", json_string (code ? "error" : "ok"));
  json_object_set_new (record, "exit", json_integer (code));
  if (code && last_error[0])
    json_object_set_new (record, "error", json_string (last_error));
  json_t *reqs = json_array ();
  for (size_t i = 0; i < cv_reqlog_count (); i++) {
    const char *svc, *op, *id;
    cv_reqlog_get (i, &svc, &op, &id);
    json_array_append_new (reqs, json_pack ("{s:s, s:s, s:s}", "service", svc,
                                            "op", op, "request_id", id));
  }
  json_object_set_new (record, "requests", reqs);

  char *line = json_dumps (record, JSON_COMPACT | JSON_SORT_KEYS);
  int fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (!line || fd < 0
      || write (fd, line, strlen (line)) != (ssize_t) strlen (line)
      || write (fd, "\n", 1) != 1 || fsync (fd) < 0) {
    fprintf (stderr, "error: cannot write the audit log %s: %s\n", log_path,
             strerror (errno));
    if (code == 0)
      code = EXIT_IO;
  }
  if (fd >= 0)
    close (fd);
  free (line);
  json_decref (record);
  record = NULL;
  return code;
}

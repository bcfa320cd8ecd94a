/* cryptvol-keymgr metrics: a running server's exports in the Prometheus text
 * exposition format (version 0.0.4), from one control-socket status, for
 * node-exporter's textfile collector or a sidecar that serves it. Nothing
 * is printed unless the whole status came: a collector never reads half. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "keymgr.h"

/* The key states a state gauge is always written for (another state a
 * server reports gets its own line too). */
static const char *const key_states[] = { "unlocked", "grace", "revoked" };

/* The outcomes of key checks (the status's "checks" members). */
static const char *const outcomes[] = { "ok", "revoked", "unreachable" };

/* Write s as a label value: backslash, double quote and newline escaped. */
static void
label_value (FILE *f, const char *s)
{
  for (; s && *s; s++)
    if (*s == '\\')
      fputs ("\\\\", f);
    else if (*s == '"')
      fputs ("\\\"", f);
    else if (*s == '\n')
      fputs ("\\n", f);
    else
      fputc (*s, f);
}

/* A string member of o, "" if absent. */
static const char *
str (const json_t *o, const char *name)
{
  const char *s = json_string_value (json_object_get (o, name));
  return s ? s : "";
}

/* An integer member of o's object group (group NULL: of o), 0 if absent. */
static json_int_t
num (const json_t *o, const char *group, const char *name)
{
  const json_t *g = group ? json_object_get (o, group) : o;
  return json_integer_value (json_object_get (g, name));
}

/* The # HELP and # TYPE lines of a metric. */
static void
family (FILE *f, const char *name, const char *type, const char *help)
{
  fprintf (f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The start of a sample of metric name for export e: name{export="...". The
 * caller adds its other labels and closes with "} VALUE\n". */
static void
sample (FILE *f, const char *name, const json_t *e)
{
  fprintf (f, "%s{export=\"", name);
  label_value (f, str (e, "export"));
  fputc ('"', f);
}

/* A metric with one sample per export that reported its status:
 * name{export} value, value the member of group of its status. */
static void
per_export (FILE *f, const json_t *exports, const char *name, const char *type,
            const char *help, const char *group, const char *member)
{
  size_t i;
  json_t *e;

  family (f, name, type, help);
  json_array_foreach (exports, i, e)
  {
    if (json_object_get (e, "error"))
      continue;
    sample (f, name, e);
    fprintf (f, "} %lld\n", (long long) num (e, group, member));
  }
}

/* Whether the rotation's state means one is in progress (recorded, not
 * finished). */
static bool
rotating (const char *state)
{
  return state[0] && strcmp (state, "none") != 0 && strcmp (state, "done") != 0;
}

/* The exposition of exports (status replies, or error entries) to f. */
static void
print_metrics (FILE *f, const json_t *exports)
{
  size_t i;
  json_t *e;

  family (f, "cryptvol_export_info", "gauge",
          "An export of the server: its volume path and uuid (\"\" while not "
          "unlocked). Always 1.");
  json_array_foreach (exports, i, e)
  {
    sample (f, "cryptvol_export_info", e);
    fputs (",volume=\"", f);
    label_value (f, str (e, "volume"));
    fputs ("\",uuid=\"", f);
    label_value (f, str (e, "uuid"));
    fputs ("\"} 1\n", f);
  }
  family (f, "cryptvol_export_up", "gauge",
          "1 if the server reported the export's status, 0 if it could not "
          "(see cryptvol-keymgr status).");
  json_array_foreach (exports, i, e)
  {
    sample (f, "cryptvol_export_up", e);
    fprintf (f, "} %d\n", json_object_get (e, "error") ? 0 : 1);
  }
  family (f, "cryptvol_key_state", "gauge",
          "The export's key state: 1 for the current state (unlocked; grace: "
          "the key service is unreachable, still served; revoked: every "
          "request refused), 0 for the others.");
  json_array_foreach (exports, i, e)
  {
    const char *state = str (e, "state");
    bool known = false;
    if (json_object_get (e, "error"))
      continue;
    for (size_t k = 0; k < ARRAY_SIZE (key_states); k++) {
      known |= strcmp (state, key_states[k]) == 0;
      sample (f, "cryptvol_key_state", e);
      fprintf (f, ",state=\"%s\"} %d\n", key_states[k],
               strcmp (state, key_states[k]) == 0);
    }
    if (!known && state[0]) {
      sample (f, "cryptvol_key_state", e);
      fputs (",state=\"", f);
      label_value (f, state);
      fputs ("\"} 1\n", f);
    }
  }
  per_export (f, exports, "cryptvol_requests_served_total", "counter",
              "NBD reads, writes, zeroes and flushes served.", "requests",
              "served");
  per_export (f, exports, "cryptvol_requests_refused_total", "counter",
              "Requests refused (EPERM) while the key was revoked.", "requests",
              "refused");
  per_export (f, exports, "cryptvol_io_errors_total", "counter",
              "Requests failed with an error other than a refusal (I/O errors, "
              "beyond the end).",
              "requests", "failed");
  per_export (f, exports, "cryptvol_read_bytes_total", "counter",
              "Bytes read by clients (plaintext).", "bytes", "read");
  per_export (f, exports, "cryptvol_written_bytes_total", "counter",
              "Bytes written or zeroed by clients (plaintext).", "bytes",
              "written");
  family (f, "cryptvol_key_checks_total", "counter",
          "Key checks (the key watch's and the control socket's) by outcome: "
          "ok, revoked (the key service refused the key), unreachable.");
  json_array_foreach (exports, i, e)
  {
    if (json_object_get (e, "error"))
      continue;
    for (size_t k = 0; k < ARRAY_SIZE (outcomes); k++) {
      sample (f, "cryptvol_key_checks_total", e);
      fprintf (f, ",outcome=\"%s\"} %lld\n", outcomes[k],
               (long long) num (e, "checks", outcomes[k]));
    }
  }
  per_export (f, exports, "cryptvol_key_last_success_timestamp_seconds",
              "gauge",
              "When the key was last found usable (unlock, resume or a "
              "successful check), in unix seconds.",
              "checks", "last_ok");
  family (f, "cryptvol_rotating", "gauge",
          "1 while a DEK rotation is in progress (recorded and not finished), "
          "else 0.");
  json_array_foreach (exports, i, e)
  {
    if (json_object_get (e, "error"))
      continue;
    sample (f, "cryptvol_rotating", e);
    fprintf (f, "} %d\n",
             rotating (str (json_object_get (e, "rotation"), "state")));
  }
  per_export (f, exports, "cryptvol_rotation_done_bytes", "gauge",
              "Bytes the DEK rotation has re-encrypted (all of them when none "
              "is in progress).",
              "rotation", "done");
  per_export (f, exports, "cryptvol_rotation_total_bytes", "gauge",
              "Bytes a DEK rotation re-encrypts in all: the volume's size.",
              "rotation", "total");
}

/* --control PATH into *ctx. */
static int
metrics_opt (int c, const char *arg, void *ctx)
{
  *(const char **) ctx = arg;
  return 0;
}

int
cmd_metrics (int argc, char **argv)
{
  static const struct option own[] = {
    { "control", required_argument, 0, 'C' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr metrics --control PATH [--export NAME]\n"
        "Prints the server's metrics, of the export NAME or of every export,\n"
        "in the Prometheus text format: for node-exporter's textfile\n"
        "collector (write a temporary file, then rename it into the\n"
        "collector's directory) or a sidecar. Nothing is printed on error.\n";
  const char *path = NULL;
  struct common_opts co;
  json_auto_t *req = json_pack ("{s:s}", "cmd", "status");
  json_auto_t *reply = NULL;
  int rc = parse_args (argc, argv, own, metrics_opt, &path, &co, usage, 0);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (!path) {
    cv_err ("metrics needs --control PATH (the server's control= socket)");
    return EXIT_USAGE;
  }
  if (co.json) {
    cv_err ("metrics prints the Prometheus text format; for JSON use "
            "cryptvol-keymgr status --control %s --json",
            path);
    return EXIT_USAGE;
  }
  if (!req) {
    cv_err ("out of memory");
    return EXIT_IO;
  }
  if ((rc = control_request (path, req, &reply)) != 0)
    return rc;
  const char *err = control_reply_error (reply);
  if (err) {
    cv_err ("metrics: %s", err);
    return EXIT_IO;
  }
  json_t *exports = json_object_get (reply, "exports");
  json_auto_t *one = exports ? NULL : json_pack ("[O]", reply);
  if (!exports && !one) {
    cv_err ("out of memory");
    return EXIT_IO;
  }
  print_metrics (stdout, exports ? exports : one);
  if (fflush (stdout) != 0 || ferror (stdout)) {
    cv_err ("metrics: cannot write the output");
    return EXIT_IO;
  }
  return EXIT_OK;
}

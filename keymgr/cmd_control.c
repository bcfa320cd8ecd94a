/* cryptvol-keymgr status, lock, unlock, reload: the control socket of a
 * running server (nbdkit ... control=PATH; doc/control.md), for the export
 * --export names. And the reload that add-wrap, remove-wrap and rewrap send
 * with --control. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "ctl/ctl.h"
#include "keymgr.h"

/* How long a reply may take: check and unlock call the key service, whose
 * requests are retried for up to about a minute. */
#define REPLY_TIMEOUT_MS 120000

/* Connect to the control socket at path: the descriptor, or -exit code
 * (reported). */
static int
dial (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sa.sun_path) {
    cv_err ("--control %s: longer than a Unix socket path may be", path);
    return -EXIT_USAGE;
  }
  memcpy (sa.sun_path, path, strlen (path));
  if ((fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
    cv_err ("socket: %s", strerror (errno));
    return -EXIT_IO;
  }
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0)
    return fd;
  int e = errno;
  close (fd);
  if (e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK) {
    cv_err ("no cryptvol server listens on %s (is nbdkit running with "
            "control=%s?)",
            path, path);
    return -EXIT_IO;
  }
  cv_err ("cannot connect to %s: %s%s", path, strerror (e),
          e == EACCES ? " (run as the server's user or a member of its "
                        "control-group)"
                      : "");
  return -(e == EACCES ? EXIT_NOKEY : EXIT_IO);
}

/* A reply is at most this long: the status of every export of a server
 * with thousands. */
#define REPLY_MAX (64 * 1024 * 1024)

/* Read one line from fd (at most REPLY_MAX bytes) into a new string; NULL,
 * reported, on timeout, end of input or error. */
static char *
read_line (int fd, const char *path)
{
  size_t cap = 4 * CV_CTL_LINE_MAX, len = 0;
  CLEANUP_FREE char *buf = malloc (cap + 1);

  for (;;) {
    if (!buf) {
      cv_err ("out of memory");
      return NULL;
    }
    if (len == cap) {
      if (cap >= REPLY_MAX)
        break;
      char *b = realloc (buf, 2 * cap + 1);
      if (!b) {
        cv_err ("out of memory");
        return NULL;
      }
      buf = b;
      cap *= 2;
    }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll (&p, 1, REPLY_TIMEOUT_MS);
    if (r == 0) {
      cv_err ("%s: no reply in %d s", path, REPLY_TIMEOUT_MS / 1000);
      return NULL;
    }
    ssize_t n = r < 0 ? -1 : read (fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      cv_err ("%s: the server closed the connection without a reply%s%s", path,
              n < 0 ? ": " : "", n < 0 ? strerror (errno) : "");
      return NULL;
    }
    char *nl = memchr (buf + len, '\n', (size_t) n);
    len += (size_t) n;
    if (nl) {
      *nl = '\0';
      return STEAL (buf);
    }
  }
  cv_err ("%s: a reply longer than %d bytes", path, REPLY_MAX);
  return NULL;
}

const char *keymgr_export;

int
control_request (const char *path, const json_t *req, json_t **reply)
{
  CLEANUP_CLOSE int fd = dial (path);
  CLEANUP_FREE char *line = NULL;
  json_auto_t *sent = json_copy ((json_t *) req);
  json_error_t e;

  if (fd < 0)
    return -fd;
  if (sent && keymgr_export)
    json_object_set_new (sent, "export", json_string (keymgr_export));
  CLEANUP_FREE char *s = sent ? json_dumps (sent, JSON_COMPACT) : NULL;
  if (!s || asprintf (&line, "%s\n", s) < 0) {
    line = NULL;
    cv_err ("out of memory");
    return EXIT_IO;
  }
  /* A server that refuses us closes at once: the write then fails (EPIPE,
   * not SIGPIPE), and its reply, which says why, is still to be read. */
  signal (SIGPIPE, SIG_IGN);
  int rc = cv_write_all (fd, line, strlen (line));
  if (rc < 0 && rc != -EPIPE) {
    cv_err ("%s: cannot send the request: %s", path, strerror (-rc));
    return EXIT_IO;
  }
  CLEANUP_FREE char *r = read_line (fd, path);
  if (!r)
    return EXIT_IO;
  if (!(*reply = json_loads (r, JSON_REJECT_DUPLICATES, &e))) {
    cv_err ("%s: not a cryptvol control reply: %s", path, e.text);
    return EXIT_IO;
  }
  if (!json_is_object (*reply)) {
    json_decref (*reply);
    cv_err ("%s: not a cryptvol control reply (not a JSON object)", path);
    return EXIT_IO;
  }
  return 0;
}

/* Send {"cmd":cmd}: control_request without members. */
static int
request (const char *path, const char *cmd, json_t **reply)
{
  json_auto_t *req = json_pack ("{s:s}", "cmd", cmd);

  if (!req) {
    cv_err ("out of memory");
    return EXIT_IO;
  }
  return control_request (path, req, reply);
}

const char *
control_reply_error (const json_t *reply)
{
  if (json_is_true (json_object_get (reply, "ok")))
    return NULL;
  const char *e = json_string_value (json_object_get (reply, "error"));
  return e ? e : "the server said not ok, without saying why";
}

/* A member of a status reply as a string ("-" if absent or empty). */
static const char *
member (const json_t *o, const char *name)
{
  const char *s = json_string_value (json_object_get (o, name));
  return s && s[0] ? s : "-";
}

static json_int_t
count (const json_t *o, const char *group, const char *name)
{
  return json_integer_value (
      json_object_get (json_object_get (o, group), name));
}

/* The DEK rotation line of status (absent from an older server's reply). */
static void
print_rotation (const json_t *rot)
{
  double mib = 1048576.0;
  json_int_t done = json_integer_value (json_object_get (rot, "done"));
  json_int_t total = json_integer_value (json_object_get (rot, "total"));
  json_int_t eta = json_integer_value (json_object_get (rot, "eta_s"));
  double limit = json_number_value (json_object_get (rot, "limit_mib_s"));
  const char *state = member (rot, "state");

  if (!rot)
    return;
  if (strcmp (state, "none") == 0) {
    printf ("rotation:    none\n");
    return;
  }
  printf ("rotation:    %s%s%s, %.0f/%.0f MiB (%.1f%%), %.1f MiB/s", state,
          json_string_length (json_object_get (rot, "id")) ? " " : "",
          json_string_value (json_object_get (rot, "id")) ?: "",
          (double) done / mib, (double) total / mib,
          total > 0 ? 100.0 * (double) done / (double) total : 0,
          json_number_value (json_object_get (rot, "rate_mib_s")));
  if (limit > 0)
    printf (" (limit %g)", limit);
  if (eta >= 0)
    printf (", ETA %lld:%02lld", (long long) eta / 60, (long long) eta % 60);
  if (json_string_length (json_object_get (rot, "error")))
    printf (": %s", member (rot, "error"));
  putchar ('\n');
}

static void
print_status (const json_t *r)
{
  const json_t *wrap = json_object_get (r, "wrap");
  const json_t *last = json_object_get (r, "last_check");

  if (json_string_length (json_object_get (r, "export")))
    printf ("export:      %s\n", member (r, "export"));
  printf ("volume:      %s\n", member (r, "volume"));
  printf ("uuid:        %s\n", member (r, "uuid"));
  if (json_string_length (json_object_get (r, "error"))) {
    printf ("error:       %s\n", member (r, "error"));
    return;
  }
  printf ("state:       %s\n", member (r, "state"));
  if (json_string_length (json_object_get (r, "cause")))
    printf ("cause:       %s\n", member (r, "cause"));
  if (json_is_integer (json_object_get (wrap, "id")))
    printf ("wrap:        %lld (%s)\n",
            (long long) json_integer_value (json_object_get (wrap, "id")),
            member (wrap, "type"));
  if (json_string_length (json_object_get (last, "time")))
    printf ("last check:  %s, %s (request id %s)\n", member (last, "time"),
            member (last, "outcome"), member (last, "request_id"));
  else
    printf ("last check:  none yet\n");
  printf ("next check:  %s\n",
          json_string_length (json_object_get (r, "next_check"))
              ? member (r, "next_check")
              : "none (no key watch)");
  if (json_is_object (json_object_get (r, "checks")))
    printf ("key checks:  %lld ok, %lld revoked, %lld unreachable\n",
            (long long) count (r, "checks", "ok"),
            (long long) count (r, "checks", "revoked"),
            (long long) count (r, "checks", "unreachable"));
  printf ("requests:    %lld served, %lld refused, %lld failed\n",
          (long long) count (r, "requests", "served"),
          (long long) count (r, "requests", "refused"),
          (long long) count (r, "requests", "failed"));
  printf ("bytes:       %lld read, %lld written\n",
          (long long) count (r, "bytes", "read"),
          (long long) count (r, "bytes", "written"));
  if (json_string_length (json_object_get (r, "xts_engine")))
    printf ("xts engine:  %s\n", member (r, "xts_engine"));
  print_rotation (json_object_get (r, "rotation"));
}

/* The exit code when the server refused cmd. */
static int
refused_code (const char *cmd)
{
  if (strcmp (cmd, "unlock") == 0)
    return EXIT_NOKEY; /* no wrap could unlock the volume again */
  if (strcmp (cmd, "reload") == 0)
    return EXIT_HEADER; /* the header on disk was not taken */
  return EXIT_IO;
}

/* --control PATH into *ctx. */
static int
control_opt (int c, const char *arg, void *ctx)
{
  *(const char **) ctx = arg;
  return 0;
}

/* The shared body of status, lock, unlock and reload. */
static int
control_cmd (int argc, char **argv, const char *cmd, const char *usage)
{
  static const struct option own[] = {
    { "control", required_argument, 0, 'C' },
    { 0, 0, 0, 0 },
  };
  const char *path = NULL;
  struct common_opts co;
  json_auto_t *reply = NULL;
  int rc = parse_args (argc, argv, own, control_opt, &path, &co, usage, 0);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (!path) {
    cv_err ("%s needs --control PATH (the server's control= socket)", cmd);
    return EXIT_USAGE;
  }
  if ((rc = request (path, cmd, &reply)) != 0)
    return rc;
  const char *err = control_reply_error (reply);
  if (err) {
    cv_err ("%s: %s", cmd, err);
    if (co.json)
      print_json (reply);
    return refused_code (cmd);
  }
  if (co.json)
    print_json (reply);
  else if (strcmp (cmd, "status") == 0 && json_object_get (reply, "exports")) {
    size_t i;
    json_t *e;
    json_array_foreach (json_object_get (reply, "exports"), i, e)
    {
      if (i)
        putchar ('\n');
      print_status (e);
    }
  } else if (strcmp (cmd, "status") == 0)
    print_status (reply);
  else if (strcmp (cmd, "reload") == 0)
    printf ("%s: the server reloaded the header (seqid %lld)\n", path,
            (long long) json_integer_value (json_object_get (reply, "seqid")));
  else
    printf ("%s: the volume is %s\n", path, member (reply, "state"));
  return EXIT_OK;
}

int
cmd_status (int argc, char **argv)
{
  return control_cmd (
      argc, argv, "status",
      "usage: cryptvol-keymgr status --control PATH [--export NAME] [--json]\n"
      "Shows a running server's key state, last and next key check and\n"
      "request counters: of the export NAME, or of every export.\n");
}

int
cmd_lock (int argc, char **argv)
{
  return control_cmd (
      argc, argv, "lock",
      "usage: cryptvol-keymgr lock --control PATH [--export NAME] [--json]\n"
      "Revokes the served volume now: its key is wiped and every request\n"
      "fails with EPERM until unlock, whatever the key watch finds.\n");
}

int
cmd_unlock (int argc, char **argv)
{
  return control_cmd (
      argc, argv, "unlock",
      "usage: cryptvol-keymgr unlock --control PATH [--export NAME] [--json]\n"
      "Asks the server to unwrap the volume's key again and serve.\n");
}

int
cmd_reload (int argc, char **argv)
{
  return control_cmd (
      argc, argv, "reload",
      "usage: cryptvol-keymgr reload --control PATH [--export NAME] [--json]\n"
      "Makes the server re-read the volume header (after add-wrap,\n"
      "remove-wrap or rewrap), so that its key watch uses the current "
      "wraps.\n");
}

json_t *
control_reload_after (const char *path)
{
  json_t *reply = NULL;

  if (!path)
    return NULL;
  const char *err = "no reply (see the message above)";
  if (request (path, "reload", &reply) != 0)
    reply = json_pack ("{s:b, s:s}", "ok", 0, "error", err);
  else
    err = control_reply_error (reply);
  if (err)
    cv_warn ("the header change is on disk, but the server at %s did not "
             "reload it: %s; run cryptvol-keymgr reload --control %s",
             path, err, path);
  return reply;
}

void
control_reload_print (const char *path, const json_t *reply)
{
  if (path && reply && !control_reply_error (reply))
    printf ("%s: the server reloaded the header (seqid %lld)\n", path,
            (long long) json_integer_value (json_object_get (reply, "seqid")));
}

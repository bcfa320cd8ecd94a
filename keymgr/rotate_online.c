/* cryptvol-keymgr rotate-dek --control: the DEK rotation of a served volume.
 * keymgr begins it in the header (rotate_prepare: the secrets are needed
 * here, once), the server adopts it ({"cmd":"rotate"}) and re-encrypts in
 * the background while serving; keymgr follows the server's status until
 * the end. --pause, --resume and --rate change a running rotation. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "format/header.h"
#include "keymgr.h"
#include "vol/volume.h"

/* How often the status is asked while following. */
#define POLL_MS 500
/* Give up following when the rotation has not moved for this long (or for
 * 4 steps at the rate limit, if longer). */
#define STALL_S 120

/* Monotonic seconds. */
static double
now_s (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

/* Member name of o as a string; "" if absent. */
static const char *
str (const json_t *o, const char *name)
{
  const char *s = json_string_value (json_object_get (o, name));
  return s ? s : "";
}

/* Member name of o as a count; 0 if absent or negative. */
static uint64_t
u64 (const json_t *o, const char *name)
{
  json_int_t v = json_integer_value (json_object_get (o, name));
  return v > 0 ? (uint64_t) v : 0;
}

/* Send cmd (with rate when >= 0) and return the reply's "rotation" in
 * *rot (caller decrefs). Returns 0, or an exit code after saying why. */
static int
send_cmd (const char *path, const char *cmd, double rate, json_t **rot)
{
  json_auto_t *req = json_pack ("{s:s}", "cmd", cmd);
  json_auto_t *reply = NULL;
  int rc;

  *rot = NULL;
  if (!req
      || (rate >= 0 && json_object_set_new (req, "rate", json_real (rate))))
    return EXIT_IO;
  if ((rc = control_request (path, req, &reply)) != 0)
    return rc;
  const char *err = control_reply_error (reply);
  if (err) {
    cv_err ("%s: %s", cmd, err);
    return EXIT_IO;
  }
  json_t *r = json_object_get (reply, "rotation");
  if (!json_is_object (r)) {
    cv_err ("%s: the server does not report a DEK rotation (an older "
            "cryptvol?); rotate offline instead",
            path);
    return EXIT_IO;
  }
  *rot = json_incref (r);
  return 0;
}

/* The volume's uuid, and whether its header records a rotation. Returns
 * 0 or an exit code (reported). */
static int
read_volume (const char *path, const char *header, char *uuid, size_t n,
             bool *rotating, bool *passphrase, const struct rotate_opts *ro)
{
  CLEANUP_DEV struct cv_dev *d = NULL;
  struct cv_header *h = NULL;
  unsigned valid;
  int rc = open_header (path, header, &d, &h, &valid);

  if (rc)
    return rc;
  audit_volume (path, cv_hdr_uuid (h));
  snprintf (uuid, n, "%s", cv_hdr_uuid (h));
  *rotating = cv_hdr_rotating (h);
  *passphrase = rotate_needs_passphrase (h, ro);
  cv_hdr_free (h);
  return 0;
}

/* Following: the start, and what was last seen to move. */
struct follow {
  bool json, tty;
  double start, moved;
  uint64_t first; /* bytes done when following began */
  char last[96];  /* state and done when it last moved */
  int pct;        /* last whole percent printed (not a terminal) */
};

/* One progress report of rot: a JSON line (--json), a line redrawn on a
 * terminal, else a line per whole percent. */
static void
show (struct follow *f, const json_t *rot)
{
  uint64_t done = u64 (rot, "done"), total = u64 (rot, "total");
  double mib = 1048576.0,
         pct = total ? 100.0 * (double) done / (double) total : 0;
  json_int_t eta = json_integer_value (json_object_get (rot, "eta_s"));
  char eta_s[32] = "?";

  if (keymgr_quiet)
    return;
  if (f->json) {
    json_dumpf (rot, stdout, JSON_COMPACT | JSON_SORT_KEYS);
    putchar ('\n');
    fflush (stdout);
    return;
  }
  if (!f->tty && (int) pct == f->pct)
    return;
  f->pct = (int) pct;
  if (eta >= 0)
    snprintf (eta_s, sizeof eta_s, "%lld:%02lld", (long long) eta / 60,
              (long long) eta % 60);
  fprintf (stderr, "%s%.0f/%.0f MiB  %5.1f%%  %.1f MiB/s  ETA %s  %s%s",
           f->tty ? "\r" : "", (double) done / mib, (double) total / mib, pct,
           json_number_value (json_object_get (rot, "rate_mib_s")), eta_s,
           str (rot, "state"), f->tty ? "   " : "\n");
  fflush (stderr);
}

/* Poll the server's status until the rotation is done (0), failed, or
 * stalls (an exit code, reported). */
static int
follow (const char *path, const char *vol, bool json, json_t *first)
{
  struct follow f = { .json = json, .tty = isatty (2), .pct = -1 };
  json_auto_t *rot = json_incref (first);

  f.start = f.moved = now_s ();
  f.first = u64 (rot, "done");
  for (;;) {
    const char *state = str (rot, "state");
    char sig[96];
    show (&f, rot);
    /* "none": finished, and the server has forgotten it (restarted). */
    if (strcmp (state, "done") == 0 || strcmp (state, "none") == 0)
      break;
    if (strcmp (state, "failed") == 0) {
      if (f.tty && !json)
        fputc ('\n', stderr);
      cv_err ("%s: the DEK rotation failed: %s; the server retries it "
              "(cryptvol-keymgr status --control %s)",
              vol, str (rot, "error"), path);
      return EXIT_IO;
    }
    snprintf (sig, sizeof sig, "%s %llu %llu", state,
              (unsigned long long) u64 (rot, "done"),
              (unsigned long long) u64 (rot, "steps"));
    double t = now_s (),
           limit = json_number_value (json_object_get (rot, "limit_mib_s"));
    double stall = STALL_S;
    if (limit > 0 && 4.0 * CV_ROT_STEP_ONLINE / 1048576.0 / limit > stall)
      stall = 4.0 * CV_ROT_STEP_ONLINE / 1048576.0 / limit;
    if (strcmp (sig, f.last) != 0) {
      snprintf (f.last, sizeof f.last, "%s", sig);
      f.moved = t;
    } else if (t - f.moved > stall) {
      if (f.tty && !json)
        fputc ('\n', stderr);
      cv_err ("%s: the DEK rotation has not moved for %.0f s (%s); it goes on "
              "in the server: follow it with cryptvol-keymgr status "
              "--control %s",
              vol, stall, state, path);
      return EXIT_IO;
    }
    struct timespec poll = { 0, POLL_MS * 1000000L };
    nanosleep (&poll, NULL);
    json_decref (rot);
    if (send_cmd (path, "status", -1, &rot) != 0) {
      cv_err ("%s: lost the server while following the DEK rotation; it "
              "goes on in the server (or at its next start, with "
              "rotate=auto)",
              vol);
      return EXIT_IO;
    }
  }
  if (f.tty && !json)
    fputc ('\n', stderr);
  double s = now_s () - f.start;
  uint64_t bytes = u64 (rot, "total") - f.first;
  double mib = (double) bytes / 1048576.0;
  if (json)
    printf ("{\"rotated\":true,\"online\":true,\"bytes\":%llu,"
            "\"seconds\":%.3f,\"mib_per_s\":%.1f}\n",
            (unsigned long long) bytes, s, s > 0 ? mib / s : 0);
  else
    printf ("%s: DEK rotated online: %.0f MiB re-encrypted in %.1f s "
            "(%.0f MiB/s); every wrap now holds the new key\n",
            vol, mib, s, s > 0 ? mib / s : 0);
  return EXIT_OK;
}

int
rotate_online (const char *path, struct common_opts *co,
               const struct rotate_opts *ro)
{
  json_auto_t *st = NULL, *rot = NULL;
  char uuid[64];
  bool in_header, passphrase, already = false;
  int rc;

  if (ro->change) {
    if ((rc = send_cmd (ro->control, ro->change, -1, &rot)) != 0)
      return rc;
    if (co->json)
      print_json (rot);
    else
      printf ("%s: the DEK rotation is %s\n", path, str (rot, "state"));
    return EXIT_OK;
  }
  if ((rc = read_volume (path, co->header, uuid, sizeof uuid, &in_header,
                         &passphrase, ro))
      != 0)
    return rc;
  {
    json_auto_t *req = json_pack ("{s:s}", "cmd", "status");
    if (!req || (rc = control_request (ro->control, req, &st)) != 0)
      return rc ? rc : EXIT_IO;
  }
  const char *err = control_reply_error (st);
  if (err) {
    cv_err ("status: %s", err);
    return EXIT_IO;
  }
  if (json_is_array (json_object_get (st, "exports"))) {
    /* A server of several exports, none named: take the one of path (its
     * name stays valid while st lives, which is until we return). */
    json_t *e, *found = NULL;
    size_t i;
    json_array_foreach (json_object_get (st, "exports"), i, e)
    {
      if (strcmp (str (e, "uuid"), uuid) == 0)
        found = e;
    }
    if (!found) {
      cv_err ("%s serves no export of %s (uuid %s) that is unlocked: give "
              "the control= socket of its server, or name its export with "
              "--export NAME",
              ro->control, path, uuid);
      return EXIT_USAGE;
    }
    json_incref (found);
    json_decref (st);
    st = found;
    keymgr_export = str (st, "export");
  }
  if (strcmp (str (st, "uuid"), uuid) != 0) {
    cv_err ("%s serves %s (uuid %s), not %s (uuid %s): give the control= "
            "socket of the server of %s",
            ro->control, str (st, "volume"), str (st, "uuid"), path, uuid,
            path);
    return EXIT_USAGE;
  }
  const char *state = str (json_object_get (st, "rotation"), "state");
  bool running
      = state[0] && strcmp (state, "none") != 0 && strcmp (state, "done") != 0;

  if (running || in_header) {
    if (ro->ndrop || ro->step)
      cv_warn ("%s: a DEK rotation is in progress: continuing it; "
               "--drop-wrap and --hotzone apply when one begins",
               path);
    already = true;
  } else {
    if ((rc = common_creds (co, passphrase && isatty (0), false)) < 0)
      return exit_code (rc);
    if ((rc = rotate_prepare (path, co, ro, true, &already)) != 0)
      return rc;
  }
  if ((rc = send_cmd (ro->control, "rotate", ro->rate, &rot)) != 0) {
    if (!already)
      cv_err ("%s: the DEK rotation is recorded in the header, but the "
              "server did not start it (above); once that is fixed run this "
              "again (it continues the rotation), or restart the server "
              "(rotate=auto continues it)",
              path);
    return rc;
  }
  if (ro->detach) {
    if (co->json)
      print_json (rot);
    else
      printf ("%s: the server %s the DEK rotation %s (%s); follow it with "
              "cryptvol-keymgr status --control %s\n",
              path, already ? "continues" : "runs", str (rot, "id"),
              str (rot, "state"), ro->control);
    return EXIT_OK;
  }
  if (!already && !co->json)
    printf ("%s: DEK rotation %s begun; the server re-encrypts while "
            "serving\n",
            path, str (rot, "id"));
  return follow (ro->control, path, co->json, rot);
}

/* The control protocol, one line at a time (cv_ctl_dispatch): every
 * command's reply, every kind of bad request, and the audit records. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "ctl/audit.h"
#include "ctl/ctl.h"
#include "ctl-fake.h"
#include "harness.h"

#define UUID "0f0e0d0c-0b0a-4908-8706-050403020100"
static struct fake_vol fake;
static struct cv_ctl_export one = { "", "/srv/vol.img", &fake };
static struct cv_ctl_opts opts = {
  .exports = &one,
  .nexports = 1,
  .ops = &fake_ops,
};
static const struct cv_ctl_peer me = { .uid = 1000, .pid = 4242 };

/* The reply to line, parsed; its text must be one line of JSON. */
static json_t *
ask (const char *line)
{
  CLEANUP_FREE char *r = cv_ctl_dispatch (&opts, &me, line, strlen (line));
  size_t len = r ? strlen (r) : 0;

  CHECK (r && len > 0 && r[len - 1] == '\n' && !memchr (r, '\n', len - 1),
         "reply to %s is one line: %s", line, r ? r : "(null)");
  return r ? json_loads (r, 0, NULL) : NULL;
}

/* The reply to line must be an error whose message contains want. */
static void
expect_error (const char *line, const char *want)
{
  json_auto_t *j = ask (line);
  const char *e = json_string_value (json_object_get (j, "error"));

  CHECK (json_is_false (json_object_get (j, "ok")), "%s: not ok", line);
  CHECK (e && strstr (e, want), "%s: error '%s' says '%s'", line,
         e ? e : "(none)", want);
}

static void
test_commands (void)
{
  fake = (struct fake_vol){ .state = "unlocked", .uuid = UUID };
  json_auto_t *st = ask ("{\"cmd\":\"status\"}");
  CHECK (json_is_true (json_object_get (st, "ok")), "status ok");
  CHECK (strcmp (json_string_value (json_object_get (st, "volume")),
                 "/srv/vol.img")
             == 0,
         "status names the volume");
  CHECK (strcmp (json_string_value (json_object_get (st, "uuid")), UUID) == 0,
         "status names the uuid");
  CHECK (json_is_string (json_object_get (st, "export"))
             && !json_string_length (json_object_get (st, "export")),
         "status names the export (\"\": a single-volume server)");
  json_auto_t *named = ask ("{\"cmd\":\"status\",\"export\":\"\"}");
  CHECK (json_is_true (json_object_get (named, "ok"))
             && json_object_get (named, "state"),
         "the single export may be named (\"\")");
  fake.uuid = NULL;
  json_auto_t *lazy = ask ("{\"cmd\":\"status\"}");
  CHECK (strcmp (json_string_value (json_object_get (lazy, "uuid")), "") == 0,
         "uuid \"\" while the volume is not unlocked");
  fake.uuid = UUID;
  CHECK (strcmp (json_string_value (json_object_get (st, "state")), "unlocked")
             == 0,
         "status has the state");

  json_auto_t *lk = ask ("{\"cmd\":\"lock\"}");
  CHECK (strcmp (json_string_value (json_object_get (lk, "state")), "revoked")
             == 0,
         "lock revokes");
  json_auto_t *ck = ask (" { \"cmd\" : \"check\" } \r");
  CHECK (json_is_true (json_object_get (ck, "ok"))
             && strcmp (json_string_value (json_object_get (ck, "state")),
                        "revoked")
                    == 0,
         "check reports the state (whitespace and CR accepted)");

  fake.unlock_fails = true;
  expect_error ("{\"cmd\":\"unlock\"}", "the key differs");
  CHECK (strcmp (fake.state, "revoked") == 0, "a failed unlock stays revoked");
  fake.unlock_fails = false;
  json_auto_t *ul = ask ("{\"cmd\":\"unlock\"}");
  CHECK (strcmp (json_string_value (json_object_get (ul, "state")), "unlocked")
             == 0,
         "unlock resumes");

  json_auto_t *rl = ask ("{\"cmd\":\"reload\"}");
  CHECK (json_integer_value (json_object_get (rl, "seqid")) == 7,
         "reload reports the seqid");
  fake.reload_fails = true;
  expect_error ("{\"cmd\":\"reload\"}", "Invalid argument");
  expect_error ("{\"cmd\":\"commit-header\",\"header\":\"aGVhZGVy\"}",
                "not sealed with the DEK being served");
  fake.reload_fails = false;

  json_auto_t *ch = ask ("{\"cmd\":\"commit-header\",\"header\":\"aGVhZGVy\"}");
  CHECK (json_is_true (json_object_get (ch, "ok"))
             && json_integer_value (json_object_get (ch, "seqid")) == 8,
         "commit-header reports the committed seqid");
  expect_error ("{\"cmd\":\"commit-header\",\"header\":\"not base64!\"}",
                "\"header\" is not base64");
}

static void
test_bad_requests (void)
{
  unsigned calls;

  fake = (struct fake_vol){ .state = "unlocked" };
  expect_error ("{\"cmd\":\"destroy\"}",
                "unknown command \"destroy\"; known: status, check, lock, "
                "unlock, reload, rotate, rotate-pause, rotate-resume, "
                "rotate-rate, commit-header");
  expect_error ("{\"cmd\":\"commit-header\"}",
                "\"commit-header\" needs \"header\": a header copy in base64");
  expect_error ("{\"cmd\":\"commit-header\",\"header\":7}",
                "\"commit-header\" needs \"header\"");
  expect_error ("{\"cmd\":\"commit-header\",\"header\":\"\",\"rate\":1}",
                "unknown member \"rate\" for \"commit-header\"; it takes "
                "\"cmd\", (optionally) \"export\" and \"header\"");
  expect_error ("{\"cmd\":\"status\"", "malformed request");
  expect_error ("", "malformed request");
  expect_error ("status", "e.g. {\"cmd\":\"status\"}");
  expect_error ("[\"status\"]", "a request is a JSON object");
  expect_error ("\"status\"", "'[' or '{' expected");
  expect_error ("{}", "missing \"cmd\"");
  expect_error ("{\"cmd\":7}", "missing \"cmd\" (a string");
  expect_error ("{\"cmd\":\"status\",\"cmd\":\"lock\"}", "duplicate");
  expect_error ("{\"cmd\":\"status\",\"force\":true}",
                "unknown member \"force\" for \"status\"; it takes only "
                "\"cmd\" and (optionally) \"export\"");
  expect_error ("{\"force\":true}", "missing \"cmd\"");
  expect_error ("{\"cmd\":\"status\"} {\"cmd\":\"lock\"}", "malformed");
  expect_error ("{\"cmd\":\"st\\u0000atus\"}", "malformed");
  CHECK (fake.calls == 0, "no bad request ran an operation (%u did)",
         fake.calls);
  CHECK (strcmp (fake.state, "unlocked") == 0, "nothing was locked");

  /* Bytes that are not UTF-8 are quoted as '?': the reply stays JSON. */
  expect_error ("{\"cmd\":\"\xff\xfe\"}", "malformed");
  const char bad_name[] = "{\"cmd\":\"lo\xc3\xa9"
                          "ck\"}";
  json_auto_t *j = ask (bad_name);
  const char *e = json_string_value (json_object_get (j, "error"));
  CHECK (e && strstr (e, "unknown command \"lo??ck\""), "quoted: %s",
         e ? e : "(none)");
  /* A NUL inside the line is not the end of it. */
  calls = fake.calls;
  CLEANUP_FREE char *r
      = cv_ctl_dispatch (&opts, &me, "{\"cmd\":\"lock\"}\0x", 16);
  CHECK (r && strstr (r, "\"ok\":false"), "a NUL in a line: %s", r);
  CHECK (fake.calls == calls, "a line with a NUL ran nothing");
}

/* The rotate commands: what they change, and every refusal of their
 * members, none of which reaches the volume. */
static void
test_rotate (void)
{
  fake = (struct fake_vol){ .state = "unlocked", .rot = "none" };
  expect_error ("{\"cmd\":\"rotate\"}", "no DEK rotation to start");
  expect_error ("{\"cmd\":\"rotate-pause\"}", "no DEK rotation runs");

  fake.rot = "idle";
  json_auto_t *r = ask ("{\"cmd\":\"rotate\",\"rate\":50}");
  json_t *rot = json_object_get (r, "rotation");
  CHECK (json_is_true (json_object_get (r, "ok"))
             && strcmp (json_string_value (json_object_get (rot, "state")),
                        "running")
                    == 0
             && json_number_value (json_object_get (rot, "limit_mib_s")) == 50,
         "rotate starts at 50 MiB/s");
  json_auto_t *p = ask ("{\"cmd\":\"rotate-pause\"}");
  CHECK (strcmp (fake.rot, "paused") == 0
             && json_is_true (json_object_get (p, "ok")),
         "rotate-pause pauses");
  json_auto_t *q = ask ("{\"cmd\":\"rotate-resume\"}");
  CHECK (strcmp (fake.rot, "running") == 0
             && json_is_true (json_object_get (q, "ok")),
         "rotate-resume resumes");
  json_auto_t *t = ask ("{\"cmd\":\"rotate-rate\",\"rate\":12.5}");
  CHECK (fake.limit == 12.5 && json_is_true (json_object_get (t, "ok")),
         "rotate-rate takes a real number (%g)", fake.limit);
  json_auto_t *z = ask ("{\"cmd\":\"rotate-rate\",\"rate\":0}");
  CHECK (fake.limit == 0 && json_is_true (json_object_get (z, "ok")),
         "rate 0: unlimited");
  json_auto_t *st = ask ("{\"cmd\":\"status\"}");
  CHECK (strcmp (json_string_value (json_object_get (
                     json_object_get (st, "rotation"), "state")),
                 "running")
             == 0,
         "status has the rotation");

  unsigned calls = fake.calls;
  expect_error ("{\"cmd\":\"rotate-rate\"}",
                "\"rotate-rate\" needs \"rate\": MiB/s, a number >= 0 (0: "
                "unlimited), e.g. {\"cmd\":\"rotate-rate\",\"rate\":50}");
  expect_error ("{\"cmd\":\"rotate-rate\",\"rate\":-1}",
                "\"rate\" must be MiB/s, a number >= 0 (0: unlimited), not -1");
  expect_error ("{\"cmd\":\"rotate\",\"rate\":\"fast\"}",
                "\"rate\" must be MiB/s, a number >= 0 (0: unlimited), not "
                "\"fast\"");
  expect_error ("{\"cmd\":\"rotate\",\"rate\":null}", "not null");
  expect_error ("{\"cmd\":\"rotate\",\"rate\":true}", "not true");
  expect_error ("{\"cmd\":\"rotate-rate\",\"rate\":1e999}", "malformed");
  expect_error ("{\"cmd\":\"rotate\",\"rate\":5,\"rate\":6}", "duplicate");
  expect_error ("{\"cmd\":\"rotate\",\"speed\":5}",
                "unknown member \"speed\" for \"rotate\"; it takes \"cmd\", "
                "(optionally) \"export\" and (optionally) \"rate\"");
  expect_error ("{\"cmd\":\"rotate-rate\",\"rate\":5,\"now\":1}",
                "unknown member \"now\" for \"rotate-rate\"; it takes "
                "\"cmd\", (optionally) \"export\" and \"rate\"");
  expect_error ("{\"cmd\":\"rotate-pause\",\"rate\":5}",
                "unknown member \"rate\" for \"rotate-pause\"; it takes only "
                "\"cmd\" and (optionally) \"export\"");
  expect_error ("{\"cmd\":\"status\",\"rate\":5}",
                "unknown member \"rate\" for \"status\"");
  CHECK (fake.calls == calls, "no refused request ran an operation");
  CHECK (fake.limit == 0 && strcmp (fake.rot, "running") == 0,
         "the rotation is as it was");
}

/* Every command is in the audit log with the peer, the result and, on
 * failure, the error. */
/* The audit log's records at path, at most max of them, parsed (NULL for a
 * line that is not JSON); the file is removed. */
static size_t
read_records (const char *path, json_t **rec, size_t max)
{
  FILE *f = fopen (path, "r");
  char line[2048];
  size_t n = 0;

  while (f && fgets (line, sizeof line, f) && n < max)
    rec[n++] = json_loads (line, 0, NULL);
  if (f)
    fclose (f);
  unlink (path);
  return n;
}

static void
test_audit (void)
{
  char path[] = "/tmp/test-ctl-audit.XXXXXX";
  int fd = mkstemp (path);
  struct cv_audit *a = NULL;

  CHECK (fd >= 0, "mkstemp");
  close (fd);
  CHECK (cv_audit_open (path, &a) == 0, "audit open");
  opts.audit = a;
  fake = (struct fake_vol){ .state = "unlocked",
                            .unlock_fails = true,
                            .uuid = UUID };
  json_decref (ask ("{\"cmd\":\"lock\"}"));
  json_decref (ask ("{\"cmd\":\"unlock\"}"));
  json_decref (ask ("{\"cmd\":\"nope\"}"));
  fake.rot = "running";
  json_decref (ask ("{\"cmd\":\"rotate-rate\",\"rate\":25}"));
  json_decref (ask ("{\"cmd\":\"commit-header\",\"header\":\"aGVhZGVy\"}"));
  opts.audit = NULL;
  cv_audit_close (a);

  json_t *rec[6] = { 0 };
  size_t n = read_records (path, rec, 6);
  CHECK (n == 5, "5 records (%zu)", n);
  for (size_t i = 0; i < n; i++) {
    json_t *r = rec[i];
    CHECK (r, "record %zu is JSON", i);
    CHECK (json_string_value (json_object_get (r, "time"))
               && strcmp (json_string_value (json_object_get (r, "event")),
                          "control")
                      == 0
               && strcmp (json_string_value (json_object_get (r, "volume")),
                          one.volume)
                      == 0
               && strcmp (json_string_value (json_object_get (r, "uuid")), UUID)
                      == 0
               && json_is_string (json_object_get (r, "export")),
           "record %zu has time, event, volume, uuid, export", i);
    json_t *peer = json_object_get (r, "peer");
    CHECK (json_integer_value (json_object_get (peer, "uid")) == 1000
               && json_integer_value (json_object_get (peer, "pid")) == 4242,
           "record %zu has the peer's uid and pid", i);
  }
  if (n == 5) {
    CHECK (
        strcmp (json_string_value (json_object_get (rec[0], "command")), "lock")
                == 0
            && strcmp (json_string_value (json_object_get (rec[0], "result")),
                       "ok")
                   == 0,
        "lock recorded as ok");
    const char *e = json_string_value (json_object_get (rec[1], "error"));
    CHECK (
        strcmp (json_string_value (json_object_get (rec[1], "result")), "error")
                == 0
            && e && strstr (e, "the key differs"),
        "failed unlock recorded with why");
    CHECK (!json_object_get (rec[2], "command")
               && strstr (json_string_value (json_object_get (rec[2], "error")),
                          "unknown command"),
           "unknown command recorded as an error");
    CHECK (json_number_value (json_object_get (rec[3], "rate")) == 25,
           "a rate change recorded with its rate");
    CHECK (strcmp (json_string_value (json_object_get (rec[4], "command")),
                   "commit-header")
                   == 0
               && !json_object_get (rec[4], "header"),
           "commit-header recorded without the header");
  }
  for (size_t i = 0; i < n; i++)
    json_decref (rec[i]);

  harness_log_clear ();
  CHECK (cv_audit_open ("/nonexistent/dir/audit.log", &a) == -ENOENT,
         "an audit log in a missing directory");
  CHECK (strstr (harness_logged (), "cannot open the audit log "
                                    "/nonexistent/dir/audit.log"),
         "says so: %s", harness_logged ());
}

/* A server with several exports: status of all or of one, commands that
 * must name one, unknown names, and audit records naming the export. */
static void
test_exports (void)
{
  struct fake_vol db = { .state = "unlocked", .uuid = "u-db" };
  struct fake_vol web = { .state = "unlocked", .uuid = "u-web" };
  struct fake_vol lazy = { .state = "unlocked", .status_fails = true };
  struct cv_ctl_export ex[] = { { "db", "/srv/db.img", &db },
                                { "web", "/srv/web.img", &web },
                                { "lazy", "/srv/lazy.img", &lazy } };
  struct cv_ctl_opts saved = opts;

  opts.exports = ex;
  opts.nexports = 3;

  json_auto_t *all = ask ("{\"cmd\":\"status\"}");
  json_t *arr = json_object_get (all, "exports");
  CHECK (json_is_true (json_object_get (all, "ok"))
             && json_array_size (arr) == 3 && !json_object_get (all, "state"),
         "status without \"export\": every export");
  for (size_t i = 0; i < 3 && i < json_array_size (arr); i++) {
    json_t *e = json_array_get (arr, i);
    CHECK (
        strcmp (json_string_value (json_object_get (e, "export")), ex[i].name)
                == 0
            && strcmp (json_string_value (json_object_get (e, "volume")),
                       ex[i].volume)
                   == 0,
        "exports[%zu] is %s", i, ex[i].name);
  }
  json_t *w = json_array_get (arr, 1), *l = json_array_get (arr, 2);
  CHECK (strcmp (json_string_value (json_object_get (w, "uuid")), "u-web") == 0
             && strcmp (json_string_value (json_object_get (w, "state")),
                        "unlocked")
                    == 0,
         "an export's status: uuid and state");
  const char *le = json_string_value (json_object_get (l, "error"));
  CHECK (le && strstr (le, "not unlocked yet")
             && strcmp (json_string_value (json_object_get (l, "uuid")), "")
                    == 0
             && !json_object_get (l, "state"),
         "an export whose status failed says why: %s", le ? le : "(none)");

  json_auto_t *single = ask ("{\"cmd\":\"status\",\"export\":\"web\"}");
  CHECK (json_is_true (json_object_get (single, "ok"))
             && strcmp (json_string_value (json_object_get (single, "export")),
                        "web")
                    == 0
             && strcmp (json_string_value (json_object_get (single, "volume")),
                        "/srv/web.img")
                    == 0
             && json_object_get (single, "state")
             && !json_object_get (single, "exports"),
         "status of one export: the single-export shape");
  expect_error ("{\"cmd\":\"status\",\"export\":\"lazy\"}", "not unlocked yet");

  unsigned calls = db.calls + web.calls + lazy.calls;
  expect_error ("{\"cmd\":\"lock\"}",
                "this server has 3 exports: name one with \"export\", e.g. "
                "{\"cmd\":\"lock\",\"export\":\"NAME\"} (cryptvol-keymgr lock "
                "--control PATH --export NAME)");
  expect_error ("{\"cmd\":\"lock\",\"export\":\"nope\"}",
                "unknown export \"nope\"; this server has 3: \"db\", \"web\", "
                "\"lazy\"");
  expect_error ("{\"cmd\":\"status\",\"export\":\"\"}", "unknown export \"\"");
  expect_error ("{\"cmd\":\"lock\",\"export\":7}",
                "\"export\" must be a string (an export name), not 7");
  expect_error ("{\"cmd\":\"rotate-rate\",\"rate\":5}", "name one with");
  CHECK (db.calls + web.calls + lazy.calls == calls,
         "no request without a valid export ran an operation");

  json_auto_t *lk = ask ("{\"cmd\":\"lock\",\"export\":\"db\"}");
  CHECK (json_is_true (json_object_get (lk, "ok"))
             && strcmp (db.state, "revoked") == 0
             && strcmp (web.state, "unlocked") == 0,
         "lock of one export locks that one only");

  /* Many exports: the list in the error is cut short, still one line. */
  struct cv_ctl_export many[40];
  char names[40][40];
  for (int i = 0; i < 40; i++) {
    snprintf (names[i], sizeof names[i], "customer-volume-%02d", i);
    many[i] = (struct cv_ctl_export){ names[i], "/v", &web };
  }
  opts.exports = many;
  opts.nexports = 40;
  expect_error ("{\"cmd\":\"check\",\"export\":\"x\"}",
                "this server has 40: \"customer-volume-00\", "
                "\"customer-volume-01\"");
  expect_error ("{\"cmd\":\"check\",\"export\":\"x\"}", "...");
  opts.nexports = 0;
  expect_error ("{\"cmd\":\"status\"}", "this server has no export");

  /* Audit records name the export they acted on. */
  char path[] = "/tmp/test-ctl-exports.XXXXXX";
  int fd = mkstemp (path);
  struct cv_audit *a = NULL;
  CHECK (fd >= 0 && cv_audit_open (path, &a) == 0, "audit open");
  close (fd);
  opts.exports = ex;
  opts.nexports = 3;
  opts.audit = a;
  json_decref (ask ("{\"cmd\":\"unlock\",\"export\":\"db\"}"));
  json_decref (ask ("{\"cmd\":\"unlock\",\"export\":\"nope\"}"));
  json_decref (ask ("{\"cmd\":\"status\"}"));
  json_decref (ask ("not json"));
  opts.audit = NULL;
  cv_audit_close (a);
  json_t *rec[5] = { 0 };
  size_t n = read_records (path, rec, 5);
  CHECK (n == 4, "4 records (%zu)", n);
  if (n == 4) {
    CHECK (
        strcmp (json_string_value (json_object_get (rec[0], "export")), "db")
                == 0
            && strcmp (json_string_value (json_object_get (rec[0], "volume")),
                       "/srv/db.img")
                   == 0
            && strcmp (json_string_value (json_object_get (rec[0], "uuid")),
                       "u-db")
                   == 0,
        "the record of a command names its export, volume and uuid");
    CHECK (
        strcmp (json_string_value (json_object_get (rec[1], "export")), "nope")
                == 0
            && strcmp (json_string_value (json_object_get (rec[1], "result")),
                       "error")
                   == 0
            && strcmp (json_string_value (json_object_get (rec[1], "volume")),
                       "")
                   == 0,
        "an unknown export is recorded with the name asked for");
    CHECK (
        !json_object_get (rec[2], "export")
            && strcmp (json_string_value (json_object_get (rec[2], "command")),
                       "status")
                   == 0,
        "status of every export: one record, no export");
    CHECK (!json_object_get (rec[3], "export")
               && json_object_get (rec[3], "error"),
           "a malformed request on a server with several exports");
  }
  for (size_t i = 0; i < n; i++)
    json_decref (rec[i]);
  opts = saved;
}

/* A full disk: one message for a run of failed records, not one each. */
static void
test_audit_full (void)
{
  struct cv_audit *a = NULL;
  json_auto_t *rec = json_pack ("{s:s}", "event", "check");

  if (access ("/dev/full", W_OK) != 0) {
    printf ("skipped: no /dev/full\n");
    return;
  }
  CHECK (cv_audit_open ("/dev/full", &a) == 0, "open /dev/full");
  harness_log_clear ();
  cv_audit_write (a, "v", "u", rec);
  cv_audit_write (a, "v", "u", rec);
  const char *l = harness_logged ();
  const char *first = strstr (l, "cannot write the audit log /dev/full");
  CHECK (first && !strstr (first + 1, "cannot write the audit log"),
         "one message for two lost records: %s", l);
  cv_audit_close (a);
}

int
main (void)
{
  harness_init ();
  test_commands ();
  test_bad_requests ();
  test_rotate ();
  test_audit ();
  test_exports ();
  test_audit_full ();
  return harness_done ("test-ctl-protocol");
}

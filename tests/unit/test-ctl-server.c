/* The control socket's server over a real Unix socket, with a fake volume:
 * its mode, who may connect, stale and live sockets at its path, and peers
 * that misbehave (silent, oversized, too many) while others are served. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "ctl/ctl.h"
#include "ctl-fake.h"
#include "harness.h"

#define OTHER_UID 65534 /* nobody */
#define OTHER_GID 65534
#define CTL_GID 4242 /* a group nobody is not a member of */

static char dir[] = "/tmp/test-ctl-server.XXXXXX";
static char path[100];
static struct fake_vol fake;

static struct cv_ctl_opts
opts (void)
{
  static struct cv_ctl_export ex = { "", "/srv/vol.img", &fake };

  return (struct cv_ctl_opts){ .path = path,
                               .group = (gid_t) -1,
                               .exports = &ex,
                               .nexports = 1,
                               .ops = &fake_ops };
}

static struct sockaddr_un
addr (void)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  return sa;
}

/* A connection to the socket, or -errno. */
static int
dial (void)
{
  struct sockaddr_un sa = addr ();
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
    int e = errno;
    close (fd);
    return -e;
  }
  return fd;
}

/* One reply line from fd into buf (without its newline): 1, or 0 at end of
 * input, -1 if nothing came within 10 s, -2 on an error (a reset: the
 * server closed with our data unread). */
static int
reply (int fd, char *buf, size_t n)
{
  size_t len = 0;

  while (len + 1 < n) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll (&p, 1, 10000) != 1)
      return -1;
    ssize_t r = read (fd, buf + len, 1);
    if (r < 0)
      return -2;
    if (r == 0)
      break;
    if (buf[len] == '\n') {
      buf[len] = '\0';
      return 1;
    }
    len++;
  }
  buf[len] = '\0';
  return 0;
}

/* Send text on fd and return whether the reply line contains want. */
static bool
said (int fd, const char *text, const char *want)
{
  char buf[8192];

  if (write (fd, text, strlen (text)) != (ssize_t) strlen (text))
    return false;
  if (reply (fd, buf, sizeof buf) != 1 || !strstr (buf, want)) {
    fprintf (stderr, "  sent %s got %s\n", text, buf);
    return false;
  }
  return true;
}

/* The connection is closed by the server (a clean end of input within
 * 10 s, not a reset). */
static bool
closed (int fd)
{
  char buf[8192];
  int r;

  while ((r = reply (fd, buf, sizeof buf)) == 1)
    ;
  return r == 0;
}

static void
test_serve (void)
{
  struct cv_ctl_opts o = opts ();
  struct cv_ctl *c = NULL;
  struct stat st;

  fake = (struct fake_vol){ .state = "unlocked", .uuid = "u-1" };
  CHECK (cv_ctl_start (&o, &c) == 0, "start");
  CHECK (stat (path, &st) == 0 && S_ISSOCK (st.st_mode)
             && (st.st_mode & 07777) == 0600,
         "a socket of mode 0600 (%o)", st.st_mode & 07777);

  int a = dial ();
  CHECK (a >= 0, "connect");
  CHECK (said (a, "{\"cmd\":\"status\"}\n", "\"volume\":\"/srv/vol.img\""),
         "status");
  CHECK (said (a, "{\"cmd\":\"lock\"}\n", "\"state\":\"revoked\""), "lock");
  CHECK (said (a, "{\"cmd\":\"check\"}\n", "\"state\":\"revoked\""), "check");
  CHECK (said (a, "{\"cmd\":\"unlock\"}\n", "\"state\":\"unlocked\""),
         "unlock");
  CHECK (said (a, "{\"cmd\":\"reload\"}\n", "\"seqid\":7"), "reload");
  CHECK (said (a, "{\"cmd\":\"bogus\"}\n", "unknown command"), "unknown");
  CHECK (said (a, "not json\n", "malformed request"),
         "a malformed line keeps the connection");
  /* Two requests in one write, then one split over two writes. */
  CHECK (said (a, "{\"cmd\":\"lock\"}\n{\"cmd\":\"status\"}\n",
               "\"state\":\"revoked\""),
         "pipelined: first");
  char buf[8192];
  CHECK (reply (a, buf, sizeof buf) == 1 && strstr (buf, "\"uuid\":\"u-1\""),
         "pipelined: second: %s", buf);
  CHECK (write (a, "{\"cmd\":", 7) == 7, "half a line");
  CHECK (said (a, "\"unlock\"}\n", "\"ok\":true"), "the other half");

  /* A line of exactly the limit (newline included) is a request; one
   * byte more is refused and the connection closed. */
  static char line[CV_CTL_LINE_MAX + 2];
  char over[64];
  snprintf (over, sizeof over, "request line longer than %d bytes",
            CV_CTL_LINE_MAX);
  memset (line, ' ', sizeof line);
  memcpy (line, "{\"cmd\":\"status\"}", 16);
  line[CV_CTL_LINE_MAX - 1] = '\n';
  line[CV_CTL_LINE_MAX] = '\0';
  CHECK (said (a, line, "\"ok\":true"), "a line of the limit is served");
  line[CV_CTL_LINE_MAX - 1] = ' ';
  line[CV_CTL_LINE_MAX] = '\n';
  line[CV_CTL_LINE_MAX + 1] = '\0';
  CHECK (said (a, line, over), "a line one byte longer is refused");
  CHECK (closed (a), "and the connection closed");
  close (a);

  /* A peer that sends its request and shuts down its side still gets the
   * reply, also to a last line without a newline. */
  int b = dial ();
  CHECK (write (b, "{\"cmd\":\"status\"}", 16) == 16
             && shutdown (b, SHUT_WR) == 0,
         "send and shut down");
  CHECK (reply (b, buf, sizeof buf) == 1 && strstr (buf, "\"ok\":true"),
         "the reply after shutdown: %s", buf);
  CHECK (closed (b), "then end of input");
  close (b);

  /* A client gone before reading its replies does not stop the server. */
  int d = dial ();
  for (int i = 0; i < 200; i++)
    CHECK (write (d, "{\"cmd\":\"status\"}\n", 17) == 17, "flood");
  close (d);
  int e = dial ();
  CHECK (said (e, "{\"cmd\":\"status\"}\n", "\"ok\":true"),
         "served after a peer vanished with replies pending");
  close (e);

  cv_ctl_stop (c);
  CHECK (access (path, F_OK) < 0 && errno == ENOENT,
         "the socket is removed at stop");
}

/* A silent peer and a peer that sends half a line do not delay another;
 * both are closed after the idle time. */
static void
test_idle (void)
{
  struct cv_ctl_opts o = opts ();
  struct cv_ctl *c = NULL;

  o.idle_ms = 500;
  fake = (struct fake_vol){ .state = "unlocked" };
  CHECK (cv_ctl_start (&o, &c) == 0, "start");
  int silent = dial (), partial = dial (), busy = dial ();
  CHECK (write (partial, "{\"cmd\":\"sta", 11) == 11, "half a request");
  CHECK (said (busy, "{\"cmd\":\"status\"}\n", "\"ok\":true"),
         "a peer is served while others say nothing");
  char buf[256];
  CHECK (reply (silent, buf, sizeof buf) == 1 && strstr (buf, "idle"),
         "the silent peer is told it was idle: %s", buf);
  CHECK (closed (silent), "and closed");
  CHECK (closed (partial), "the half-line peer is closed");
  close (silent);
  close (partial);
  close (busy);

  /* A command that takes longer than the idle time (a slow key service)
   * does not make the others idle: a request sent meanwhile is answered. */
  int waiting = dial ();
  busy = dial ();
  CHECK (said (waiting, "{\"cmd\":\"status\"}\n", "\"ok\":true"), "first");
  fake.check_ms = 1500;
  CHECK (write (busy, "{\"cmd\":\"check\"}\n", 16) == 16, "a slow check");
  CHECK (said (waiting, "{\"cmd\":\"status\"}\n", "\"ok\":true"),
         "a request sent during a slow command is answered after it");
  CHECK (reply (busy, buf, sizeof buf) == 1 && strstr (buf, "\"ok\":true"),
         "the slow check's reply: %s", buf);
  close (waiting);
  close (busy);
  cv_ctl_stop (c);
  fake.check_ms = 0;
}

static void
test_max_clients (void)
{
  struct cv_ctl_opts o = opts ();
  struct cv_ctl *c = NULL;

  o.max_clients = 2;
  fake = (struct fake_vol){ .state = "unlocked" };
  CHECK (cv_ctl_start (&o, &c) == 0, "start");
  int a = dial (), b = dial ();
  CHECK (said (a, "{\"cmd\":\"status\"}\n", "\"ok\":true"), "first");
  CHECK (said (b, "{\"cmd\":\"status\"}\n", "\"ok\":true"), "second");
  int x = dial ();
  char buf[256];
  CHECK (reply (x, buf, sizeof buf) == 1
             && strstr (buf, "too many control connections (at most 2)"),
         "a third is refused: %s", buf);
  CHECK (closed (x), "and closed");
  close (x);
  close (a);
  /* The slot is free again once the server has seen a close. */
  CHECK (said (b, "{\"cmd\":\"status\"}\n", "\"ok\":true"), "second again");
  int y = dial ();
  CHECK (said (y, "{\"cmd\":\"status\"}\n", "\"ok\":true"),
         "a new peer after one left");
  close (y);
  close (b);
  cv_ctl_stop (c);
}

/* Run fn in a child as uid (and gid, with supplementary groups); its exit
 * status is the child's verdict: 0 pass. */
static int
as_user (uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
         int (*fn) (void))
{
  pid_t pid = fork ();
  int st;

  if (pid == 0) {
    if (setgroups (ngroups, groups) < 0 || setresgid (gid, gid, gid) < 0
        || setresuid (uid, uid, uid) < 0)
      _exit (99);
    _exit (fn ());
  }
  if (pid < 0 || waitpid (pid, &st, 0) != pid || !WIFEXITED (st))
    return -1;
  return WEXITSTATUS (st);
}

static int
child_cannot_connect (void)
{
  return dial () == -EACCES ? 0 : 1;
}

static int
child_refused (void)
{
  char buf[512];
  int fd = dial ();

  if (fd < 0)
    return 2;
  if (reply (fd, buf, sizeof buf) != 1
      || !strstr (buf, "permission denied: uid 65534"))
    return 3;
  /* Whatever it sends now is not answered: the server closed it. */
  return send (fd, "{\"cmd\":\"lock\"}\n", 15, MSG_NOSIGNAL) < 0 || closed (fd)
             ? 0
             : 4;
}

static int
child_served (void)
{
  int fd = dial ();
  return fd >= 0 && said (fd, "{\"cmd\":\"status\"}\n", "\"ok\":true") ? 0 : 1;
}

/* Another uid: kept out by the mode, and by the credential check when the
 * mode lets it connect; a member of control-group is served. */
static void
test_peers (void)
{
  struct cv_ctl_opts o = opts ();
  struct cv_ctl *c = NULL;
  struct stat st;
  const gid_t ctl_gid = CTL_GID;

  if (geteuid () != 0) {
    printf ("skipped peer checks: not root (cannot run as another uid)\n");
    return;
  }
  fake = (struct fake_vol){ .state = "unlocked" };
  CHECK (cv_ctl_start (&o, &c) == 0, "start");
  CHECK (as_user (OTHER_UID, OTHER_GID, NULL, 0, child_cannot_connect) == 0,
         "another uid cannot connect to a 0600 socket");
  cv_ctl_stop (c);

  o.group = CTL_GID;
  CHECK (cv_ctl_start (&o, &c) == 0, "start with a group");
  CHECK (stat (path, &st) == 0 && (st.st_mode & 07777) == 0660
             && st.st_gid == CTL_GID,
         "mode 0660, group %d (%o, %d)", CTL_GID, st.st_mode & 07777,
         (int) st.st_gid);
  /* Through the file mode by a supplementary group, but not a member of
   * the group as the credential check sees it (primary group, group
   * database): refused. */
  harness_log_clear ();
  int v = as_user (OTHER_UID, OTHER_GID, &ctl_gid, 1, child_refused);
  CHECK (v == 0,
         "a peer of another uid is refused with an error and closed (%d)", v);
  CHECK (strstr (harness_logged (), "refused pid"), "the refusal is logged");
  CHECK (fake.calls == 0, "its request never ran");
  CHECK (as_user (OTHER_UID, CTL_GID, NULL, 0, child_served) == 0,
         "a peer whose group is control-group is served");
  cv_ctl_stop (c);
}

/* A stale socket at the path is replaced; a live one, or a file that is
 * not a socket, is left alone and the start refused. */
static void
test_path (void)
{
  struct cv_ctl_opts o = opts ();
  struct cv_ctl *c = NULL;
  struct sockaddr_un sa = addr ();

  int s = socket (AF_UNIX, SOCK_STREAM, 0);
  CHECK (bind (s, (struct sockaddr *) &sa, sizeof sa) == 0, "bind stale");
  close (s); /* the file stays, nobody listens: stale */
  CHECK (cv_ctl_start (&o, &c) == 0, "a stale socket is replaced");
  int a = dial ();
  CHECK (said (a, "{\"cmd\":\"status\"}\n", "\"ok\":true"), "and it answers");
  close (a);

  struct cv_ctl *c2 = NULL;
  harness_log_clear ();
  CHECK (cv_ctl_start (&o, &c2) == -EADDRINUSE, "a live socket is not stolen");
  CHECK (strstr (harness_logged (), "another server already listens"),
         "says so: %s", harness_logged ());
  int b = dial ();
  CHECK (said (b, "{\"cmd\":\"status\"}\n", "\"ok\":true"),
         "the first server still answers");
  close (b);
  cv_ctl_stop (c);

  FILE *f = fopen (path, "w");
  fputs ("precious", f);
  fclose (f);
  harness_log_clear ();
  CHECK (cv_ctl_start (&o, &c) == -EEXIST, "a regular file is not replaced");
  CHECK (strstr (harness_logged (), "exists and is not a socket"), "says so");
  struct stat st;
  CHECK (stat (path, &st) == 0 && S_ISREG (st.st_mode) && st.st_size == 8,
         "and is intact");
  unlink (path);

  char longpath[200];
  memset (longpath, 'x', sizeof longpath - 1);
  longpath[sizeof longpath - 1] = '\0';
  o.path = longpath;
  CHECK (cv_ctl_start (&o, &c) == -ENAMETOOLONG, "a path too long");
  o.path = "/nonexistent/dir/ctl.sock";
  CHECK (cv_ctl_start (&o, &c) == -ENOENT, "a missing directory");
}

int
main (void)
{
  harness_init ();
  signal (SIGPIPE, SIG_IGN); /* a write to a closed peer is a failed CHECK */
  if (!mkdtemp (dir))
    return 1;
  chmod (dir, 0755); /* another uid may reach the socket's directory */
  snprintf (path, sizeof path, "%s/ctl.sock", dir);
  test_serve ();
  test_idle ();
  test_max_clients ();
  test_peers ();
  test_path ();
  rmdir (dir);
  return harness_done ("test-ctl-server");
}

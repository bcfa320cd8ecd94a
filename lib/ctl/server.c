/* The control socket's server: one thread, one poll loop over the listening
 * socket, a self-pipe (to stop) and every peer. Peers are served with
 * non-blocking I/O and a buffer each, so a peer that sends half a line, or
 * nothing, or does not read its replies, delays nobody else. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "ctl/audit.h"
#include "ctl/ctl.h"

#define DEFAULT_MAX_CLIENTS 16
#define DEFAULT_IDLE_MS 30000
#define BACKLOG 16
#define LINGER_MS 1000 /* to read what a peer sends after its last reply */

struct client {
  int fd; /* -1: a free slot */
  struct cv_ctl_peer peer;
  char in[CV_CTL_LINE_MAX];
  size_t in_len;
  char *out; /* replies not yet sent: out[out_off..out_len) */
  size_t out_len, out_off;
  bool closing;     /* close once out is sent */
  bool lingering;   /* replies sent and our side shut down: what the peer
                       still sends is read and dropped until it closes, so
                       that its last reply is not lost to a reset */
  int64_t deadline; /* ms (monotonic): closed if no whole line by then */
};

struct cv_ctl {
  struct cv_ctl_opts o;
  int lfd;
  int wake[2]; /* a byte on wake[1] stops the thread */
  pthread_t thread;
  dev_t dev; /* the socket file we made (removed at stop if still ours) */
  ino_t ino;
  struct client *cl; /* o.max_clients slots */
};

static int64_t
now_ms (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (int64_t) t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Whether a peer with these credentials may use the socket: the server's
 * uid, or (with a control group) the group as its primary group or as a
 * member in the group database. */
static bool
allowed (const struct cv_ctl *c, const struct ucred *cr)
{
  struct passwd pw, *res = NULL;
  char buf[4096];
  gid_t groups[256];
  int n = (int) ARRAY_SIZE (groups);

  if (cr->uid == geteuid ())
    return true;
  if (c->o.group == (gid_t) -1)
    return false;
  if (cr->gid == c->o.group)
    return true;
  if (getpwuid_r (cr->uid, &pw, buf, sizeof buf, &res) != 0 || !res)
    return false;
  if (getgrouplist (pw.pw_name, pw.pw_gid, groups, &n) < 0)
    n = (int) ARRAY_SIZE (groups); /* more than fit: look at those that did */
  for (int i = 0; i < n; i++)
    if (groups[i] == c->o.group)
      return true;
  return false;
}

/* Read and drop what a peer has sent so far (never blocks; at most 64 KiB
 * from a peer that keeps sending): closing a socket with unread data
 * resets it, and the peer could lose its reply. */
static void
drain (int fd)
{
  char buf[4096];

  for (int i = 0; i < 16 && recv (fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
    ;
}

/* Send a one-line error to a peer about to be closed, if it can take it
 * now (never blocks). */
static void
refuse (int fd, const char *msg)
{
  json_auto_t *r = json_pack ("{s:b, s:s}", "ok", 0, "error", msg);
  CLEANUP_FREE char *s = r ? json_dumps (r, JSON_COMPACT) : NULL;

  if (s && send (fd, s, strlen (s), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
    send (fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown (fd, SHUT_WR);
  drain (fd);
}

static void
drop (struct client *k)
{
  close (k->fd);
  free (k->out);
  *k = (struct client){ .fd = -1 };
}

/* Queue text (taken; NULL: out of memory) to be sent to k. */
static void
queue (struct client *k, char *text)
{
  size_t len = text ? strlen (text) : 0;
  char *o = text ? realloc (k->out, k->out_len + len) : NULL;

  if (!o) {
    cv_err ("control socket: out of memory; closing a connection");
    k->closing = true;
    free (text);
    return;
  }
  memcpy (o + k->out_len, text, len);
  k->out = o;
  k->out_len += len;
  free (text);
}

/* Answer one request of k. The time the command took (a key check may
 * wait for the key service) is not held against the other peers: their
 * deadlines move by as much. */
static void
request (struct cv_ctl *c, struct client *k, const char *line, size_t len)
{
  int64_t start = now_ms ();
  char *reply = cv_ctl_dispatch (&c->o, &k->peer, line, len);
  int64_t now = now_ms ();

  queue (k, reply);
  for (unsigned i = 0; i < c->o.max_clients; i++)
    c->cl[i].deadline += now - start;
  k->deadline = now + c->o.idle_ms;
}

/* Take a new connection: served, or refused with an error line. */
static void
accept_one (struct cv_ctl *c)
{
  int fd = accept4 (c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  struct ucred cr;
  socklen_t len = sizeof cr;
  struct client *k = NULL;
  char msg[256];

  if (fd < 0) {
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
      cv_warn ("control socket %s: accept: %s", c->o.path, strerror (errno));
    return;
  }
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
    cv_warn ("control socket %s: no peer credentials: %s; connection closed",
             c->o.path, strerror (errno));
    close (fd);
    return;
  }
  if (!allowed (c, &cr)) {
    snprintf (msg, sizeof msg,
              "permission denied: uid %u may not use this control socket "
              "(the server's uid%s only)",
              (unsigned) cr.uid,
              c->o.group == (gid_t) -1 ? "" : " and control-group members");
    json_auto_t *rec
        = json_pack ("{s:s, s:{s:I, s:I}, s:s, s:s}", "event", "control",
                     "peer", "uid", (json_int_t) cr.uid, "pid",
                     (json_int_t) cr.pid, "result", "error", "error", msg);
    cv_ctl_audit (&c->o, NULL, rec);
    cv_warn ("control socket %s: refused pid %d of uid %u (not allowed)",
             c->o.path, (int) cr.pid, (unsigned) cr.uid);
    refuse (fd, msg);
    close (fd);
    return;
  }
  for (unsigned i = 0; i < c->o.max_clients && !k; i++)
    if (c->cl[i].fd < 0)
      k = &c->cl[i];
  if (!k) {
    snprintf (msg, sizeof msg,
              "too many control connections (at most %u); try again",
              c->o.max_clients);
    refuse (fd, msg);
    close (fd);
    return;
  }
  *k = (struct client){ .fd = fd,
                        .peer = { cr.uid, cr.pid },
                        .deadline = now_ms () + c->o.idle_ms };
}

/* Read what k sent and answer every whole line. At end of input a last
 * unterminated line is answered too, and k is closed once replies are
 * sent; a line longer than CV_CTL_LINE_MAX gets an error and k is closed. */
static void
input (struct cv_ctl *c, struct client *k)
{
  if (k->lingering) {
    char buf[4096];
    ssize_t n = recv (k->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      drop (k);
    return;
  }
  ssize_t n = recv (k->fd, k->in + k->in_len, sizeof k->in - k->in_len, 0);
  char *start = k->in, *nl;

  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR)
      drop (k);
    return;
  }
  k->in_len += (size_t) n;
  while ((nl = memchr (start, '\n', (size_t) (k->in + k->in_len - start)))) {
    request (c, k, start, (size_t) (nl - start));
    start = nl + 1;
  }
  k->in_len -= (size_t) (start - k->in);
  memmove (k->in, start, k->in_len);
  if (n == 0) {
    if (k->in_len)
      request (c, k, k->in, k->in_len);
    k->closing = true;
  } else if (k->in_len == sizeof k->in) {
    char msg[128];
    snprintf (msg, sizeof msg,
              "{\"ok\":false,\"error\":\"request line longer than %d bytes; "
              "closing\"}\n",
              CV_CTL_LINE_MAX);
    queue (k, strdup (msg));
    k->closing = true;
  }
}

/* Send what k's replies still hold. */
static void
output (struct client *k)
{
  ssize_t n = send (k->fd, k->out + k->out_off, k->out_len - k->out_off,
                    MSG_NOSIGNAL | MSG_DONTWAIT);

  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR)
      drop (k);
    return;
  }
  k->out_off += (size_t) n;
  if (k->out_off == k->out_len) {
    free (k->out);
    k->out = NULL;
    k->out_len = k->out_off = 0;
  }
}

static void *
run (void *arg)
{
  struct cv_ctl *c = arg;
  size_t max = c->o.max_clients;
  CLEANUP_FREE struct pollfd *p = calloc (max + 2, sizeof *p);
  CLEANUP_FREE unsigned *slot = calloc (max + 2, sizeof *slot);

  if (!p || !slot) {
    cv_err ("control socket %s: out of memory; the socket does not answer",
            c->o.path);
    return NULL;
  }
  for (;;) {
    int64_t now = now_ms (), next = INT64_MAX;
    size_t n = 2;

    p[0] = (struct pollfd){ .fd = c->wake[0], .events = POLLIN };
    p[1] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
    for (unsigned i = 0; i < max; i++) {
      struct client *k = &c->cl[i];
      if (k->fd < 0)
        continue;
      if (k->closing && !k->out_len && !k->lingering) {
        shutdown (k->fd, SHUT_WR);
        k->lingering = true;
        k->deadline = now + LINGER_MS;
      }
      if (now >= k->deadline) {
        if (!k->lingering)
          refuse (k->fd, "idle: no whole request line in time; closing");
        drop (k);
        continue;
      }
      next = k->deadline < next ? k->deadline : next;
      slot[n] = i;
      p[n++] = (struct pollfd){ .fd = k->fd,
                                .events = k->out_len ? POLLOUT : POLLIN };
    }
    int timeout = next == INT64_MAX ? -1 : (int) (next - now);
    if (poll (p, n, timeout) < 0 && errno != EINTR) {
      cv_err ("control socket %s: poll: %s; the socket stops answering",
              c->o.path, strerror (errno));
      return NULL;
    }
    if (p[0].revents)
      return NULL;
    for (size_t j = 2; j < n; j++) {
      struct client *k = &c->cl[slot[j]];
      short r = p[j].revents;
      if (r & POLLOUT)
        output (k);
      else if (k->out_len && (r & (POLLHUP | POLLERR)))
        drop (k); /* gone before taking its replies */
      else if (r & (POLLIN | POLLHUP | POLLERR))
        input (c, k); /* reads the end of input or the error */
    }
    if (p[1].revents & POLLIN)
      accept_one (c);
  }
}

/* Make way for a socket at path: nothing there, or a socket nobody answers
 * on (left by a server that is gone), which is removed. */
static int
clear_stale (const char *path, const struct sockaddr_un *sa)
{
  struct stat st;

  if (lstat (path, &st) < 0)
    return 0;
  if (!S_ISSOCK (st.st_mode)) {
    cv_err ("control=%s exists and is not a socket; remove it or choose "
            "another path",
            path);
    return -EEXIST;
  }
  CLEANUP_CLOSE int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect (fd, (const struct sockaddr *) sa, sizeof *sa) == 0) {
    cv_err ("control=%s: another server already listens on this socket; "
            "stop it or choose another path",
            path);
    return -EADDRINUSE;
  }
  if (errno != ECONNREFUSED) {
    int rc = -errno;
    cv_err ("control=%s: cannot tell whether a server listens there: %s", path,
            strerror (errno));
    return rc;
  }
  cv_debug ("control=%s: removing a stale socket", path);
  if (unlink (path) < 0 && errno != ENOENT) {
    int rc = -errno;
    cv_err ("control=%s: cannot remove the stale socket: %s", path,
            strerror (errno));
    return rc;
  }
  return 0;
}

/* Bind and listen on o->path with its mode and group; the listening socket
 * in *lfd. */
static int
listen_at (struct cv_ctl *c, const struct sockaddr_un *sa)
{
  const char *path = c->o.path;
  bool group = c->o.group != (gid_t) -1;
  struct stat st;
  int rc = clear_stale (path, sa);

  if (rc < 0)
    return rc;
  c->lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->lfd < 0
      || bind (c->lfd, (const struct sockaddr *) sa, sizeof *sa) < 0) {
    rc = -errno;
    cv_err ("control=%s: cannot create the socket: %s", path, strerror (errno));
    return rc;
  }
  if (chmod (path, group ? 0660 : 0600) < 0
      || (group && chown (path, (uid_t) -1, c->o.group) < 0)
      || listen (c->lfd, BACKLOG) < 0 || stat (path, &st) < 0) {
    rc = -errno;
    cv_err ("control=%s: cannot set up the socket: %s", path, strerror (errno));
    unlink (path);
    return rc;
  }
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  return 0;
}

int
cv_ctl_start (const struct cv_ctl_opts *o, struct cv_ctl **out)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct cv_ctl *c = calloc (1, sizeof *c);
  sigset_t all, old;
  int rc;

  if (!c)
    return -ENOMEM;
  if (strlen (o->path) >= sizeof sa.sun_path) {
    cv_err ("control=%s: longer than a Unix socket path may be (%zu bytes)",
            o->path, sizeof sa.sun_path - 1);
    free (c);
    return -ENAMETOOLONG;
  }
  memcpy (sa.sun_path, o->path, strlen (o->path));
  c->o = *o;
  c->o.max_clients = o->max_clients ? o->max_clients : DEFAULT_MAX_CLIENTS;
  c->o.idle_ms = o->idle_ms ? o->idle_ms : DEFAULT_IDLE_MS;
  c->lfd = c->wake[0] = c->wake[1] = -1;
  if (!(c->cl = calloc (c->o.max_clients, sizeof *c->cl))) {
    free (c);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < c->o.max_clients; i++)
    c->cl[i].fd = -1;
  if ((rc = listen_at (c, &sa)) < 0)
    goto fail;
  if (pipe2 (c->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
    rc = -errno;
    cv_err ("control=%s: pipe: %s", o->path, strerror (errno));
    goto fail_unlink;
  }
  /* Signals are for nbdkit's threads, not this one. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  rc = -pthread_create (&c->thread, NULL, run, c);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (rc < 0) {
    cv_err ("control=%s: cannot start its thread: %s", o->path, strerror (-rc));
    goto fail_unlink;
  }
  *out = c;
  return 0;

fail_unlink:
  unlink (o->path);
fail:
  if (c->lfd >= 0)
    close (c->lfd);
  if (c->wake[0] >= 0) {
    close (c->wake[0]);
    close (c->wake[1]);
  }
  free (c->cl);
  free (c);
  return rc;
}

void
cv_ctl_stop (struct cv_ctl *c)
{
  struct stat st;

  if (!c)
    return;
  if (write (c->wake[1], "", 1) < 0)
    cv_warn ("control socket %s: cannot wake its thread: %s", c->o.path,
             strerror (errno));
  pthread_join (c->thread, NULL);
  for (unsigned i = 0; i < c->o.max_clients; i++)
    if (c->cl[i].fd >= 0)
      drop (&c->cl[i]);
  if (stat (c->o.path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
    unlink (c->o.path);
  close (c->lfd);
  close (c->wake[0]);
  close (c->wake[1]);
  free (c->cl);
  free (c);
}

/* credential_process: a profile's command that prints credentials as JSON
 * (Version 1), run as the AWS CLI runs it: split into words as Python's
 * shlex.split (POSIX mode, no comments), started without a shell (PATH
 * searched), stdin from /dev/null, stderr passed through, stdout read into
 * locked memory (at most 64 KiB), a time limit, its exit status checked.
 * No message carries the output or a word of the command but the first. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"

#define OUTPUT_MAX (64 * 1024)
#define TIMEOUT_MS 60000

extern char **environ;

/* Split cmd into words in place (a copy of cmd in *buf), as shlex.split:
 * blanks separate words; '...' keeps everything; "..." keeps everything but
 * that \ escapes \ and "; outside quotes \ escapes any character. *argv
 * (NULL-terminated) points into *buf. 0, -EINVAL (an open quote, a
 * trailing \, no word: *why says which), -ENOMEM. */
static int
split_words (const char *cmd, char **buf, char ***argv, const char **why)
{
  size_t n = strlen (cmd), words = 0;
  char *out, **v;
  const char *p = cmd;

  /* At most n / 2 + 1 words; the copy is never longer than cmd. */
  if (!(*buf = malloc (n + 1)) || !(v = calloc (n / 2 + 2, sizeof *v)))
    return -ENOMEM;
  out = *buf;
  *argv = v;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      p++;
    if (!*p)
      break;
    v[words++] = out;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      if (*p == '\'') {
        const char *e = strchr (p + 1, '\'');
        if (!e)
          goto open_quote;
        memcpy (out, p + 1, (size_t) (e - p - 1));
        out += e - p - 1;
        p = e + 1;
      } else if (*p == '"') {
        for (p++; *p != '"'; p++) {
          if (!*p)
            goto open_quote;
          if (*p == '\\' && (p[1] == '\\' || p[1] == '"'))
            p++;
          *out++ = *p;
        }
        p++;
      } else if (*p == '\\') {
        if (!p[1]) {
          *why = "it ends with a lone \\";
          return -EINVAL;
        }
        *out++ = p[1];
        p += 2;
      } else
        *out++ = *p++;
    }
    *out++ = '\0';
  }
  if (words == 0) {
    *why = "it is empty";
    return -EINVAL;
  }
  return 0;
open_quote:
  *why = "a quotation is not closed";
  return -EINVAL;
}

/* Milliseconds on the monotonic clock. */
static long long
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Read fd into out (OUTPUT_MAX bytes and a NUL) until EOF or the deadline.
 * 0, -ETIMEDOUT, -EFBIG (more than OUTPUT_MAX), -errno. */
static int
read_output (int fd, struct cv_key *out, size_t *len, long long deadline)
{
  *len = 0;
  for (;;) {
    long long left = deadline - now_ms ();
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (left <= 0)
      return -ETIMEDOUT;
    int n = poll (&pfd, 1, (int) (left > 1000000 ? 1000000 : left));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    if (n == 0)
      continue;
    if (*len == OUTPUT_MAX) { /* one byte more than allowed? */
      char c;
      ssize_t m = read (fd, &c, 1);
      cv_wipe (&c, 1);
      if (m < 0 && errno == EINTR)
        continue;
      return m == 0 ? 0 : m > 0 ? -EFBIG : -errno;
    }
    ssize_t m = read (fd, out->b + *len, OUTPUT_MAX - *len);
    if (m < 0 && errno == EINTR)
      continue;
    if (m < 0)
      return -errno;
    if (m == 0)
      return 0;
    *len += (size_t) m;
  }
}

/* Wait for pid until the deadline, then kill it. The wait status into
 * *status; -ETIMEDOUT if it had to be killed. */
static int
reap (pid_t pid, long long deadline, int *status)
{
  for (;;) {
    pid_t w = waitpid (pid, status, WNOHANG);
    if (w == pid)
      return 0;
    if (w < 0 && errno != EINTR)
      return -errno;
    if (now_ms () >= deadline) {
      kill (pid, SIGKILL);
      while (waitpid (pid, status, 0) < 0 && errno == EINTR)
        ;
      return -ETIMEDOUT;
    }
    struct timespec ts = { 0, 10 * 1000000 };
    nanosleep (&ts, NULL);
  }
}

/* Start argv with stdout into *out_fd. 0 or -errno (*what says which step). */
static int
start (char **argv, pid_t *pid, int *out_fd, const char **what)
{
  posix_spawn_file_actions_t fa;
  int p[2], r;

  if (pipe2 (p, O_CLOEXEC) < 0) {
    *what = "pipe";
    return -errno;
  }
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, p[1], 1);
  r = posix_spawnp (pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (p[1]);
  if (r != 0) {
    close (p[0]);
    *what = "start";
    return -r;
  }
  *out_fd = p[0];
  return 0;
}

int
cv_aws_process_creds (const char *cmd, const char *profile,
                      struct cv_aws_creds *out)
{
  static const struct cv_aws_json_names names
      = { "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" };
  CLEANUP_FREE char *buf = NULL, *what = NULL, *source = NULL;
  CLEANUP_FREE char **argv = NULL;
  CLEANUP_KEY struct cv_key *text = NULL;
  CLEANUP_CLOSE int fd = -1;
  const char *why = NULL;
  long limit = cv_kms_knob_ms ("CV_AWS_PROCESS_TIMEOUT_MS", TIMEOUT_MS);
  long long deadline = now_ms () + limit;
  size_t len = 0;
  int status = 0, r;
  pid_t pid;

  *out = (struct cv_aws_creds){ 0 };
  if (limit < 0)
    return -EINVAL;
  if ((r = split_words (cmd, &buf, &argv, &why)) < 0) {
    if (r == -EINVAL)
      cv_err ("credential_process of profile %s cannot be split into words "
              "as the AWS CLI splits it: %s; fix its quoting",
              profile, why);
    return r;
  }
  if (asprintf (&what, "credential_process of profile %s (%.100s)", profile,
                argv[0])
      < 0) {
    what = NULL;
    return -ENOMEM;
  }
  if ((r = cv_key_new (OUTPUT_MAX + 1, &text)) < 0)
    return r;
  if ((r = start (argv, &pid, &fd, &why)) < 0) {
    cv_err ("%s: cannot %s it: %s; check the command and PATH", what, why,
            strerrordesc_np (-r));
    return -EIO;
  }
  r = read_output (fd, text, &len, deadline);
  if (r < 0)
    kill (pid, SIGKILL);
  int rr = reap (pid, deadline, &status);
  if (r == 0)
    r = rr;
  if (r == -ETIMEDOUT) {
    cv_err ("%s gave no credentials within %ld ms and was killed", what, limit);
    return -ETIMEDOUT;
  }
  if (r == -EFBIG) {
    cv_err ("%s printed more than %d bytes; it must print one JSON document",
            what, OUTPUT_MAX);
    return -EPROTO;
  }
  if (r < 0) {
    cv_err ("%s: cannot read its output: %s", what, strerrordesc_np (-r));
    return -EIO;
  }
  if (WIFSIGNALED (status)) {
    cv_err ("%s was killed by signal %d (%s); its error output, if any, is "
            "above",
            what, WTERMSIG (status), strsignal (WTERMSIG (status)));
    return -EIO;
  }
  if (WEXITSTATUS (status) != 0) {
    cv_err ("%s exited with status %d; its error output, if any, is above",
            what, WEXITSTATUS (status));
    return -EIO;
  }

  cv_kms_json_wipe_init (); /* the secrets pass through jansson's strings */
  json_auto_t *j = json_loadb ((const char *) text->b, len, 0, NULL);
  json_t *v = json_object_get (j, "Version");
  if (!json_is_object (j)) {
    cv_err ("%s: its output is not a JSON object", what);
    return -EPROTO;
  }
  if (!json_is_integer (v) || json_integer_value (v) != 1) {
    cv_err ("%s: its output has %s Version; only Version 1 is known", what,
            v ? "another" : "no");
    return -EPROTO;
  }
  if (asprintf (&source, "credential_process of profile %s", profile) < 0) {
    source = NULL;
    return -ENOMEM;
  }
  return cv_aws_creds_from_json (j, &names, what, source, out);
}

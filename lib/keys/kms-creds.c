/* The AWS credential chain of the KMS provider: the environment, then the
 * shared credentials file. Secrets go straight into cv_keys; the file is
 * read into secure memory. Nothing here logs a secret or a key id. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define CREDS_FILE_MAX (1 << 20)

/* True if [s, e) equals the string want. */
static bool
span_is (const char *s, const char *e, const char *want)
{
  return (size_t) (e - s) == strlen (want) && memcmp (s, want, e - s) == 0;
}

int
cv_aws_creds_parse (const char *text, size_t len, const char *profile,
                    const char *path, struct cv_aws_creds *out)
{
  const char *end = text + len, *line = text;
  const char *akid = NULL, *akid_e = NULL, *sec = NULL, *sec_e = NULL;
  const char *tok = NULL, *tok_e = NULL;
  bool in_profile = false, found = false, other = false;
  char source[512];

  *out = (struct cv_aws_creds){ 0 };
  while (line < end) {
    const char *nl = memchr (line, '\n', end - line);
    const char *s = line, *e = nl ? nl : end;
    line = nl ? nl + 1 : end;
    cv_trim (&s, &e);
    if (s == e || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      const char *ns = s + 1, *ne = e;
      if (ne[-1] == ']')
        ne--;
      cv_trim (&ns, &ne);
      in_profile = span_is (ns, ne, profile);
      found |= in_profile;
      continue;
    }
    if (!in_profile)
      continue;
    const char *eq = memchr (s, '=', e - s);
    if (!eq)
      continue;
    const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
    cv_trim (&ks, &ke);
    cv_trim (&vs, &ve);
    if (span_is (ks, ke, "aws_access_key_id"))
      akid = vs, akid_e = ve;
    else if (span_is (ks, ke, "aws_secret_access_key"))
      sec = vs, sec_e = ve;
    else if (span_is (ks, ke, "aws_session_token"))
      tok = vs, tok_e = ve;
    else if (span_is (ks, ke, "role_arn") || span_is (ks, ke, "sso_session")
             || span_is (ks, ke, "sso_start_url")
             || span_is (ks, ke, "credential_process"))
      other = true;
  }
  if (!found)
    return -ENOKEY;
  bool no_id = !akid || akid == akid_e, no_secret = !sec || sec == sec_e;
  if (no_id || no_secret) {
    cv_err ("AWS shared credentials file %s: profile [%s] lacks %s%s%s%s", path,
            profile, no_id ? "aws_access_key_id" : "",
            no_id && no_secret ? " and " : "",
            no_secret ? "aws_secret_access_key" : "",
            other ? " (role, SSO and credential_process profiles are not "
                    "supported: export temporary credentials in "
                    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                    "AWS_SESSION_TOKEN)"
                  : "");
    return -EINVAL;
  }
  snprintf (source, sizeof source, "profile %s of %s", profile, path);
  return cv_aws_creds_set (out, akid, akid_e - akid, sec, sec_e - sec, tok,
                           tok ? (size_t) (tok_e - tok) : 0, source);
}

/* The path of the shared credentials file into a new string. */
static char *
creds_path (void)
{
  const char *p = getenv ("AWS_SHARED_CREDENTIALS_FILE");
  const char *home = getenv ("HOME");
  char *out = NULL;

  if (p && *p && strncmp (p, "~/", 2) != 0)
    return strdup (p);
  if (!home || !*home) {
    struct passwd *pw = getpwuid (getuid ());
    home = pw ? pw->pw_dir : NULL;
  }
  if (!home)
    return NULL;
  if (asprintf (&out, "%s/%s", home, p && *p ? p + 2 : ".aws/credentials") < 0)
    return NULL;
  return out;
}

/* Read the file at path into a new secure buffer (*buf, *len bytes).
 * -ENOENT (no file, or a character device such as /dev/null) is not logged:
 * no file is not an error, the chain goes on. */
static int
read_secure (const char *path, struct cv_key **buf, size_t *len)
{
  CLEANUP_CLOSE int fd
      = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  CLEANUP_KEY struct cv_key *k = NULL;
  struct stat st;
  size_t got = 0;
  int r;

  if (fd < 0 || fstat (fd, &st) < 0) {
    r = -errno;
    if (r != -ENOENT)
      cv_err ("cannot read AWS shared credentials file %s: %s", path,
              strerrordesc_np (-r));
    return r;
  }
  /* /dev/null is the usual way to say "no file" (the SDKs accept it). */
  if (S_ISCHR (st.st_mode))
    return -ENOENT;
  if (!S_ISREG (st.st_mode) || st.st_size > CREDS_FILE_MAX) {
    cv_err ("AWS shared credentials file %s is not a regular file of at most "
            "%d bytes",
            path, CREDS_FILE_MAX);
    return -EINVAL;
  }
  if ((r = cv_key_new ((size_t) st.st_size + 1, &k)) < 0)
    return r;
  if ((r = cv_read_all (fd, k->b, (size_t) st.st_size, &got)) < 0) {
    cv_err ("cannot read AWS shared credentials file %s: %s", path,
            strerrordesc_np (-r));
    return r;
  }
  *len = got;
  *buf = STEAL (k);
  return 0;
}

int
cv_aws_creds_load (struct cv_aws_creds *out)
{
  const char *akid = getenv ("AWS_ACCESS_KEY_ID");
  const char *sec = getenv ("AWS_SECRET_ACCESS_KEY");
  const char *tok = getenv ("AWS_SESSION_TOKEN");
  const char *profile = getenv ("AWS_PROFILE");
  CLEANUP_KEY struct cv_key *text = NULL;
  CLEANUP_FREE char *path = NULL;
  size_t len = 0;
  int r;

  *out = (struct cv_aws_creds){ 0 };
  if (akid && *akid && sec && *sec)
    return cv_aws_creds_set (out, akid, strlen (akid), sec, strlen (sec), tok,
                             tok ? strlen (tok) : 0, "the environment");
  if ((akid && *akid) != (sec && *sec))
    cv_warn ("%s is set but %s is not: AWS credentials in the environment "
             "are ignored",
             akid && *akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
             akid && *akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
  if (!profile || !*profile)
    profile = "default";
  if (!(path = creds_path ())) {
    cv_debug ("kms: no AWS credentials in the environment and no home "
              "directory for ~/.aws/credentials");
    return -ENOKEY;
  }
  r = read_secure (path, &text, &len);
  if (r == -ENOENT) {
    cv_debug ("kms: no AWS credentials: AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY are not set and %s does not exist or is "
              "not a file",
              path);
    return -ENOKEY;
  }
  if (r < 0)
    return r;
  r = cv_aws_creds_parse ((const char *) text->b, len, profile, path, out);
  if (r == -ENOKEY) {
    if (getenv ("AWS_PROFILE") && *getenv ("AWS_PROFILE")) {
      cv_err ("AWS_PROFILE is %s but %s has no profile [%s]", profile, path,
              profile);
      return -EINVAL;
    }
    cv_debug ("kms: no AWS credentials: not in the environment, and %s has "
              "no [default] profile",
              path);
  }
  return r;
}

/* The AWS shared config and credentials files, read as the AWS CLI
 * (botocore: Python's configparser, then its profile map) reads them. The
 * texts live in locked memory (they hold secret keys and session tokens)
 * and are parsed in place: NULs end names and values, and the tables below
 * point into the texts. Nothing else copies a value.
 *
 * The rules, botocore's unless said otherwise (doc/kms.md lists them):
 *  - Lines end with LF, CRLF or CR. Blank lines and lines whose first
 *    non-blank character is '#' or ';' are skipped; there are no comments
 *    after a value ("region = us-east-1 # x" is the value "us-east-1 # x").
 *  - "[HEADER]": the header is what lies between the first '[' and the last
 *    ']' of the line, untrimmed. In the config file "[default]" and
 *    "[profile NAME]" are profiles ("[profile default]" too), "[sso-session
 *    NAME]" and "[services NAME]" sections of their kinds (NAME may be
 *    quoted with ' or "); any other section is ignored. In the credentials
 *    file every "[NAME]" is the profile NAME.
 *  - "key = value" or "key: value" (the first '=' or ':'); keys are lower
 *    case (configparser lowers them), values trimmed.
 *  - A line indented deeper than the key line before it continues that
 *    key's value. After "key =" with nothing, the indented "sub = value"
 *    lines are a sub-section (services: "kms =\n  endpoint_url = ..."); their
 *    keys keep their case. A non-empty value continued on more lines is not
 *    a setting any SDK reads: it is not returned.
 *  - Where a key or a section appears twice, the later one wins (configparser
 *    refuses the whole file; we take what we can, as other SDKs do).
 *  - A malformed line (no '=' or ':', no key, no section yet, a broken
 *    header, a NUL byte) is skipped with a debug message that names the file
 * and the line, never its text; after a broken header, keys belong to no
 *    section until the next good one, so they cannot land in another
 *    profile. botocore would refuse the whole file. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/secmem.h"
#include "keys/aws.h"

#define FILE_MAX (1 << 20)

enum kind { K_PROFILE, K_SSO_SESSION, K_SERVICES, K_OTHER };
enum { F_CONFIG, F_CREDENTIALS };

struct section {
  enum kind kind;
  const char *name;
  int file;
};

struct entry {
  size_t section;
  const char *sub;   /* a sub-section's key ("kms"), or NULL */
  const char *key;   /* lower case, except in sub-sections */
  const char *value; /* NULL: continued on more lines */
};

struct cv_aws_config {
  struct cv_key *text[2]; /* each file's text and a NUL, parsed in place */
  char *path[2];          /* "" when none */
  char *where[2];         /* "the config file PATH" */
  struct section *sect;
  size_t nsect, csect;
  struct entry *ent;
  size_t nent, cent;
};

/* Python's str.isspace for the bytes of these files. */
static bool
blank (char c)
{
  return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'
         || c == '\n';
}

/* Append a section to c's table (grown by doubling). 0 or -ENOMEM. */
static int
add_section (struct cv_aws_config *c, enum kind kind, const char *name,
             int file)
{
  if (c->nsect == c->csect) {
    size_t n = c->csect ? c->csect * 2 : 16;
    struct section *p = realloc (c->sect, n * sizeof *p);
    if (!p)
      return -ENOMEM;
    c->sect = p;
    c->csect = n;
  }
  c->sect[c->nsect++] = (struct section){ kind, name, file };
  return 0;
}

/* Append a key and value (pointers into the locked text) of section to c's
 * table. 0 or -ENOMEM. */
static int
add_entry (struct cv_aws_config *c, size_t section, const char *sub,
           const char *key, const char *value)
{
  if (c->nent == c->cent) {
    size_t n = c->cent ? c->cent * 2 : 64;
    struct entry *p = realloc (c->ent, n * sizeof *p);
    if (!p)
      return -ENOMEM;
    c->ent = p;
    c->cent = n;
  }
  c->ent[c->nent++] = (struct entry){ section, sub, key, value };
  return 0;
}

/* In the config file, a header "WORD NAME" (NAME optionally quoted): the
 * NUL-terminated NAME, or NULL if h is not of that form. */
static const char *
header_name (char *h, const char *word)
{
  size_t n = strlen (word);
  char *s, *e;

  if (strncmp (h, word, n) != 0 || !blank (h[n]))
    return NULL;
  s = h + n;
  while (blank (*s))
    s++;
  if (*s == '"' || *s == '\'') {
    e = strchr (s + 1, *s);
    if (!e || e == s + 1)
      return NULL;
    s++;
  } else
    for (e = s; *e && !blank (*e); e++)
      ;
  for (const char *t = *e ? e + 1 : e; *t; t++)
    if (!blank (*t))
      return NULL;
  if (e == s)
    return NULL;
  *e = '\0';
  return s;
}

/* Classify a header of file and add its section. *cur becomes the section's
 * index, or -2 for one that holds nothing we read. */
static int
section_header (struct cv_aws_config *c, int file, char *h, long *cur)
{
  enum kind kind = K_PROFILE;
  const char *name = h;

  if (file == F_CONFIG && strcmp (h, "default") != 0) {
    if ((name = header_name (h, "profile")))
      kind = K_PROFILE;
    else if ((name = header_name (h, "sso-session")))
      kind = K_SSO_SESSION;
    else if ((name = header_name (h, "services")))
      kind = K_SERVICES;
    else
      kind = K_OTHER;
  }
  if (kind == K_OTHER) {
    *cur = -2;
    return 0;
  }
  *cur = (long) c->nsect;
  return add_section (c, kind, name, file);
}

/* Say (debug) that a line of a file was skipped, and why; never its text. */
static void
malformed (const struct cv_aws_config *c, int file, unsigned line,
           const char *what)
{
  cv_debug ("aws: %s line %u: %s; line skipped", c->where[file], line, what);
}

/* Parse the text of file (len bytes and a NUL, writable) in place. */
static int
parse_text (struct cv_aws_config *c, int file, char *text, size_t len)
{
  char *p = text, *end = text + len;
  long cur = -1;      /* current section; -1: none (or a broken header), -2: one
                         we do not read */
  long opt = -1;      /* entry of the last key line, -1: none */
  bool multi = false; /* its value went on over more lines */
  size_t opt_indent = 0;
  unsigned lineno = 0;
  int r;

  while (p < end) {
    char *nl = p;
    while (nl < end && *nl != '\n' && *nl != '\r')
      nl++;
    char *line = p, *next = nl;
    if (next < end && *next == '\r' && next + 1 < end && next[1] == '\n')
      next++;
    p = next < end ? next + 1 : end;
    *nl = '\0';
    lineno++;

    if (memchr (line, '\0', (size_t) (nl - line))) {
      malformed (c, file, lineno, "a NUL byte");
      continue;
    }
    char *s = line;
    while (s < nl && blank (*s))
      s++;
    if (s == nl || *s == '#' || *s == ';')
      continue; /* a blank line or a comment does not end a value */
    size_t indent = (size_t) (s - line);

    if (opt >= 0 && indent > opt_indent) { /* a continuation line */
      struct entry *o = &c->ent[opt];
      if (multi)
        continue;
      if (o->value && *o->value) {
        malformed (c, file, lineno,
                   "a value continued on another line is not a setting");
        o->value = NULL;
        multi = true;
        continue;
      }
      char *eq = strchr (s, '=');
      if (!eq) {
        malformed (c, file, lineno, "no '=' in a sub-section line");
        continue;
      }
      *eq = '\0';
      const char *key = cv_trim_nul (s, eq);
      const char *value = cv_trim_nul (eq + 1, nl);
      if (!*key) {
        malformed (c, file, lineno, "no key before '='");
        continue;
      }
      o->value = NULL; /* "kms =" has sub-settings, not a value */
      if ((r = add_entry (c, o->section, o->key, key, value)) < 0)
        return r;
      continue;
    }
    opt = -1;

    if (*s == '[') {
      char *close = nl;
      while (close > s + 1 && close[-1] != ']')
        close--;
      if (close <= s + 2) { /* no ']', or "[]" */
        malformed (c, file, lineno, "a section header without a name");
        cur = -1;
        continue;
      }
      close[-1] = '\0';
      if ((r = section_header (c, file, s + 1, &cur)) < 0)
        return r;
      continue;
    }

    char *d = s + strcspn (s, "=:");
    if (!*d) {
      malformed (c, file, lineno, "not \"key = value\"");
      continue;
    }
    *d = '\0';
    char *key = cv_trim_nul (s, d);
    const char *value = cv_trim_nul (d + 1, nl);
    if (!*key) {
      malformed (c, file, lineno, "no key before '=' or ':'");
      continue;
    }
    if (cur == -1) {
      malformed (c, file, lineno, "a key outside any section");
      continue;
    }
    if (cur < 0)
      continue;
    for (char *k = key; *k; k++)
      *k = (char) tolower ((unsigned char) *k);
    if ((r = add_entry (c, (size_t) cur, NULL, key, value)) < 0)
      return r;
    opt = (long) c->nent - 1;
    opt_indent = indent;
    multi = false;
  }
  return 0;
}

void
cv_aws_config_free (struct cv_aws_config *c)
{
  if (!c)
    return;
  for (int f = 0; f < 2; f++) {
    cv_key_free (c->text[f]);
    free (c->path[f]);
    free (c->where[f]);
  }
  free (c->sect);
  free (c->ent);
  free (c);
}

/* For CLEANUP_CONFIG. */
static void
config_freep (struct cv_aws_config **c)
{
  cv_aws_config_free (*c);
}
#define CLEANUP_CONFIG __attribute__ ((cleanup (config_freep)))

/* A new, empty config with the paths of its files (NULL: none). */
static int
config_new (const char *config_path, const char *credentials_path,
            struct cv_aws_config **out)
{
  struct cv_aws_config *c = calloc (1, sizeof *c);
  const char *paths[2] = { config_path, credentials_path };
  static const char *const names[2] = { "config file", "credentials file" };

  if (!c)
    return -ENOMEM;
  for (int f = 0; f < 2; f++) {
    const char *p = paths[f] ? paths[f] : "";
    if (!(c->path[f] = strdup (p))
        || asprintf (&c->where[f], "the AWS %s%s%s", names[f], *p ? " " : "", p)
               < 0) {
      c->where[f] = NULL;
      cv_aws_config_free (c);
      return -ENOMEM;
    }
  }
  *out = c;
  return 0;
}

int
cv_aws_config_parse (const char *config, size_t config_len,
                     const char *config_path, const char *credentials,
                     size_t credentials_len, const char *credentials_path,
                     struct cv_aws_config **out)
{
  CLEANUP_CONFIG struct cv_aws_config *c = NULL;
  const char *texts[2] = { config, credentials };
  size_t lens[2] = { config_len, credentials_len };
  int r;

  if ((r = config_new (config_path, credentials_path, &c)) < 0)
    return r;
  for (int f = 0; f < 2; f++) {
    if (!texts[f])
      continue;
    if ((r = cv_key_new (lens[f] + 1, &c->text[f])) < 0)
      return r;
    memcpy (c->text[f]->b, texts[f], lens[f]);
    if ((r = parse_text (c, f, (char *) c->text[f]->b, lens[f])) < 0)
      return r;
  }
  *out = STEAL (c);
  return 0;
}

/* The path in environment variable env (a leading "~/" is the home
 * directory), else ~/DEFAULT, into a new string; NULL with no home. */
static char *
file_path (const char *env, const char *def)
{
  const char *p = getenv (env);
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
  if (asprintf (&out, "%s/%s", home, p && *p ? p + 2 : def) < 0)
    return NULL;
  return out;
}

int
cv_aws_read_file (const char *path, const char *what, size_t max,
                  struct cv_key **buf, size_t *len)
{
  CLEANUP_CLOSE int fd
      = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  CLEANUP_KEY struct cv_key *k = NULL;
  struct stat st;
  size_t got = 0;
  int r;

  *buf = NULL;
  *len = 0;
  if (fd < 0 && errno == ENOENT)
    return -ENOENT;
  if (fd < 0 || fstat (fd, &st) < 0) {
    cv_err ("cannot read %s %s: %s", what, path, strerrordesc_np (errno));
    return -EINVAL;
  }
  if (S_ISCHR (st.st_mode))
    st.st_size = 0; /* /dev/null: the usual way to say "no file" */
  else if (!S_ISREG (st.st_mode) || (size_t) st.st_size > max) {
    cv_err ("%s %s is not a regular file of at most %zu bytes", what, path,
            max);
    return -EINVAL;
  }
  if ((r = cv_key_new ((size_t) st.st_size + 1, &k)) < 0)
    return r;
  if ((r = cv_read_all (fd, k->b, (size_t) st.st_size, &got)) < 0) {
    cv_err ("cannot read %s %s: %s", what, path, strerrordesc_np (-r));
    return -EINVAL;
  }
  k->b[got] = '\0';
  *len = got;
  *buf = STEAL (k);
  return 0;
}

int
cv_aws_config_load (struct cv_aws_config **out)
{
  CLEANUP_CONFIG struct cv_aws_config *c = NULL;
  CLEANUP_FREE char *cp = file_path ("AWS_CONFIG_FILE", ".aws/config");
  CLEANUP_FREE char *kp
      = file_path ("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  static const char *const what[2]
      = { "AWS config file", "AWS shared credentials file" };
  const char *paths[2] = { cp, kp };
  int r;

  if ((r = config_new (cp, kp, &c)) < 0)
    return r;
  for (int f = 0; f < 2; f++) {
    size_t len;
    if (!paths[f])
      continue;
    r = cv_aws_read_file (paths[f], what[f], FILE_MAX, &c->text[f], &len);
    if (r == -ENOENT)
      continue; /* no file is an empty one */
    if (r < 0)
      return r;
    if (c->text[f] && (r = parse_text (c, f, (char *) c->text[f]->b, len)) < 0)
      return r;
  }
  *out = STEAL (c);
  return 0;
}

const char *
cv_aws_config_path (const struct cv_aws_config *c)
{
  return c->path[F_CONFIG];
}

const char *
cv_aws_credentials_path (const struct cv_aws_config *c)
{
  return c->path[F_CREDENTIALS];
}

/* The last entry sub/key (sub NULL: a plain key) in a section of kind and
 * name in file, or NULL. */
static const struct entry *
find (const struct cv_aws_config *c, int file, enum kind kind, const char *name,
      const char *sub, const char *key)
{
  for (size_t i = c->nent; i-- > 0;) {
    const struct entry *e = &c->ent[i];
    const struct section *s = &c->sect[e->section];
    if (s->file == file && s->kind == kind && strcmp (s->name, name) == 0
        && (sub ? e->sub && strcmp (e->sub, sub) == 0 : !e->sub)
        && strcmp (e->key, key) == 0)
      return e;
  }
  return NULL;
}

bool
cv_aws_profile_exists (const struct cv_aws_config *c, const char *profile)
{
  for (size_t i = 0; i < c->nsect; i++)
    if (c->sect[i].kind == K_PROFILE && strcmp (c->sect[i].name, profile) == 0)
      return true;
  return false;
}

/* The entry of key in profile, the credentials file first; *file says
 * which file it is in. */
static const struct entry *
profile_entry (const struct cv_aws_config *c, const char *profile,
               const char *key, int *file)
{
  const struct entry *e;

  *file = F_CREDENTIALS;
  if ((e = find (c, F_CREDENTIALS, K_PROFILE, profile, NULL, key)))
    return e;
  *file = F_CONFIG;
  return find (c, F_CONFIG, K_PROFILE, profile, NULL, key);
}

const char *
cv_aws_profile_get (const struct cv_aws_config *c, const char *profile,
                    const char *key)
{
  int file;
  const struct entry *e = profile_entry (c, profile, key, &file);

  return e ? e->value : NULL;
}

const char *
cv_aws_profile_where (const struct cv_aws_config *c, const char *profile,
                      const char *key)
{
  int file;

  return profile_entry (c, profile, key, &file) ? c->where[file] : NULL;
}

/* The kind of section named kind ("sso-session", "services"), or K_OTHER. */
static enum kind
kind_of (const char *kind)
{
  if (strcmp (kind, "sso-session") == 0)
    return K_SSO_SESSION;
  if (strcmp (kind, "services") == 0)
    return K_SERVICES;
  return K_OTHER;
}

const char *
cv_aws_section_get (const struct cv_aws_config *c, const char *kind,
                    const char *name, const char *key)
{
  const struct entry *e = find (c, F_CONFIG, kind_of (kind), name, NULL, key);

  return e ? e->value : NULL;
}

const char *
cv_aws_subsection_get (const struct cv_aws_config *c, const char *kind,
                       const char *name, const char *sub, const char *key)
{
  const struct entry *e = find (c, F_CONFIG, kind_of (kind), name, sub, key);

  return e ? e->value : NULL;
}

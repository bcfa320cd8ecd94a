/* cryptvol-keymgr grant, grants, revoke-grant, retire-grant: KMS grants on
 * the keys of a volume's kms wraps, each limited to the volume's encryption
 * context (lib/keys/kms-grants.h). They read only the header: no key of the
 * volume is needed, only AWS credentials allowed to manage grants on its
 * keys (doc/kms.md, section Grants). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "format/header.h"
#include "keymgr.h"
#include "keys/kms-grants.h"

#define WRAPS_MAX 64

/* The options of the grant commands. */
struct grant_opts {
  const char *grantee, *retiring; /* grant */
  const char *token_file;         /* grant: where to write the token */
  char *token;                    /* retire-grant --grant-token */
  int64_t wrap;                   /* --wrap ID, or -1 */
  bool reencrypt, all;
};

static int
grant_opt (int c, const char *arg, void *ctx)
{
  struct grant_opts *g = ctx;
  char *end;

  switch (c) {
  case 'g':
    g->grantee = arg;
    return 0;
  case 'r':
    g->retiring = arg;
    return 0;
  case 'e':
    g->reencrypt = true;
    return 0;
  case 'f':
    g->token_file = arg;
    return 0;
  case 'a':
    g->all = true;
    return 0;
  case 't':
    free (g->token);
    g->token = NULL;
    return read_token_arg ("--grant-token", arg, &g->token) < 0 ? -1 : 0;
  case 'w':
    g->wrap = strtoll (arg, &end, 10);
    if (*end || end == arg || g->wrap < 0) {
      cv_err ("--wrap: '%s' is not a wrap id", arg);
      return -1;
    }
    return 0;
  }
  return -1;
}

#define WRAP_LONGOPT                                                           \
  {                                                                            \
    "wrap", required_argument, 0, 'w'                                          \
  }
#define KMS_USAGE                                                              \
  "         [--kms-region R] [--kms-endpoint URL] [--ca-bundle FILE]\n"

/* A volume's header, read only, and the kms wraps a command acts on. */
struct grant_vol {
  const char *path;
  struct cv_dev *d;
  struct cv_header *h;
  const char *uuid;
  size_t n;
  int64_t id[WRAPS_MAX];
  const char *key[WRAPS_MAX]; /* each wrap's key ARN (in h) */
};

static void
grant_vol_close (struct grant_vol *v)
{
  cv_hdr_free (v->h);
  cv_dev_close (v->d);
}

/* Open path's header (or header) and choose its kms wraps: wrap (>= 0)
 * alone, else every kms wrap whose key no wrap before it uses. Returns 0
 * or an exit code (reported). */
static int
grant_vol_open (struct grant_vol *v, const char *path, const char *header,
                int64_t wrap)
{
  struct cv_wrap_info w;
  unsigned valid;
  int rc;

  *v = (struct grant_vol){ .path = path };
  if ((rc = open_header (path, header, &v->d, &v->h, &valid)) != 0)
    return rc;
  v->uuid = cv_hdr_uuid (v->h);
  audit_volume (path, v->uuid);
  if (wrap >= 0 && cv_hdr_wrap_find (v->h, wrap, &w) < 0) {
    cv_err ("%s has no wrap %lld (see list-wraps)", path, (long long) wrap);
    return EXIT_USAGE;
  }
  for (size_t i = 0; cv_hdr_wrap_at (v->h, i, &w) == 0; i++) {
    const char *key = cv_hdr_wrap_member (v->h, w.id, "key_arn");
    bool kms = w.type && strcmp (w.type, "kms") == 0 && key;
    if (wrap >= 0 && w.id == wrap && !kms) {
      cv_err ("wrap %lld of %s is not a kms wrap with a key ARN (%s): grants "
              "are made on a KMS key",
              (long long) wrap, path,
              !w.type                       ? "it has no type"
              : strcmp (w.type, "kms") != 0 ? w.type
                                            : "it has no key_arn: the wrap is "
                                              "malformed");
      return EXIT_USAGE;
    }
    if (!kms || (wrap >= 0 && w.id != wrap))
      continue;
    bool seen = false;
    for (size_t j = 0; j < v->n; j++)
      seen |= strcmp (v->key[j], key) == 0;
    if (!seen && v->n < WRAPS_MAX) {
      v->id[v->n] = w.id;
      v->key[v->n++] = key;
    }
  }
  if (v->n == 0) {
    cv_err ("%s has no kms wrap: grants are made on the KMS key of a kms "
            "wrap (add one with add-wrap --wrap kms:KEY)",
            path);
    return EXIT_USAGE;
  }
  return 0;
}

/* "VOLUME wrap N", what a call is for in messages. */
static const char *
label (const struct grant_vol *v, size_t i, char *buf, size_t len)
{
  snprintf (buf, len, "%.200s wrap %lld", v->path, (long long) v->id[i]);
  return buf;
}

/* The exit code of a grant command's failure. */
static int
grant_exit (int rc)
{
  return rc == -ENOENT || rc == -EINVAL ? EXIT_USAGE : exit_code (rc);
}

/* Write token to path, mode 0600 (also when the file exists). Returns 0 or
 * -errno (reported). */
static int
write_token (const char *path, const char *token)
{
  CLEANUP_CLOSE int fd = open (
      path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  int rc;

  if (fd < 0 || fchmod (fd, 0600) < 0) {
    rc = -errno;
    cv_err ("cannot write the grant token to %s: %s", path, strerror (-rc));
    return rc;
  }
  if ((rc = cv_write_all (fd, token, strlen (token))) < 0
      || (rc = cv_write_all (fd, "\n", 1)) < 0) {
    cv_err ("cannot write the grant token to %s: %s", path, strerror (-rc));
    return rc;
  }
  return 0;
}

int
cmd_grant (int argc, char **argv)
{
  static const struct option own[] = {
    { "grantee", required_argument, 0, 'g' },
    { "retiring-principal", required_argument, 0, 'r' },
    { "reencrypt", no_argument, 0, 'e' },
    { "token-file", required_argument, 0, 'f' },
    WRAP_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr grant VOLUME --grantee ARN [--wrap ID] "
        "[--reencrypt]\n"
        "         [--retiring-principal ARN] [--token-file FILE] [--header "
        "FILE] [--json]\n" KMS_USAGE
        "Creates a KMS grant on the key of each kms wrap (or wrap ID) for the "
        "principal\nARN: Decrypt (and ReEncryptFrom with --reencrypt) with "
        "this volume's\nencryption context only. Prints each grant's id and "
        "token.\n";
  struct grant_opts g = { .wrap = -1 };
  struct common_opts co;
  struct grant_vol v;
  int rc = parse_args (argc, argv, own, grant_opt, &g, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (!g.grantee) {
    cv_err ("grant needs --grantee ARN (the principal, e.g. a storage "
            "host's role)");
    return EXIT_USAGE;
  }
  if (cv_kms_principal_check ("--grantee", g.grantee) < 0
      || (g.retiring
          && cv_kms_principal_check ("--retiring-principal", g.retiring) < 0))
    return EXIT_USAGE;
  if ((rc = grant_vol_open (&v, argv[optind], co.header, g.wrap)) != 0) {
    grant_vol_close (&v);
    return rc;
  }
  if (g.token_file && v.n > 1) {
    cv_err ("%s has kms wraps on %zu keys, and --token-file holds one "
            "token: choose the wrap with --wrap ID",
            v.path, v.n);
    grant_vol_close (&v);
    return EXIT_USAGE;
  }
  struct cv_kms_grant_spec spec = { .grantee = g.grantee,
                                    .retiring = g.retiring,
                                    .reencrypt = g.reencrypt };
  const char *ops = g.reencrypt ? "Decrypt, ReEncryptFrom" : "Decrypt";
  json_t *made = json_array ();
  char buf[300];
  for (size_t i = 0; rc == 0 && i < v.n; i++) {
    CLEANUP_FREE char *id = NULL, *token = NULL;
    rc = cv_kms_grant_create (v.key[i], label (&v, i, buf, sizeof buf), v.uuid,
                              &co.creds, &spec, &id, &token);
    if (rc == 0 && g.token_file && (rc = write_token (g.token_file, token)) < 0)
      cv_err ("grant %s on key %s was made, but its token is lost: revoke it "
              "(revoke-grant %s %s) and grant again",
              id, v.key[i], v.path, id);
    if (rc < 0)
      break;
    json_t *j = json_pack ("{s:I, s:s, s:s}", "wrap", (json_int_t) v.id[i],
                           "key_arn", v.key[i], "grant_id", id);
    json_object_set_new (j, g.token_file ? "token_file" : "grant_token",
                         json_string (g.token_file ? g.token_file : token));
    json_array_append_new (made, j);
    if (co.json)
      continue;
    printf ("%s: wrap %lld (key %s): grant %s for %s (%s on volume %s)\n",
            v.path, (long long) v.id[i], v.key[i], id, g.grantee, ops, v.uuid);
    if (g.token_file)
      printf ("  grant token written to %s (mode 0600)\n", g.token_file);
    else
      printf ("  grant token: %s\n", token);
  }
  if (rc < 0 && json_array_size (made) > 0)
    cv_err ("the grants made before the failure stay (revoke them with "
            "revoke-grant, or run grant again with --wrap for the rest)");
  if (co.json && json_array_size (made) > 0)
    print_json (json_pack ("{s:s, s:s, s:s, s:O}", "volume", v.path, "uuid",
                           v.uuid, "grantee", g.grantee, "grants", made));
  json_decref (made);
  grant_vol_close (&v);
  common_free (&co);
  return grant_exit (rc);
}

/* The operations of grant g, comma-separated, into buf. */
static const char *
grant_ops (const json_t *g, char *buf, size_t len)
{
  const json_t *op;
  size_t i;

  buf[0] = '\0';
  json_array_foreach (json_object_get (g, "Operations"), i, op)
  {
    size_t used = strlen (buf);
    snprintf (buf + used, len - used, "%s%s", i ? "," : "",
              json_string_value (op) ? json_string_value (op) : "?");
  }
  return buf;
}

/* s from KMS for a terminal, or "-". */
static const char *
shown (const char *s)
{
  return s && *s ? s : "-";
}

int
cmd_grants (int argc, char **argv)
{
  static const struct option own[] = {
    { "all", no_argument, 0, 'a' },
    WRAP_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr grants VOLUME [--wrap ID] [--all] [--header "
        "FILE] [--json]\n" KMS_USAGE
        "Lists the KMS grants on the keys of the volume's kms wraps whose "
        "constraints\nname this volume (--all: every grant on those "
        "keys).\n";
  struct grant_opts g = { .wrap = -1 };
  struct common_opts co;
  struct grant_vol v;
  int rc = parse_args (argc, argv, own, grant_opt, &g, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if ((rc = grant_vol_open (&v, argv[optind], co.header, g.wrap)) != 0) {
    grant_vol_close (&v);
    return rc;
  }
  json_auto_t *all = json_array ();
  char buf[300];
  for (size_t i = 0; rc == 0 && i < v.n; i++) {
    json_auto_t *list = NULL;
    json_t *e;
    size_t k;
    rc = cv_kms_grants_list (v.key[i], label (&v, i, buf, sizeof buf),
                             g.all ? NULL : v.uuid, &co.creds, &list);
    json_array_foreach (list, k, e)
    {
      json_object_set_new (e, "wrap", json_integer (v.id[i]));
      json_object_set_new (e, "key_arn", json_string (v.key[i]));
      json_array_append (all, e);
    }
  }
  if (rc == 0 && co.json)
    print_json (all);
  else if (rc == 0 && json_array_size (all) == 0)
    printf ("%s: no grants on %s for volume %s\n", v.path,
            v.n > 1 ? "its keys" : v.key[0], v.uuid);
  else if (rc == 0) {
    json_t *e;
    size_t k;
    printf ("%-4s %-64s %-22s %-40s %s\n", "WRAP", "GRANT ID", "OPERATIONS",
            g.all ? "VOLUME" : "NAME", "GRANTEE");
    json_array_foreach (all, k, e)
    {
      printf (
          "%-4lld %-64s %-22s %-40s %s\n",
          (long long) json_integer_value (json_object_get (e, "wrap")),
          shown (json_string_value (json_object_get (e, "GrantId"))),
          grant_ops (e, buf, sizeof buf),
          shown (g.all ? cv_kms_grant_volume (e)
                       : json_string_value (json_object_get (e, "Name"))),
          shown (json_string_value (json_object_get (e, "GranteePrincipal"))));
    }
  }
  grant_vol_close (&v);
  common_free (&co);
  return grant_exit (rc);
}

/* Find grant id among the grants on v's chosen keys: *at gets the index of
 * the wrap whose key has it, *grantee its grantee. A grant of another
 * volume is refused. Returns 0, -ENOENT (no such grant), -EPERM (another
 * volume's) or the listing's -errno; all reported. */
static int
find_grant (const struct grant_vol *v, const struct cv_creds *c, const char *id,
            size_t *at, char **grantee)
{
  char buf[300];
  int rc;

  if ((rc = cv_kms_grant_id_check (id)) < 0)
    return rc;
  for (size_t i = 0; i < v->n; i++) {
    json_auto_t *list = NULL;
    json_t *e;
    size_t k;
    if ((rc = cv_kms_grants_list (v->key[i], label (v, i, buf, sizeof buf),
                                  NULL, c, &list))
        < 0)
      return rc;
    json_array_foreach (list, k, e)
    {
      if (strcmp (json_string_value (json_object_get (e, "GrantId")), id) != 0)
        continue;
      const char *vol = cv_kms_grant_volume (e);
      if (!vol || strcmp (vol, v->uuid) != 0) {
        cv_err ("grant %s on key %s is not one of %s's grants: its "
                "constraints name %s%s; end it through that volume, or with "
                "aws kms revoke-grant",
                id, v->key[i], v->path, vol ? "volume " : "no volume",
                vol ? vol : "");
        return -EPERM;
      }
      *at = i;
      *grantee = strdup (
          shown (json_string_value (json_object_get (e, "GranteePrincipal"))));
      return *grantee ? 0 : -ENOMEM;
    }
  }
  cv_err ("%s: no grant %s on %s%s; list the volume's grants with "
          "cryptvol-keymgr grants %s",
          v->path, id, v->n > 1 ? "its keys, e.g. " : "the key ", v->key[0],
          v->path);
  return -ENOENT;
}

int
cmd_revoke_grant (int argc, char **argv)
{
  static const struct option own[] = {
    WRAP_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr revoke-grant VOLUME GRANT_ID [--wrap ID] "
        "[--header FILE]\n" KMS_USAGE
        "Revokes one of the volume's grants (as listed by grants): its "
        "grantee can no\nlonger unlock the volume with it; a server it runs "
        "with a key watch revokes.\n";
  struct grant_opts g = { .wrap = -1 };
  struct common_opts co;
  struct grant_vol v;
  CLEANUP_FREE char *grantee = NULL;
  size_t at = 0;
  char buf[300];
  int rc = parse_args (argc, argv, own, grant_opt, &g, &co, usage, 2);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *id = argv[optind + 1];
  if (cv_kms_grant_id_check (id) < 0)
    return EXIT_USAGE;
  if ((rc = grant_vol_open (&v, argv[optind], co.header, g.wrap)) != 0) {
    grant_vol_close (&v);
    return rc;
  }
  if ((rc = find_grant (&v, &co.creds, id, &at, &grantee)) == 0
      && (rc = cv_kms_grant_revoke (v.key[at], label (&v, at, buf, sizeof buf),
                                    &co.creds, id))
             == 0)
    report (co.json,
            json_pack ("{s:s, s:s, s:I, s:s, s:s, s:s}", "volume", v.path,
                       "uuid", v.uuid, "wrap", (json_int_t) v.id[at], "key_arn",
                       v.key[at], "revoked", id, "grantee", grantee),
            "%s: revoked grant %s on key %s: %s can no longer use it for "
            "volume %s\n",
            v.path, id, v.key[at], grantee, v.uuid);
  grant_vol_close (&v);
  common_free (&co);
  return rc == -EPERM ? EXIT_USAGE : grant_exit (rc);
}

/* retire-grant once its options are parsed: the grant id (or NULL) and
 * g->token (or NULL), exactly one of them. Returns an exit code. */
static int
retire (const char *path, const char *id, const struct grant_opts *g,
        const struct common_opts *co)
{
  CLEANUP_FREE char *grantee = NULL;
  struct grant_vol v;
  size_t at = 0;
  char buf[300];
  int rc;

  if (!id == !g->token) {
    cv_err ("retire-grant needs the grant's token (--grant-token +FILE) or "
            "its id (GRANT_ID), not both");
    return EXIT_USAGE;
  }
  if (id && cv_kms_grant_id_check (id) < 0)
    return EXIT_USAGE;
  if ((rc = grant_vol_open (&v, path, co->header, g->wrap)) != 0) {
    grant_vol_close (&v);
    return rc;
  }
  /* By token, the call goes to the region of the (first) chosen key. */
  if (id)
    rc = find_grant (&v, &co->creds, id, &at, &grantee);
  if (rc == 0
      && (rc = cv_kms_grant_retire (v.key[at], label (&v, at, buf, sizeof buf),
                                    &co->creds, id, g->token))
             == 0)
    report (co->json,
            json_pack ("{s:s, s:s, s:s, s:s?, s:s?}", "volume", v.path,
                       "key_arn", v.key[at], "by", id ? "id" : "token",
                       "retired", id, "grantee", grantee),
            "%s: retired grant %s on key %s\n", v.path,
            id ? id : "(given by its token)", v.key[at]);
  grant_vol_close (&v);
  return rc == -EPERM ? EXIT_USAGE : grant_exit (rc);
}

int
cmd_retire_grant (int argc, char **argv)
{
  static const struct option own[] = {
    { "grant-token", required_argument, 0, 't' },
    WRAP_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr retire-grant VOLUME (--grant-token +FILE | "
        "GRANT_ID) [--wrap ID]\n"
        "         [--header FILE] [--json]\n" KMS_USAGE
        "Retires one of the volume's grants, by its token (as grant wrote "
        "it) or its id,\nwhen it is no longer needed (the grant's retiring "
        "principal may retire it).\n";
  struct grant_opts g = { .wrap = -1 };
  struct common_opts co;
  int rc = parse_args (argc, argv, own, grant_opt, &g, &co, usage, -2);

  if (rc == 0)
    rc = retire (argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL, &g,
                 &co);
  else if (rc < 0)
    rc = EXIT_OK;
  free (g.token);
  common_free (&co);
  return rc;
}

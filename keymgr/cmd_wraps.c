/* cryptvol-keymgr add-wrap, remove-wrap, list-wraps: the wraps of a volume.
 * All work while the volume is served: the header write lock serialises
 * them with each other and with the plugin. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"

/* Options for a new wrap: the spec and a new passphrase's sources. */
struct new_wrap_opts {
  const char *spec;
  const char *pass_file;
  int pass_fd;
  int64_t id; /* remove-wrap, rewrap */
};

static int
new_wrap_opt (int c, const char *arg, void *ctx)
{
  struct new_wrap_opts *n = ctx;
  char *end;

  switch (c) {
  case 'w':
  case 't':
    n->spec = arg;
    return 0;
  case 'P':
    n->pass_file = arg;
    return 0;
  case 'F':
    n->pass_fd = (int) strtol (arg, &end, 10);
    if (*end || n->pass_fd < 0) {
      cv_err ("--new-passphrase-fd: '%s' is not a file descriptor", arg);
      return -1;
    }
    return 0;
  case 'i':
    n->id = strtoll (arg, &end, 10);
    if (*end || end == arg || n->id < 0) {
      cv_err ("--id: '%s' is not a wrap id", arg);
      return -1;
    }
    return 0;
  }
  return -1;
}

#define NEW_WRAP_LONGOPTS                                                      \
  { "new-passphrase-file", required_argument, 0, 'P' },                        \
  {                                                                            \
    "new-passphrase-fd", required_argument, 0, 'F'                             \
  }

/* Credentials to unlock h: ask for a passphrase on the terminal only when the
 * volume has a passphrase wrap and no other key was given. */
int
unlock_creds (struct common_opts *co, const struct cv_header *h)
{
  bool ask = !co->keyfile && !co->pin_file && co->pin_fd < 0
             && has_wrap_type (h, "passphrase");
  return common_creds (co, ask && isatty (0), false);
}

/* Credentials for a new wrap of type spec: the unlock credentials, with a new
 * passphrase (asked twice on a terminal) for a passphrase wrap. */
static int
new_wrap_creds (const struct common_opts *co, const struct new_wrap_opts *n,
                struct cv_creds *nc)
{
  *nc = co->creds;
  nc->passphrase = NULL;
  if (strncmp (n->spec, "file:", 5) == 0)
    nc->keyfile = n->spec + 5; /* the new wrap's own key file */
  if (strcmp (n->spec, "passphrase") != 0)
    return 0;
  int rc = read_passphrase (n->pass_file, n->pass_fd, true, true,
                            "New passphrase", &nc->passphrase);
  if (rc == 0 && !nc->passphrase) {
    cv_err ("a passphrase wrap needs --new-passphrase-file, "
            "--new-passphrase-fd or a terminal");
    rc = -ENOKEY;
  }
  return rc;
}

/* Another wrap with the same key as spec (same type and reference), or NULL.
 * Passphrase wraps never match: two may exist. */
static json_t *
same_key_wrap (const struct cv_header *h, const char *spec, int64_t except)
{
  const struct cv_provider *p;
  const char *ref;
  size_t i;
  json_t *w;

  if (cv_wrap_spec_parse (spec, &p, &ref) < 0 || !ref)
    return NULL;
  json_array_foreach (h->wraps, i, w)
  {
    const char *t = json_string_value (json_object_get (w, "type"));
    const char *r = json_string_value (json_object_get (w, "ref"));
    if (json_integer_value (json_object_get (w, "id")) != except && t && r
        && strcmp (t, p->type) == 0 && strcmp (r, ref) == 0)
      return w;
  }
  return NULL;
}

int
cmd_add_wrap (int argc, char **argv)
{
  static const struct option own[] = {
    { "wrap", required_argument, 0, 'w' },
    NEW_WRAP_LONGOPTS,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr add-wrap VOLUME --wrap SPEC [--header FILE]\n"
        "         [--keyfile FILE | --passphrase-file FILE | ...]  (to "
        "unlock)\n"
        "         [--new-passphrase-file FILE | --new-passphrase-fd N]\n"
        "SPEC is file:KEYFILE, passphrase, kms:KEY or pkcs11:URI.\n";
  struct new_wrap_opts n = { .pass_fd = -1, .id = -1 };
  struct common_opts co;
  struct session s;
  struct cv_creds nc = { 0 };
  int64_t id;
  int rc = parse_args (argc, argv, own, new_wrap_opt, &n, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (!n.spec) {
    cv_err ("add-wrap needs --wrap SPEC");
    return EXIT_USAGE;
  }
  const struct cv_provider *p;
  const char *ref;
  if (cv_wrap_spec_parse (n.spec, &p, &ref) < 0)
    return EXIT_USAGE;
  if ((rc = session_open (&s, argv[optind], co.header)) != 0)
    return rc;
  json_t *dup = same_key_wrap (s.h, n.spec, -1);
  if (dup) {
    cv_err ("wrap %lld already uses that key (%s); nothing to add",
            (long long) json_integer_value (json_object_get (dup, "id")),
            n.spec);
    rc = -EEXIST;
  }
  if (rc == 0 && (rc = unlock_creds (&co, s.h)) == 0
      && (rc = session_unlock (&s, &co.creds)) == 0
      && (rc = new_wrap_creds (&co, &n, &nc)) == 0
      && (rc = cv_wrap_add (s.h, n.spec, &nc, s.dek, &id)) == 0
      && (rc = session_commit (&s)) == 0) {
    /* Prove the new wrap opens the volume before saying it does. */
    CLEANUP_KEY struct cv_key *check = NULL;
    rc = session_unlock_only (&s, id, &nc, &check);
    if (rc == 0) {
      mark_verified (&s, id);
      rc = session_commit (&s);
    } else
      cv_err ("the new wrap %lld was written but does not unlock the volume; "
              "remove it with remove-wrap --id %lld",
              (long long) id, (long long) id);
  }
  if (rc == 0) {
    json_t *w = wrap_by_id (s.h, id, NULL);
    audit_wrap (w, "added");
    report (co.json, json_incref (w), "%s: added wrap %lld (%s), verified\n",
            s.volume, (long long) id, n.spec);
  }
  cv_key_free (nc.passphrase);
  session_close (&s);
  common_free (&co);
  return rc == -EEXIST ? EXIT_USAGE : exit_code (rc);
}

int
cmd_remove_wrap (int argc, char **argv)
{
  static const struct option own[] = {
    { "id", required_argument, 0, 'i' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr remove-wrap VOLUME --id N [--header FILE]\n"
        "         (--keyfile FILE | --passphrase-file FILE | ...)  the key of "
        "ANOTHER wrap,\n         to prove the volume still opens without "
        "wrap N\n";
  struct new_wrap_opts n = { .pass_fd = -1, .id = -1 };
  struct common_opts co;
  struct session s;
  size_t index;
  int rc = parse_args (argc, argv, own, new_wrap_opt, &n, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (n.id < 0) {
    cv_err ("remove-wrap needs --id N (see list-wraps)");
    return EXIT_USAGE;
  }
  if ((rc = session_open (&s, argv[optind], co.header)) != 0)
    return rc;
  json_t *w = wrap_by_id (s.h, n.id, &index);
  if (!w) {
    cv_err ("%s has no wrap %lld (see list-wraps)", s.name, (long long) n.id);
    rc = -ENOENT;
  } else if (json_array_size (s.h->wraps) == 1) {
    cv_err ("wrap %lld is the only wrap of %s: removing it would make the "
            "volume impossible to open; add another wrap first (or use shred "
            "to destroy the volume)",
            (long long) n.id, s.name);
    rc = -EPERM;
  } else if ((rc = unlock_creds (&co, s.h)) == 0
             && (rc = session_unlock_except (&s, n.id, &co.creds)) < 0)
    cv_err ("removing wrap %lld needs proof that another wrap still unlocks "
            "%s: give the key of another wrap",
            (long long) n.id, s.name);
  if (rc == 0) {
    audit_wrap (w, "removed");
    json_array_remove (s.h->wraps, index);
    rc = session_commit (&s);
  }
  if (rc == 0)
    report (co.json,
            json_pack ("{s:s, s:I, s:I}", "volume", s.volume, "removed",
                       (json_int_t) n.id, "still_unlocked_by",
                       (json_int_t) s.unlocked_by),
            "%s: removed wrap %lld; wrap %lld still unlocks it\n", s.volume,
            (long long) n.id, (long long) s.unlocked_by);
  session_close (&s);
  common_free (&co);
  return rc == -ENOENT || rc == -EPERM ? EXIT_USAGE : exit_code (rc);
}

int
cmd_list_wraps (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr list-wraps VOLUME [--header FILE] [--json]\n";
  struct common_opts co;
  CLEANUP_CLOSE int fd = -1;
  struct cv_header *h = NULL;
  unsigned valid;
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if ((rc = open_header (argv[optind], co.header, &fd, &h, &valid)) != 0)
    return rc;
  if (co.json)
    print_json (h->wraps);
  else {
    size_t i;
    json_t *w;
    printf ("%-4s %-11s %-21s %-21s %s\n", "ID", "TYPE", "CREATED",
            "LAST VERIFIED", "KEY");
    json_array_foreach (h->wraps, i, w)
    {
      const char *ref = json_string_value (json_object_get (w, "ref"));
      const char *ver = json_string_value (json_object_get (w, "verified"));
      printf ("%-4lld %-11s %-21s %-21s %s\n",
              (long long) json_integer_value (json_object_get (w, "id")),
              json_string_value (json_object_get (w, "type")),
              json_string_value (json_object_get (w, "created")),
              ver ? ver : "-", ref ? ref : "(passphrase)");
    }
  }
  cv_hdr_free (h);
  return EXIT_OK;
}

/* Make the wrap that replaces old for spec in s (after the others). A KMS to
 * KMS move uses the provider's re-wrap (ReEncrypt), so the DEK never leaves
 * the key service; anything else unwraps old into locked memory and wraps the
 * DEK again. *id gets the new wrap's id; *server_side says which was used. */
static int
rewrap_add (struct session *s, json_t *old, const char *spec,
            const struct cv_creds *oc, const struct cv_creds *nc, int64_t *id,
            bool *server_side)
{
  const struct cv_provider *p;
  const char *ref;
  const char *otype = json_string_value (json_object_get (old, "type"));
  int64_t oid = json_integer_value (json_object_get (old, "id"));
  int rc = cv_wrap_spec_parse (spec, &p, &ref);

  if (rc < 0)
    return rc;
  *server_side = p->rewrap && otype && strcmp (otype, p->type) == 0;
  if (!*server_side) {
    CLEANUP_KEY struct cv_key *dek = NULL;
    if ((rc = session_unlock_only (s, oid, oc, &dek)) < 0)
      return rc;
    return cv_wrap_add (s->h, spec, nc, dek, id);
  }
  char created[32];
  cv_now_rfc3339 (created);
  *id = s->h->next_wrap_id;
  json_t *nw = json_pack ("{s:I, s:s, s:s, s:s}", "id", (json_int_t) *id,
                          "type", p->type, "ref", ref, "created", created);
  if (!nw)
    return -ENOMEM;
  if ((rc = p->rewrap (old, ref, oc, cv_hdr_binding (s->h), nw)) < 0
      || (rc = json_array_append_new (s->h->wraps, nw) < 0 ? -ENOMEM : 0) < 0)
    return rc;
  s->h->next_wrap_id++;
  return 0;
}

/* Check that wrap id opens the volume. After a server-side re-wrap the key
 * service checks the new wrap by re-wrapping it to its own key (it must
 * decrypt it under the volume's context), so the DEK still never leaves it. */
static int
rewrap_verify (struct session *s, int64_t id, const struct cv_creds *nc,
               bool server_side)
{
  json_t *w = wrap_by_id (s->h, id, NULL);

  if (!server_side) {
    CLEANUP_KEY struct cv_key *dek = NULL;
    return session_unlock_only (s, id, nc, &dek);
  }
  const struct cv_provider *p
      = cv_provider_find (json_string_value (json_object_get (w, "type")));
  json_auto_t *scratch = json_object ();
  return p->rewrap (w, json_string_value (json_object_get (w, "ref")), nc,
                    cv_hdr_binding (s->h), scratch);
}

int
cmd_rewrap (int argc, char **argv)
{
  static const struct option own[] = {
    { "id", required_argument, 0, 'i' },
    { "to", required_argument, 0, 't' },
    NEW_WRAP_LONGOPTS,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr rewrap VOLUME --id N --to SPEC [--header "
        "FILE]\n"
        "         (--keyfile FILE | --passphrase-file FILE | ...)  wrap N's "
        "key\n"
        "         [--new-passphrase-file FILE | --new-passphrase-fd N]\n"
        "Moves wrap N to the key SPEC: adds the new wrap, commits, checks it\n"
        "unlocks the volume, then removes wrap N. Safe while the volume is "
        "served.\n";
  struct new_wrap_opts n = { .pass_fd = -1, .id = -1 };
  struct common_opts co;
  struct session s;
  struct cv_creds nc = { 0 };
  bool server_side = false;
  int64_t id = -1;
  int rc = parse_args (argc, argv, own, new_wrap_opt, &n, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (n.id < 0 || !n.spec) {
    cv_err ("rewrap needs --id N (the wrap to move) and --to SPEC (its new "
            "key)");
    return EXIT_USAGE;
  }
  const struct cv_provider *p;
  const char *ref;
  if (cv_wrap_spec_parse (n.spec, &p, &ref) < 0)
    return EXIT_USAGE;
  if ((rc = session_open (&s, argv[optind], co.header)) != 0)
    return rc;

  json_t *old = wrap_by_id (s.h, n.id, NULL);
  const char *oref
      = old ? json_string_value (json_object_get (old, "ref")) : NULL;
  json_t *done = old ? same_key_wrap (s.h, n.spec, n.id) : NULL;
  if (!old && (done = same_key_wrap (s.h, n.spec, -1))) {
    /* Killed after its last commit: the rewrap is complete. */
    printf ("%s: wrap %lld is gone and wrap %lld uses %s: the rewrap is "
            "complete\n",
            s.volume, (long long) n.id,
            (long long) json_integer_value (json_object_get (done, "id")),
            n.spec);
    session_close (&s);
    common_free (&co);
    return EXIT_OK;
  }
  if (!old) {
    cv_err ("%s has no wrap %lld (see list-wraps)", s.name, (long long) n.id);
    rc = -ENOENT;
  } else if (ref && oref && strcmp (ref, oref) == 0
             && strcmp (p->type,
                        json_string_value (json_object_get (old, "type")))
                    == 0) {
    cv_err ("wrap %lld already uses %s: a rewrap to the same key changes "
            "nothing",
            (long long) n.id, n.spec);
    rc = -EINVAL;
  } else if ((rc = unlock_creds (&co, s.h)) == 0
             && (rc = new_wrap_creds (&co, &n, &nc)) == 0) {
    if (done) {
      /* An earlier rewrap added the new wrap and stopped: finish it. */
      id = json_integer_value (json_object_get (done, "id"));
      server_side = p->rewrap != NULL;
      cv_info ("wrap %lld to %s exists already (an interrupted rewrap); "
               "finishing",
               (long long) id, n.spec);
    } else if ((rc = rewrap_add (&s, old, n.spec, &co.creds, &nc, &id,
                                 &server_side))
               == 0)
      rc = session_commit (&s);
  }
  if (rc == 0 && (rc = rewrap_verify (&s, id, &nc, server_side)) < 0)
    cv_err ("the new wrap %lld does not unlock %s; wrap %lld is kept (remove "
            "the new one with remove-wrap --id %lld)",
            (long long) id, s.name, (long long) n.id, (long long) id);
  if (rc == 0) {
    size_t index;
    mark_verified (&s, id);
    audit_wrap (wrap_by_id (s.h, id, NULL), "added");
    audit_wrap (old, "removed");
    wrap_by_id (s.h, n.id, &index);
    json_array_remove (s.h->wraps, index);
    rc = session_commit (&s);
  }
  if (rc == 0)
    report (co.json,
            json_pack ("{s:s, s:I, s:I, s:s, s:b}", "volume", s.volume,
                       "removed", (json_int_t) n.id, "added", (json_int_t) id,
                       "to", n.spec, "server_side", server_side),
            "%s: wrap %lld moved to %s as wrap %lld (%s), verified\n", s.volume,
            (long long) n.id, n.spec, (long long) id,
            server_side ? "re-wrapped inside the key service"
                        : "unwrapped and wrapped again in locked memory");
  cv_key_free (nc.passphrase);
  session_close (&s);
  common_free (&co);
  return rc == -ENOENT || rc == -EINVAL ? EXIT_USAGE : exit_code (rc);
}

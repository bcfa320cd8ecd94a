/* cryptvol-keymgr add-wrap, remove-wrap, list-wraps: the wraps of a volume.
 * All work while the volume is served: the header write lock serialises
 * them with each other and with the plugin. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  int64_t id;          /* remove-wrap, rewrap */
  const char *control; /* --control: the server to reload afterwards */
};

static int
new_wrap_opt (int c, const char *arg, void *ctx)
{
  struct new_wrap_opts *n = ctx;
  char *end;

  switch (c) {
  case 'w':
  case 't':
    return (n->spec = wrap_spec_absolute (arg)) ? 0 : -1;
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
  case 'C':
    n->control = keymgr_control = arg;
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
#define CONTROL_LONGOPT                                                        \
  {                                                                            \
    "control", required_argument, 0, 'C'                                       \
  }
#define CONTROL_USAGE                                                          \
  "         [--control PATH]  then make the server at PATH reload the "        \
  "header\n"                                                                   \
  "                           (an rbd: volume: that server commits the "      \
  "change)\n"

/* Report a committed change, its header lock released: ask the server at
 * control (NULL: none) to reload, then print j (taken; with the reload's
 * reply added) with --json, else the formatted line and the reload's. */
__attribute__ ((format (printf, 4, 5))) static void
report_change (bool json, const char *control, json_t *j, const char *fmt, ...)
{
  json_t *reload = control_reload_after (control);
  CLEANUP_FREE char *text = NULL;
  va_list ap;

  if (reload && j)
    json_object_set (j, "reload", reload);
  va_start (ap, fmt);
  if (vasprintf (&text, fmt, ap) < 0)
    text = NULL;
  va_end (ap);
  report (json, j, "%s", text ? text : "(out of memory)\n");
  if (!json)
    control_reload_print (control, reload);
  json_decref (reload);
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

int
cmd_add_wrap (int argc, char **argv)
{
  static const struct option own[] = {
    { "wrap", required_argument, 0, 'w' },
    NEW_WRAP_LONGOPTS,
    CONTROL_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr add-wrap VOLUME --wrap SPEC [--header FILE]\n"
        "         [--keyfile FILE | --passphrase-file FILE | ...]  (to "
        "unlock)\n"
        "         [--new-passphrase-file FILE | --new-passphrase-fd "
        "N]\n" CONTROL_USAGE
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
  int64_t dup = cv_wrap_same_key (s.h, n.spec, -1);
  if (dup >= 0) {
    cv_err ("wrap %lld already uses that key (%s); nothing to add",
            (long long) dup, n.spec);
    rc = -EEXIST;
  }
  if (rc == 0 && (rc = unlock_creds (&co, s.h)) == 0
      && (rc = session_unlock (&s, &co.creds, &co.unlock_sel)) == 0
      && (rc = new_wrap_creds (&co, &n, &nc)) == 0
      && (rc = cv_wrap_add (s.h, n.spec, &nc, s.dek, &id)) == 0
      && (rc = session_commit (&s)) == 0) {
    /* Prove the new wrap opens the volume before saying it does. */
    if ((rc = cv_wrap_verify (s.h, s.name, id, &nc, false, NULL)) == 0)
      rc = session_commit (&s);
    else
      cv_err ("the new wrap %lld was written but does not unlock the volume; "
              "remove it with remove-wrap --id %lld",
              (long long) id, (long long) id);
  }
  json_t *j = NULL;
  if (rc == 0) {
    struct cv_wrap_info w;
    cv_hdr_wrap_find (s.h, id, &w);
    audit_wrap (&w, "added");
    j = cv_hdr_wrap_to_json (s.h, id);
  }
  cv_key_free (nc.passphrase);
  session_close (&s);
  if (rc == 0)
    report_change (co.json, n.control, j,
                   "%s: added wrap %lld (%s), verified\n", s.volume,
                   (long long) id, n.spec);
  common_free (&co);
  return rc == -EEXIST ? EXIT_USAGE : exit_code (rc);
}

int
cmd_remove_wrap (int argc, char **argv)
{
  static const struct option own[] = {
    { "id", required_argument, 0, 'i' },
    CONTROL_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr remove-wrap VOLUME --id N [--header FILE]\n"
        "         (--keyfile FILE | --passphrase-file FILE | ...)  the key of "
        "ANOTHER wrap,\n         to prove the volume still opens without "
        "wrap N\n" CONTROL_USAGE;
  struct new_wrap_opts n = { .pass_fd = -1, .id = -1 };
  struct common_opts co;
  struct session s;
  int rc = parse_args (argc, argv, own, new_wrap_opt, &n, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if (n.id < 0) {
    cv_err ("remove-wrap needs --id N (see list-wraps)");
    return EXIT_USAGE;
  }
  if ((rc = session_open (&s, argv[optind], co.header)) != 0)
    return rc;
  /* Taken out of the header in memory first: the unlock that follows must
   * then succeed with another wrap, and nothing is written unless it does. */
  struct cv_wrap_info w = { .id = n.id };
  CLEANUP_FREE char *type = NULL, *ref = NULL;
  if (cv_hdr_wrap_find (s.h, n.id, &w) == 0
      && ((w.type && !(w.type = type = strdup (w.type)))
          || (w.ref && !(w.ref = ref = strdup (w.ref)))))
    rc = -ENOMEM;
  if (rc == 0 && (rc = cv_hdr_wrap_remove (s.h, s.name, n.id)) == 0
      && (rc = unlock_creds (&co, s.h)) == 0
      && (rc = session_unlock (&s, &co.creds, &co.unlock_sel)) < 0)
    cv_err ("removing wrap %lld needs proof that another wrap still unlocks "
            "%s: give the key of another wrap",
            (long long) n.id, s.name);
  if (rc == 0) {
    audit_wrap (&w, "removed");
    rc = session_commit (&s);
  }
  session_close (&s);
  if (rc == 0)
    report_change (co.json, n.control,
                   json_pack ("{s:s, s:I, s:I}", "volume", s.volume, "removed",
                              (json_int_t) n.id, "still_unlocked_by",
                              (json_int_t) s.unlocked_by),
                   "%s: removed wrap %lld; wrap %lld still unlocks it\n",
                   s.volume, (long long) n.id, (long long) s.unlocked_by);
  common_free (&co);
  return rc == -ENOENT || rc == -EPERM ? EXIT_USAGE : exit_code (rc);
}

int
cmd_list_wraps (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr list-wraps VOLUME [--header FILE] [--json]\n";
  struct common_opts co;
  CLEANUP_DEV struct cv_dev *d = NULL;
  struct cv_header *h = NULL;
  unsigned valid;
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if ((rc = open_header (argv[optind], co.header, &d, &h, &valid)) != 0)
    return rc;
  if (co.json)
    print_json (cv_hdr_wraps (h));
  else {
    struct cv_wrap_info w;
    printf ("%-4s %-11s %-21s %-21s %s\n", "ID", "TYPE", "CREATED",
            "LAST VERIFIED", "KEY");
    for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++)
      printf ("%-4lld %-11s %-21s %-21s %s\n", (long long) w.id, w.type,
              w.created ? w.created : "-", w.verified ? w.verified : "-",
              w.ref ? w.ref : "(passphrase)");
  }
  cv_hdr_free (h);
  return EXIT_OK;
}

int
cmd_rewrap (int argc, char **argv)
{
  static const struct option own[] = {
    { "id", required_argument, 0, 'i' },
    { "to", required_argument, 0, 't' },
    NEW_WRAP_LONGOPTS,
    CONTROL_LONGOPT,
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr rewrap VOLUME --id N --to SPEC [--header "
        "FILE]\n"
        "         (--keyfile FILE | --passphrase-file FILE | ...)  wrap N's "
        "key\n"
        "         [--new-passphrase-file FILE | --new-passphrase-fd "
        "N]\n" CONTROL_USAGE
        "Moves wrap N to the key SPEC: adds the new wrap, commits, checks it\n"
        "unlocks the volume, then removes wrap N. Safe while the volume is "
        "served.\n";
  struct new_wrap_opts n = { .pass_fd = -1, .id = -1 };
  struct common_opts co;
  struct session s;
  struct cv_creds nc = { 0 };
  struct cv_wrap_moved mv = { .id = -1 };
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

  struct cv_wrap_info old;
  int64_t done = cv_wrap_same_key (s.h, n.spec, -1);
  if (cv_hdr_wrap_find (s.h, n.id, &old) < 0 && done >= 0) {
    /* Killed after its last commit: the rewrap is complete (but the
     * server may not have reloaded it yet). */
    session_close (&s);
    common_free (&co);
    report_change (false, n.control, NULL,
                   "%s: wrap %lld is gone and wrap %lld uses %s: the rewrap "
                   "is complete\n",
                   s.volume, (long long) n.id, (long long) done, n.spec);
    return EXIT_OK;
  }
  if ((rc = unlock_creds (&co, s.h)) == 0
      && (rc = new_wrap_creds (&co, &n, &nc)) == 0
      && (rc = cv_wrap_move (s.h, s.name, n.id, n.spec, &co.creds, &nc, &mv))
             == 0
      && !mv.resumed) {
    s.dek = STEAL (mv.dek); /* unlocked here: the commits are sealed */
    rc = session_commit (&s);
  }
  if (rc == 0
      && (rc = cv_wrap_verify (s.h, s.name, mv.id, &nc, mv.in_service, &s.dek))
             < 0)
    cv_err ("the new wrap %lld does not unlock %s; wrap %lld is kept (remove "
            "the new one with remove-wrap --id %lld)",
            (long long) mv.id, s.name, (long long) n.id, (long long) mv.id);
  if (rc == 0) {
    struct cv_wrap_info nw;
    cv_hdr_wrap_find (s.h, mv.id, &nw);
    audit_wrap (&nw, "added");
    cv_hdr_wrap_find (s.h, n.id, &old);
    audit_wrap (&old, "removed");
    rc = cv_hdr_wrap_remove (s.h, s.name, n.id);
  }
  if (rc == 0)
    rc = session_commit (&s);
  cv_key_free (nc.passphrase);
  session_close (&s);
  if (rc == 0)
    report_change (
        co.json, n.control,
        json_pack ("{s:s, s:I, s:I, s:s, s:b}", "volume", s.volume, "removed",
                   (json_int_t) n.id, "added", (json_int_t) mv.id, "to", n.spec,
                   "server_side", mv.in_service),
        "%s: wrap %lld moved to %s as wrap %lld (%s), verified\n", s.volume,
        (long long) n.id, n.spec, (long long) mv.id,
        mv.in_service ? "re-wrapped inside the key service"
                      : "unwrapped and wrapped again in locked memory");
  common_free (&co);
  return rc == -ENOENT || rc == -EINVAL ? EXIT_USAGE : exit_code (rc);
}

/* cryptvol-keymgr rotate-dek: DEK rotation. A new DEK, every wrap replaced by
 * a wrap of it (same ids and keys) or dropped (--drop-wrap), and all data
 * re-encrypted, resumable: killed at any point, the next run continues.
 * Offline here; with --control the server rotates (rotate_online.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"
#include "vol/volume.h"

/* One of rotate-dek's own options into ctx (struct rotate_opts): 0, or -1
 * after saying what is wrong with its value. */
static int
rotate_opt (int c, const char *arg, void *ctx)
{
  struct rotate_opts *r = ctx;
  char *end;

  switch (c) {
  case 'z':
    if (parse_size (arg, &r->step) == 0 && r->step > 0)
      return 0;
    cv_err ("--hotzone: '%s' is not a size", arg);
    return -1;
  case 'C':
    r->control = keymgr_control = arg;
    return 0;
  case 'r':
    errno = 0;
    r->rate = strtod (arg, &end);
    if (errno || end == arg || *end || !isfinite (r->rate) || r->rate < 0) {
      cv_err ("--rate: '%s' is not MiB/s (a number >= 0; 0: unlimited)", arg);
      return -1;
    }
    return 0;
  case 'd':
    r->detach = true;
    return 0;
  case 'p':
  case 'R':
    if (r->change) {
      cv_err ("--pause and --resume: give one");
      return -1;
    }
    r->change = c == 'p' ? "rotate-pause" : "rotate-resume";
    return 0;
  case 'D': {
    errno = 0;
    long long id = strtoll (arg, &end, 10);
    if (end == arg || *end || id < 0 || errno) {
      cv_err ("--drop-wrap: '%s' is not a wrap id (list-wraps shows them)",
              arg);
      return -1;
    }
    if (r->ndrop == ROTATE_DROP_MAX) {
      cv_err ("--drop-wrap: at most %d", ROTATE_DROP_MAX);
      return -1;
    }
    r->drop[r->ndrop++] = id;
    return 0;
  }
  }
  return -1;
}

/* The options that only make sense together; an exit code or 0. */
static int
check_combination (const struct rotate_opts *ro)
{
  const char *online_only
      = ro->change      ? (strcmp (ro->change, "rotate-pause") == 0 ? "--pause"
                                                                    : "--resume")
        : ro->detach    ? "--detach"
        : ro->rate >= 0 ? "--rate"
                        : NULL;

  if (online_only && !ro->control) {
    cv_err ("%s needs --control PATH (the server's control= socket): it "
            "applies to a rotation that the server runs",
            online_only);
    return EXIT_USAGE;
  }
  if (ro->change && (ro->ndrop || ro->step || ro->detach)) {
    cv_err ("%s only changes the server's rotation: --drop-wrap, --hotzone "
            "and --detach do not go with it",
            online_only);
    return EXIT_USAGE;
  }
  return 0;
}

bool
rotate_needs_passphrase (const struct cv_header *h,
                         const struct rotate_opts *ro)
{
  struct cv_wrap_info w;

  for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++) {
    bool dropped = false;
    for (size_t j = 0; j < ro->ndrop; j++)
      dropped |= ro->drop[j] == w.id;
    if (!dropped && w.type && strcmp (w.type, "passphrase") == 0)
      return true;
  }
  return false;
}

int
rotate_prepare (const char *path, struct common_opts *co,
                const struct rotate_opts *ro, bool online, bool *already)
{
  struct session s;
  struct cv_wrap_info w;
  char types[ROTATE_DROP_MAX][32];
  int rc = session_open (&s, path, co->header);

  *already = false;
  if (rc)
    return rc;
  if (cv_hdr_rotating (s.h)) {
    *already = true;
    session_close (&s);
    return 0;
  }
  if ((rc = session_unlock (&s, &co->creds, &co->unlock_sel)) < 0)
    goto out;
  for (size_t i = 0; i < ro->ndrop; i++) {
    if (cv_hdr_wrap_find (s.h, ro->drop[i], &w) < 0) {
      cv_err ("--drop-wrap %lld: %s has no such wrap (list-wraps shows them)",
              (long long) ro->drop[i], s.name);
      rc = -EINVAL;
      goto out;
    }
    snprintf (types[i], sizeof types[i], "%s", w.type ? w.type : "?");
    audit_wrap (&w, "removed");
    if ((rc = cv_hdr_wrap_remove (s.h, s.name, ro->drop[i])) < 0)
      goto out;
  }
  /* The library names a wrap whose key is missing; on failure nothing was
   * committed. */
  /* The header is sealed, and its seal sector written, with the new DEK. */
  struct cv_key *dek1 = NULL;
  if ((rc = cv_rot_prepare (s.h, path, s.name, &co->creds, s.dek, ro->step,
                            online, &dek1))
      == 0) {
    cv_key_free (s.dek);
    s.dek = dek1;
  }
  if (rc < 0 || (rc = session_commit (&s)) < 0) {
    cv_info ("%s: the DEK rotation was not begun; nothing was changed", path);
    goto out;
  }
  for (size_t i = 0; i < ro->ndrop; i++)
    cv_info ("%s: wrap %lld (%s) removed instead of re-made", path,
             (long long) ro->drop[i], types[i]);
  for (size_t i = 0; cv_hdr_wrap_at (s.h, i, &w) == 0; i++)
    audit_wrap (&w, "replaced");
out:
  session_close (&s);
  return exit_code (rc);
}

/* The exclusive in-use lock is free (waited for up to --wait seconds: a
 * short keymgr change ends), or say who holds it: a server (or a long keymgr
 * change) holds it shared, an offline keymgr exclusive. Returns 0 or an
 * exit code (reported). */
static int
check_not_served (const char *path, const char *name)
{
  CLEANUP_DEV struct cv_dev *d = NULL;

  if (cv_dev_file_open (name, false, &d) < 0)
    return 0; /* cv_vol_open says why (an RBD image's lock does too) */
  if (cv_lock_in_use_for (d, true, keymgr_wait_s * 1000) != -EBUSY)
    return 0;
  if (cv_lock_in_use (d, false, false) == -EBUSY)
    cv_err ("%s is being changed offline by another cryptvol-keymgr "
            "(rotate-dek, restore-header or shred), still after waiting %u s "
            "(--wait SECONDS); try again when it ends",
            name, keymgr_wait_s);
  else
    cv_err ("%s is in use (being served, or changed by another "
            "cryptvol-keymgr, still after waiting %u s with --wait): rotate "
            "it online with `cryptvol-keymgr rotate-dek %s --control SOCKET` "
            "(the server's control= path), or stop the server first",
            name, keymgr_wait_s, path);
  return EXIT_BUSY;
}

/* Progress of the offline rotation: bytes done and total, percent, rate and
 * ETA, as a JSON line on stdout (--json), a line redrawn on stderr on a
 * terminal, else a plain line per whole percent; nothing with --quiet. */
struct progress {
  bool json, tty;
  struct timespec start;
  uint64_t first; /* bytes already done when this run started */
  int pct;        /* the last whole percent printed (not a terminal) */
};

static double
elapsed (const struct progress *p)
{
  struct timespec now;
  clock_gettime (CLOCK_MONOTONIC, &now);
  return (double) (now.tv_sec - p->start.tv_sec)
         + (double) (now.tv_nsec - p->start.tv_nsec) / 1e9;
}

static void
show (uint64_t done, uint64_t total, void *arg)
{
  struct progress *p = arg;
  double s = elapsed (p), mib = 1048576.0;
  double mibs = s > 0 ? (double) (done - p->first) / mib / s : 0;
  double pct = total ? 100.0 * (double) done / (double) total : 100;
  long long eta
      = mibs > 0 ? (long long) ((double) (total - done) / mib / mibs) : -1;
  char eta_s[32] = "?";

  if (keymgr_quiet)
    return;
  if (p->json) {
    printf ("{\"done\":%llu,\"total\":%llu,\"mib_per_s\":%.1f,\"eta_s\":%lld}"
            "\n",
            (unsigned long long) done, (unsigned long long) total, mibs, eta);
    fflush (stdout);
    return;
  }
  if (!p->tty && (int) pct == p->pct)
    return;
  p->pct = (int) pct;
  if (eta >= 0)
    snprintf (eta_s, sizeof eta_s, "%lld:%02lld", eta / 60, eta % 60);
  fprintf (stderr, "%s%.0f/%.0f MiB  %5.1f%%  %.1f MiB/s  ETA %s%s",
           p->tty ? "\r" : "", (double) done / mib, (double) total / mib, pct,
           mibs, eta_s, p->tty && done < total ? "   " : "\n");
  fflush (stderr);
}

int
cmd_rotate_dek (int argc, char **argv)
{
  static const struct option own[] = {
    { "hotzone", required_argument, 0, 'z' },
    { "control", required_argument, 0, 'C' },
    { "rate", required_argument, 0, 'r' },
    { "detach", no_argument, 0, 'd' },
    { "pause", no_argument, 0, 'p' },
    { "resume", no_argument, 0, 'R' },
    { "drop-wrap", required_argument, 0, 'D' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr rotate-dek VOLUME [--header FILE]\n"
        "         [--keyfile FILE] [--passphrase-file FILE] [--pin-file FILE]\n"
        "         [--unlock-wrap ID|TYPE] [--drop-wrap ID]... [--hotzone "
        "SIZE]\n"
        "         [--control PATH [--rate MIB] [--detach]] [--json]\n"
        "       cryptvol-keymgr rotate-dek VOLUME --control PATH\n"
        "         --pause | --resume | --rate MIB\n"
        "Re-encrypts the volume under a new DEK. Every wrap is replaced, so\n"
        "the keys of all wraps are needed (a passphrase or PIN once, at the\n"
        "start), or --drop-wrap ID removes a wrap instead.\n"
        "Offline (no --control; stop the server first), interrupted, run it\n"
        "again: it continues. With --control (the server's control= socket)\n"
        "the server re-encrypts while serving; keymgr shows its progress "
        "until\n"
        "the end (--detach: returns at once; status shows it). --rate: MiB/s\n"
        "(0: unlimited, the default). With a rotation in progress it needs\n"
        "no keys: it continues it (at --rate) and follows it; --pause,\n"
        "--resume and --rate --detach change it.\n";
  struct rotate_opts ro = { .rate = -1 };
  struct common_opts co;
  struct cv_vol *v = NULL;
  bool prepared = false;
  int rc = parse_args (argc, argv, own, rotate_opt, &ro, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if ((rc = check_combination (&ro)) != 0)
    return rc;
  const char *path = argv[optind];
  if (ro.control) {
    rc = rotate_online (path, &co, &ro);
    common_free (&co);
    return rc;
  }
  if ((rc = check_not_served (path, co.header ? co.header : path)) != 0)
    return rc;
  {
    /* A passphrase is asked for only if there is a passphrase wrap. */
    CLEANUP_DEV struct cv_dev *d = NULL;
    struct cv_header *h = NULL;
    unsigned valid;
    if ((rc = open_header (path, co.header, &d, &h, &valid)) != 0)
      return rc;
    audit_volume (path, cv_hdr_uuid (h));
    bool ask = rotate_needs_passphrase (h, &ro) && isatty (0)
               && !cv_hdr_rotating (h);
    cv_hdr_free (h);
    if ((rc = common_creds (&co, ask, false)) < 0)
      return exit_code (rc);
  }
  if (ro.ndrop) {
    /* The wraps go in the same commit that begins the rotation. */
    bool already;
    if ((rc = rotate_prepare (path, &co, &ro, false, &already)) != 0) {
      common_free (&co);
      return rc;
    }
    if (already)
      cv_warn ("%s: a DEK rotation is in progress: continuing it; "
               "--drop-wrap applies when one begins (remove-wrap after it "
               "ends)",
               path);
    prepared = !already;
  }

  struct cv_vol_opts o = { .path = path,
                           .header_path = co.header,
                           .rbd = &keymgr_rbd,
                           .exclusive = true,
                           .creds = &co.creds,
                           .wraps = &co.unlock_sel };
  if ((rc = cv_vol_open (&o, &v)) < 0) {
    common_free (&co);
    return exit_code (rc);
  }
  struct progress pr = { .json = co.json, .tty = isatty (2), .pct = -1 };
  clock_gettime (CLOCK_MONOTONIC, &pr.start);
  if (!cv_vol_rotating (v, &pr.first))
    pr.first = 0;

  if (!cv_vol_rotating (v, NULL)) {
    /* The library says why and whether anything changed. */
    if ((rc = cv_vol_rotate_begin (v, &co.creds, ro.step)) < 0)
      goto out;
    struct cv_wrap_info w;
    for (size_t i = 0; cv_hdr_wrap_at (cv_vol_header (v), i, &w) == 0; i++)
      audit_wrap (&w, "replaced");
  } else if (!prepared)
    cv_info ("%s: continuing the DEK rotation at %llu of %llu bytes", path,
             (unsigned long long) pr.first,
             (unsigned long long) cv_vol_size (v));

  rc = cv_vol_rotate_run (v, show, &pr);
  if (rc == 0) {
    double s = elapsed (&pr);
    double mib = (double) (cv_vol_size (v) - pr.first) / 1048576.0;
    if (co.json)
      printf ("{\"rotated\":true,\"bytes\":%llu,\"seconds\":%.3f,"
              "\"mib_per_s\":%.1f}\n",
              (unsigned long long) (cv_vol_size (v) - pr.first), s,
              s > 0 ? mib / s : 0);
    else
      printf ("%s: DEK rotated: %.0f MiB re-encrypted in %.1f s (%.0f MiB/s); "
              "every wrap now holds the new key\n",
              path, mib, s, s > 0 ? mib / s : 0);
  }
out:
  cv_vol_close (v);
  common_free (&co);
  return exit_code (rc);
}

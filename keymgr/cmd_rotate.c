/* cryptvol-keymgr rotate-dek: DEK rotation. A new DEK, every wrap replaced by
 * a wrap of it (same ids and keys), and all data re-encrypted, offline and
 * resumable: killed at any point, the next run continues. */
#include <getopt.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "format/header.h"
#include "keymgr.h"
#include "vol/volume.h"

struct rotate_opts {
  uint64_t step;
};

static int
rotate_opt (int c, const char *arg, void *ctx)
{
  struct rotate_opts *r = ctx;

  if (c == 'z' && parse_size (arg, &r->step) == 0 && r->step > 0)
    return 0;
  cv_err ("--hotzone: '%s' is not a size", arg);
  return -1;
}

/* Progress: a bar on a terminal, JSON lines with --json, else nothing. */
struct progress {
  bool json, tty;
  struct timespec start;
  uint64_t first; /* bytes already done when this run started */
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
  double s = elapsed (p);
  double mibs = s > 0 ? (double) (done - p->first) / 1048576.0 / s : 0;

  if (p->json)
    printf ("{\"done\":%llu,\"total\":%llu,\"mib_per_s\":%.1f}\n",
            (unsigned long long) done, (unsigned long long) total, mibs);
  else if (p->tty) {
    int width = 40, fill = (int) ((double) done / (double) total * width);
    fprintf (stderr, "\r[%-*.*s] %5.1f%%  %.0f MiB/s", width, fill,
             "########################################",
             100.0 * (double) done / (double) total, mibs);
    if (done == total)
      fputc ('\n', stderr);
  }
  fflush (NULL);
}

int
cmd_rotate_dek (int argc, char **argv)
{
  static const struct option own[] = {
    { "hotzone", required_argument, 0, 'z' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr rotate-dek VOLUME [--header FILE]\n"
        "         [--keyfile FILE] [--passphrase-file FILE] [--pin-file FILE]\n"
        "         [--hotzone SIZE] [--json]\n"
        "Re-encrypts the volume under a new DEK (offline: stop the server "
        "first).\nEvery wrap is replaced, so the keys of all wraps are "
        "needed.\nInterrupted, run it again: it continues.\n";
  struct rotate_opts ro = { 0 };
  struct common_opts co;
  struct cv_vol *v = NULL;
  int rc = parse_args (argc, argv, own, rotate_opt, &ro, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind];
  {
    /* A passphrase is asked for only if there is a passphrase wrap. */
    CLEANUP_CLOSE int fd = -1;
    struct cv_header *h = NULL;
    unsigned valid;
    if ((rc = open_header (path, co.header, &fd, &h, &valid)) != 0)
      return rc;
    audit_volume (path, cv_hdr_uuid (h));
    bool ask = has_wrap_type (h, "passphrase") && isatty (0);
    cv_hdr_free (h);
    if ((rc = common_creds (&co, ask, false)) < 0)
      return exit_code (rc);
  }

  struct cv_vol_opts o = { .path = path,
                           .header_path = co.header,
                           .exclusive = true,
                           .creds = &co.creds,
                           .wraps = &co.unlock_sel };
  if ((rc = cv_vol_open (&o, &v)) < 0) {
    common_free (&co);
    return exit_code (rc);
  }
  struct progress pr = { .json = co.json, .tty = isatty (2) };
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
  } else
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

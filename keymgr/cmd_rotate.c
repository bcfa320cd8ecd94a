/* cryptvol-keymgr rotate-dek: DEK rotation. A new DEK, every wrap replaced by
 * a wrap of it (same ids and keys), and all data re-encrypted, offline and
 * resumable: killed at any point, the next run continues. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
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

/* The KDF parameters recorded in a passphrase wrap, so that its replacement
 * costs the same to attack. */
static void
kdf_of (const json_t *w, struct cv_pbkdf *k)
{
  json_t *kdf = json_object_get (w, "kdf");
  const char *type = json_string_value (json_object_get (kdf, "type"));

  if (!type)
    return;
  if (strcmp (type, "scrypt") == 0) {
    k->type = "scrypt";
    k->scrypt_n = (uint64_t) json_integer_value (json_object_get (kdf, "n"));
  } else {
    k->type = "argon2id";
    k->t_cost = (uint32_t) json_integer_value (json_object_get (kdf, "t"));
    k->m_kib = (uint32_t) json_integer_value (json_object_get (kdf, "m"));
    k->parallel = (uint32_t) json_integer_value (json_object_get (kdf, "p"));
  }
}

/* A wrap of dek1 replacing w (same id, type and key). First w is unwrapped
 * with c to prove its key is at hand and still this volume's. */
static int
remake (const struct cv_header *h, const json_t *w, const struct cv_creds *c,
        const struct cv_key *dek0, const struct cv_key *dek1, json_t **out)
{
  const char *type = json_string_value (json_object_get (w, "type"));
  const char *ref = json_string_value (json_object_get (w, "ref"));
  const struct cv_provider *p = type ? cv_provider_find (type) : NULL;
  struct cv_creds c2 = *c;
  CLEANUP_KEY struct cv_key *got = NULL;
  char created[32];
  int rc;

  if (!p) {
    cv_err ("wrap %lld: type %s is not available in this build",
            (long long) json_integer_value (json_object_get (w, "id")),
            type ? type : "?");
    return -EPROTONOSUPPORT;
  }
  if (strcmp (type, "file") == 0 && ref) {
    /* The key file the wrap names, else the one given (the file moved). */
    c2.keyfile = ref;
    rc = p->unwrap (w, &c2, cv_hdr_binding (h), &got);
    if (rc < 0 && c->keyfile) {
      c2.keyfile = c->keyfile;
      rc = p->unwrap (w, &c2, cv_hdr_binding (h), &got);
    }
  } else {
    kdf_of (w, &c2.pbkdf);
    rc = p->unwrap (w, &c2, cv_hdr_binding (h), &got);
  }
  if (rc == -ENOKEY)
    cv_err ("wrap %lld (%s%s%s) cannot be replaced without its key: give it "
            "(e.g. --passphrase-file), or remove the wrap first",
            (long long) json_integer_value (json_object_get (w, "id")), type,
            ref ? " " : "", ref ? ref : "");
  if (rc < 0)
    return rc;
  if (got->len != dek0->len || CRYPTO_memcmp (got->b, dek0->b, got->len)) {
    cv_err ("wrap %lld does not hold this volume's key",
            (long long) json_integer_value (json_object_get (w, "id")));
    return -EKEYREJECTED;
  }
  cv_now_rfc3339 (created);
  json_auto_t *nw
      = json_pack ("{s:O, s:s, s:s, s:s}", "id", json_object_get (w, "id"),
                   "type", type, "created", created, "verified", created);
  const char *use = strcmp (type, "file") == 0 ? c2.keyfile : ref;
  if (!nw || (use && json_object_set_new (nw, "ref", json_string (use)) < 0))
    return -ENOMEM;
  if ((rc = p->wrap (use, &c2, dek1, cv_hdr_binding (h), nw)) < 0)
    return rc;
  *out = STEAL (nw);
  return 0;
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
    audit_volume (path, h->uuid);
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
    const struct cv_header *h = cv_vol_header (v);
    json_auto_t *wraps = json_array ();
    struct cv_key *dek1 = NULL;
    size_t i;
    json_t *w;
    rc = wraps ? cv_dek_generate (&dek1) : -ENOMEM;
    json_array_foreach (h->wraps, i, w)
    {
      json_t *nw = NULL;
      if (rc == 0
          && (rc = remake (h, w, &co.creds, cv_vol_dek (v), dek1, &nw)) == 0)
        json_array_append_new (wraps, nw);
    }
    if (rc == 0) {
      json_array_foreach (wraps, i, w) audit_wrap (w, "replaced");
      rc = cv_vol_rotate_begin (v, STEAL (dek1), STEAL (wraps), ro.step);
    }
    cv_key_free (dek1);
    if (rc < 0) {
      cv_err ("%s: DEK rotation not started; nothing was changed", path);
      goto out;
    }
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

/* cryptvol-keymgr upgrade: give a volume made before the seal sector and
 * wrap binding (doc/format.md "Migration") both protections, where there is
 * room for a seal; seal the wraps a KMS re-wrap added without the DEK; and,
 * with --reseal, write a lost seal sector again for a header the operator
 * vouches for. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"

struct upgrade_opts {
  bool reseal, yes;
};

static int
upgrade_opt (int c, const char *arg, void *ctx)
{
  struct upgrade_opts *o = ctx;

  if (c == 'r')
    o->reseal = true;
  else
    o->yes = true;
  return 0;
}

/* Is the block at off of d free for a seal: all zero, or a seal already? */
static bool
block_free (struct cv_dev *d, uint64_t off)
{
  uint8_t buf[CV_SEAL_SIZE];
  size_t n = 0;

  if (cv_dev_pread (d, buf, sizeof buf, off, &n) < 0)
    return false;
  if (n >= 8 && memcmp (buf, "CVSEAL01", 8) == 0)
    return true;
  for (size_t i = 0; i < n; i++)
    if (buf[i])
      return false;
  return true;
}

int
cmd_upgrade (int argc, char **argv)
{
  static const struct option own[] = {
    { "reseal", no_argument, 0, 'r' },
    { "yes", no_argument, 0, 'y' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr upgrade VOLUME [--header FILE] [--reseal] "
        "[--yes]\n"
        "         (--keyfile FILE | --passphrase-file FILE | ...)\n"
        "Adds a seal sector (a stale header is refused) and binds the wraps\n"
        "to the volume key; seals wraps a KMS re-wrap added. --reseal writes\n"
        "the seal again for this header (when the seal sector was lost).\n";
  struct upgrade_opts uo = { false, false };
  struct common_opts co;
  struct session s;
  bool attached;
  int rc = parse_args (argc, argv, own, upgrade_opt, &uo, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  if ((rc = session_open (&s, argv[optind], co.header)) != 0) {
    common_free (&co);
    return rc;
  }
  struct cv_dev *dd = session_data_dev (&s, &attached);
  bool had_seal = cv_hdr_sealed (s.h, NULL, NULL);
  bool had_binding = cv_hdr_binds_wraps (s.h);
  bool settled = cv_hdr_wraps_settled (s.h);
  uint64_t off = cv_seal_offset_for (attached, cv_hdr_data_offset (s.h));

  if (cv_hdr_rotating (s.h)) {
    cv_err ("%s: a DEK rotation is in progress; finish it (rotate-dek) "
            "before upgrading",
            s.volume);
    rc = -EBUSY;
    goto out;
  }
  /* The key proves the header is the volume's; the seal check that it is
   * current, unless the operator vouches for it (--reseal). */
  if ((rc = unlock_creds (&co, s.h)) < 0
      || (rc = cv_unlock (s.h, s.name, &co.creds, &co.unlock_sel, &s.dek,
                          &s.unlocked_by))
             < 0)
    goto out;
  if (!uo.reseal) {
    bool behind;
    if ((rc = cv_seal_check (dd, attached, s.h, s.dek, &behind)) < 0)
      goto out;
    if (had_seal && had_binding && settled && !behind) {
      report (
          co.json, json_pack ("{s:s, s:b}", "volume", s.volume, "changed", 0),
          "%s: already up to date (seal sector and wrap binding)\n", s.volume);
      goto out;
    }
  }
  if (!had_seal && off != UINT64_MAX && !uo.yes && !block_free (dd, off)) {
    cv_err ("%s: the 4096 bytes at %llu, where the seal sector goes, are "
            "not blank (an imported LUKS header's key material?); add --yes "
            "to overwrite them",
            s.volume, (unsigned long long) off);
    rc = -EINVAL;
    goto out;
  }
  if ((rc = cv_hdr_protect (s.h, had_seal ? UINT64_MAX : off)) < 0
      || (rc = session_commit (&s)) < 0)
    goto out;

  uint64_t at, gen;
  bool sealed = cv_hdr_sealed (s.h, &at, &gen);
  json_t *j = json_pack ("{s:s, s:b, s:b, s:b}", "volume", s.volume, "changed",
                         1, "sealed", sealed, "wraps_bound", 1);
  if (had_seal && had_binding)
    report (co.json, j,
            "%s: wraps sealed as they are now (generation %llu): changes "
            "made without the key (a KMS re-wrap) are bound\n",
            s.volume, (unsigned long long) gen);
  else if (sealed)
    report (co.json, j,
            "%s: seal sector at %llu (generation %llu) written; wraps bound "
            "to the volume key. A stale header is now refused; cryptvol "
            "releases without these features refuse this volume.\n",
            s.volume, (unsigned long long) at, (unsigned long long) gen);
  else
    report (co.json, j,
            "%s: wraps bound to the volume key. No room for a seal sector "
            "(data offset %llu%s): a header from before a DEK rotation or a "
            "wrap removal cannot be told from the current one; keep header "
            "backups out of reach, or copy the data to a volume made with a "
            "data offset of 4096 or more.\n",
            s.volume, (unsigned long long) cv_hdr_data_offset (s.h),
            attached ? ", right after the header" : "");
out:
  session_close (&s);
  common_free (&co);
  return exit_code (rc);
}

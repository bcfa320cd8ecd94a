/* cryptvol-keymgr verify: unlock with the key given, check the key check
 * value and the header MAC, and say which wrap unlocked. */
#include <getopt.h>
#include <stdio.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "format/header.h"
#include "keymgr.h"

int
cmd_verify (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr verify VOLUME [--header FILE]\n"
        "         (--keyfile FILE | --passphrase-file FILE | --pin-file FILE "
        "| ...)\n";
  struct common_opts co;
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind];
  CLEANUP_DEV struct cv_dev *d = NULL;
  struct cv_header *h = NULL;
  unsigned valid;
  if ((rc = open_header (path, co.header, &d, &h, &valid)) != 0)
    return rc;

  /* Ask for a passphrase only when no key file was given. */
  CLEANUP_KEY struct cv_key *dek = NULL;
  int64_t id = -1;
  rc = unlock_creds (&co, h);
  if (rc == 0)
    rc = cv_unlock (h, path, &co.creds, &co.unlock_sel, &dek, &id);
  if (rc == 0)
    rc = check_seal (path, co.header, d, h, dek);
  json_t *rot = rc == 0 ? rotation_state (h, d) : NULL;
  if (rc == 0) {
    uint64_t gen;
    bool sealed = cv_hdr_sealed (h, NULL, &gen);
    if (co.json) {
      json_t *j = json_pack (
          "{s:s, s:s, s:I, s:b, s:b, s:b, s:b}", "volume", path, "uuid",
          cv_hdr_uuid (h), "unlocked_by_wrap", (json_int_t) id, "kcv_ok", 1,
          "mac_ok", 1, "wraps_bound", cv_hdr_binds_wraps (h), "sealed", sealed);
      if (sealed)
        json_object_set_new (j, "generation", json_integer ((json_int_t) gen));
      if (rot)
        json_object_set (j, "dek_rotation", rot);
      print_json (j);
      json_decref (j);
    } else {
      printf ("%s: wrap %lld unlocks the volume; key check value and header "
              "MAC verified\n",
              path, (long long) id);
      if (sealed)
        printf ("%s: wraps as sealed; the header is current (generation "
                "%llu, as the volume's seal sector says)\n",
                path, (unsigned long long) gen);
      else
        printf ("%s: no seal sector%s: a stale header would not be "
                "detected (see cryptvol-keymgr upgrade)\n",
                path, cv_hdr_binds_wraps (h) ? "" : " and wraps not bound");
      if (rot)
        rotation_state_print (rot);
    }
  }
  json_decref (rot);
  cv_hdr_free (h);
  common_free (&co);
  return exit_code (rc);
}

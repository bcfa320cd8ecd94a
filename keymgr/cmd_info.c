/* cryptvol-keymgr info: show a volume's header. Needs no key; prints no
 * secret (wrap blobs are ciphertext and are not shown in the human form). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "format/header.h"
#include "keymgr.h"

/* s from the header (untrusted), control characters replaced, or "?". */
static void
print_clean (const char *s)
{
  for (s = s ? s : "?"; *s; s++)
    putchar ((unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* A second line for a pkcs11 wrap: where its key is and the mechanism. */
static void
print_pkcs11 (const struct cv_header *h, int64_t id)
{
  const char *p11 = cv_hdr_wrap_member (h, id, "p11_mech");

  printf ("      token '");
  print_clean (cv_hdr_wrap_member (h, id, "token_label"));
  printf ("' (serial ");
  print_clean (cv_hdr_wrap_member (h, id, "token_serial"));
  printf ("), object '");
  print_clean (cv_hdr_wrap_member (h, id, "object_label"));
  printf ("' id ");
  print_clean (cv_hdr_wrap_member (h, id, "object_id"));
  printf (", mechanism ");
  print_clean (cv_hdr_wrap_member (h, id, "mech"));
  if (p11) {
    printf (" (");
    print_clean (p11);
    printf (")");
  }
  printf ("\n");
}

/* One line describing a wrap, from its common members. */
static void
print_wrap (const struct cv_header *h, const struct cv_wrap_info *w)
{
  printf ("  %-3lld %-11s ", (long long) w->id, w->type ? w->type : "?");
  if (w->ref)
    printf ("%s", w->ref);
  else if (w->kdf)
    print_clean (w->kdf);
  printf ("  created %s%s\n", w->created ? w->created : "?",
          cv_hdr_wrap_bound (h, w->id) == 0
              ? "  (added by a KMS re-wrap; sealed at the next commit "
                "with the key)"
              : "");
  if (w->type && strcmp (w->type, "pkcs11") == 0)
    print_pkcs11 (h, w->id);
}

/* What protects the header from rollback and edits (doc/format.md); info
 * reads the header only, so this is what it claims: verify checks it. */
static void
print_protection (const struct cv_header *h)
{
  uint64_t off, gen;

  if (cv_hdr_sealed (h, &off, &gen))
    printf ("seal:         sector at %llu, generation %llu; wraps %s\n",
            (unsigned long long) off, (unsigned long long) gen,
            cv_hdr_binds_wraps (h) ? "bound" : "not bound");
  else if (cv_hdr_binds_wraps (h))
    printf ("seal:         none (no room): a stale header would not be "
            "detected; wraps bound\n");
  else
    printf ("seal:         none, wraps not bound (made before them: see "
            "cryptvol-keymgr upgrade)\n");
}

/* --check: the state of w's key from its provider (KMS DescribeKey), as one
 * more line, or into the array out in JSON mode. Returns false when the key
 * cannot be described or a KMS key is not Enabled. */
static bool
check_wrap (const struct cv_header *h, const struct cv_wrap_info *w,
            const struct cv_creds *c, json_t *out)
{
  CLEANUP_FREE char *state = NULL;
  int r = cv_wrap_describe (h, w->id, c, &state);

  if (r == 0 && !state)
    return true; /* a key its provider cannot describe */
  bool ok
      = r == 0
        && (strcmp (w->type, "kms") != 0 || strncmp (state, "Enabled", 7) == 0);
  const char *shown = r == 0         ? state
                      : r == -ENOKEY ? "unknown: no credentials for it"
                                     : "unknown: see the error above";
  if (out)
    json_array_append_new (out, json_pack ("{s:I, s:s, s:b}", "id",
                                           (json_int_t) w->id, "state", shown,
                                           "usable", ok));
  else
    printf ("      key state: %s\n", shown);
  return ok;
}

/* Option handler for commands whose one own option is a flag. */
static int
set_flag (int c, const char *arg, void *ctx)
{
  *(bool *) ctx = true;
  return 0;
}

int
cmd_info (int argc, char **argv)
{
  static const struct option own[] = {
    { "check", no_argument, 0, 'c' },
    { 0, 0, 0, 0 },
  };
  static const char usage[]
      = "usage: cryptvol-keymgr info VOLUME [--header FILE] [--json]\n"
        "         [--check [--kms-region R] [--kms-endpoint URL] "
        "[--ca-bundle FILE]]\n";
  struct common_opts co;
  bool check = false, unusable = false;
  int rc = parse_args (argc, argv, own, set_flag, &check, &co, usage, 1);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  const char *path = argv[optind];
  CLEANUP_DEV struct cv_dev *d = NULL;
  struct cv_header *h = NULL;
  unsigned valid;
  if ((rc = open_header (path, co.header, &d, &h, &valid)) != 0)
    return rc;

  json_t *j = cv_hdr_to_json (h);
  json_t *rot = rotation_state (h, d);
  if (co.json) {
    if (rot)
      json_object_set (j, "dek_rotation", rot);
    json_object_set_new (j, "volume_path", json_string (path));
    if (check) {
      json_t *states = json_array ();
      struct cv_wrap_info w;
      for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++)
        unusable |= !check_wrap (h, &w, &co.creds, states);
      json_object_set_new (j, "key_states", states);
    }
    json_object_set_new (j, "header_copies_valid",
                         json_pack ("[bb]", (valid & CV_HDR_COPY0) != 0,
                                    (valid & CV_HDR_COPY1) != 0));
    print_json (j);
  } else {
    printf ("volume:       %s\n", path);
    if (co.header)
      printf ("header:       %s (detached)\n", co.header);
    printf ("uuid:         %s\n", cv_hdr_uuid (h));
    printf ("cipher:       %s, 512-bit key\n", cv_hdr_cipher (h));
    printf ("sector size:  %u\n", cv_hdr_sector_size (h));
    printf ("data offset:  %llu\n",
            (unsigned long long) cv_hdr_data_offset (h));
    printf ("size:         %llu bytes (%.2f GiB)\n",
            (unsigned long long) cv_hdr_size (h),
            cv_hdr_size (h) / 1073741824.0);
    printf ("created:      %s\n", cv_hdr_created (h));
    printf ("header copy:  seqid %llu; primary %s, secondary %s\n",
            (unsigned long long) cv_hdr_seqid (h),
            valid & CV_HDR_COPY0 ? "valid" : "CORRUPT",
            valid & CV_HDR_COPY1 ? "valid" : "CORRUPT");
    print_protection (h);
    printf ("wraps:        %zu\n", cv_hdr_wrap_count (h));
    struct cv_wrap_info w;
    for (size_t i = 0; cv_hdr_wrap_at (h, i, &w) == 0; i++) {
      print_wrap (h, &w);
      if (check)
        unusable |= !check_wrap (h, &w, &co.creds, NULL);
    }
    if (rot)
      rotation_state_print (rot);
  }
  json_decref (rot);
  json_decref (j);
  cv_hdr_free (h);
  return unusable ? EXIT_NOKEY : EXIT_OK;
}

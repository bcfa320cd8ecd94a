/* cryptvol-keymgr info: show a volume's header. Needs no key; prints no
 * secret (wrap blobs are ciphertext and are not shown in the human form). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "format/header.h"
#include "keymgr.h"

/* One line describing a wrap, from its common members. */
static void
print_wrap (json_t *w)
{
  json_t *kdf = json_object_get (w, "kdf");
  const char *type = json_string_value (json_object_get (w, "type"));
  const char *ref = json_string_value (json_object_get (w, "ref"));
  const char *created = json_string_value (json_object_get (w, "created"));

  printf ("  %-3lld %-11s ",
          (long long) json_integer_value (json_object_get (w, "id")),
          type ? type : "?");
  if (ref)
    printf ("%s", ref);
  else if (kdf)
    printf ("%s", json_string_value (json_object_get (kdf, "type"))
                      ? json_string_value (json_object_get (kdf, "type"))
                      : "?");
  printf ("  created %s\n", created ? created : "?");
}

int
cmd_info (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "help", no_argument, 0, 'h' },
    COMMON_LONGOPTS,
    { 0, 0, 0, 0 },
  };
  struct common_opts co;
  int c, rc;

  common_init (&co);
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
    int r = common_opt (&co, c, optarg);
    if (r < 0)
      return EXIT_USAGE;
    if (r == 0) {
      fprintf (c == 'h' ? stdout : stderr,
               "usage: cryptvol-keymgr info VOLUME [--header FILE] "
               "[--json]\n");
      return c == 'h' ? EXIT_OK : EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    fprintf (stderr, "usage: cryptvol-keymgr info VOLUME [--header FILE] "
                     "[--json]\n");
    return EXIT_USAGE;
  }
  const char *path = argv[optind];
  CLEANUP_CLOSE int fd = -1;
  struct cv_header *h = NULL;
  unsigned valid;
  if ((rc = open_header (path, co.header, &fd, &h, &valid)) != 0)
    return rc;

  json_t *j = cv_hdr_to_json (h);
  if (co.json) {
    json_object_set_new (j, "volume_path", json_string (path));
    json_object_set_new (j, "header_copies_valid",
                         json_pack ("[bb]", (valid & CV_HDR_COPY0) != 0,
                                    (valid & CV_HDR_COPY1) != 0));
    print_json (j);
  } else {
    printf ("volume:       %s\n", path);
    if (co.header)
      printf ("header:       %s (detached)\n", co.header);
    printf ("uuid:         %s\n", h->uuid);
    printf ("cipher:       %s, 512-bit key\n", h->cipher);
    printf ("sector size:  %u\n", h->sector_size);
    printf ("data offset:  %llu\n", (unsigned long long) h->data_offset);
    printf ("size:         %llu bytes (%.2f GiB)\n",
            (unsigned long long) h->size, h->size / 1073741824.0);
    printf ("created:      %s\n", h->created);
    printf ("header copy:  seqid %llu; primary %s, secondary %s\n",
            (unsigned long long) h->seqid,
            valid & CV_HDR_COPY0 ? "valid" : "CORRUPT",
            valid & CV_HDR_COPY1 ? "valid" : "CORRUPT");
    printf ("wraps:        %zu\n", json_array_size (h->wraps));
    size_t i;
    json_t *w;
    json_array_foreach (h->wraps, i, w) print_wrap (w);
  }
  json_decref (j);
  cv_hdr_free (h);
  return EXIT_OK;
}

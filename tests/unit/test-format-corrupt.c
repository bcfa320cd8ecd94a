/* Corrupt-image generator and a table of must-load / must-reject header
 * images, one case per row. Each row asserts cv_hdr_read's return code, the
 * valid-copy mask, and a key phrase of the one message logged.
 *
 * The generator edits bytes at the offsets of doc/format.md (written out here
 * again, so a layout change that forgets the spec fails this test) and, like
 * cryptsetup's fuzz harnesses, recomputes the checksum with OpenSSL after an
 * edit so that the parser itself is reached. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/cleanup.h"
#include "common/fdio.h"
#include "format/header-internal.h"
#include "harness.h"

#define NAME "vol.img"
#define GiB (1024ULL * 1024 * 1024)

/* doc/format.md, "Binary header". */
#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_JSON_LEN 12
#define OFF_HDR_OFFSET 16
#define OFF_SEQID 24
#define OFF_UUID 32
#define OFF_CSUM 48
#define BOTH 3 /* copy mask */

static uint8_t img[CV_HDR_AREA_SIZE];
static size_t img_len;
static struct cv_header *base;

static uint8_t *
cp (int copy)
{
  return img + (size_t) copy * CV_HDR_COPY_SIZE;
}

static uint32_t
json_len (int copy)
{
  return cv_get_be32 (cp (copy) + OFF_JSON_LEN);
}

/* Recompute the checksum of a copy: SHA-256 over the binary header with the
 * checksum field zero, followed by json_len bytes of JSON. */
static void
fix_csum (int copy)
{
  size_t len = CV_HDR_BIN_SIZE + json_len (copy);
  memset (cp (copy) + OFF_CSUM, 0, 32);
  SHA256 (cp (copy), len, cp (copy) + OFF_CSUM);
}

static void
set_json_text (int copy, const char *text)
{
  size_t len = strlen (text);
  if (len > CV_HDR_JSON_MAX)
    abort ();
  memset (cp (copy) + CV_HDR_BIN_SIZE, 0, CV_HDR_JSON_MAX);
  memcpy (cp (copy) + CV_HDR_BIN_SIZE, text, len);
  cv_put_be32 (cp (copy) + OFF_JSON_LEN, (uint32_t) len);
  fix_csum (copy);
}

/* Edit the canonical JSON text of the copies in mask: fn gets a buffer holding
 * it and rewrites it in place. */
static void
edit_text (int mask, void (*fn) (char *text, size_t cap))
{
  static char text[CV_HDR_JSON_MAX + 1];
  for (int copy = 0; copy < 2; copy++) {
    if (!(mask & (1 << copy)))
      continue;
    memcpy (text, cp (copy) + CV_HDR_BIN_SIZE, json_len (copy));
    text[json_len (copy)] = '\0';
    fn (text, sizeof text);
    set_json_text (copy, text);
  }
}

/* Edit the JSON metadata of the copies in mask as a tree. */
static void
edit_json (int mask, void (*fn) (json_t *root, json_t *volume))
{
  for (int copy = 0; copy < 2; copy++) {
    if (!(mask & (1 << copy)))
      continue;
    json_auto_t *root = json_loadb ((char *) cp (copy) + CV_HDR_BIN_SIZE,
                                    json_len (copy), 0, NULL);
    if (!root)
      abort ();
    fn (root, json_object_get (root, "volume"));
    CLEANUP_FREE char *text = json_dumps (root, JSON_COMPACT | JSON_SORT_KEYS);
    set_json_text (copy, text);
  }
}

/* Set a big-endian binary field of 2 or 8 bytes in the copies in mask, fixing
 * the checksum. */
static void
set_field (int mask, size_t off, int bytes, uint64_t v)
{
  for (int copy = 0; copy < 2; copy++)
    if (mask & (1 << copy)) {
      if (bytes == 2)
        cv_put_be16 (cp (copy) + off, (uint16_t) v);
      else if (bytes == 8)
        cv_put_be64 (cp (copy) + off, v);
      else
        abort ();
      fix_csum (copy);
    }
}

/* --- the mutations, one per case --- */

static void
m_none (void)
{}
static void
m_magic_both (void)
{
  memcpy (cp (0), "NOTMAGIC", 8);
  memcpy (cp (1), "NOTMAGIC", 8);
}
static void
m_magic_0 (void)
{
  memset (cp (0) + OFF_MAGIC, 0, 8);
}
static void
m_magic_1 (void)
{
  memcpy (cp (1), "LUKS\xba\xbe\0\2", 8);
}
static void
m_swapped (void)
{
  static uint8_t tmp[CV_HDR_COPY_SIZE];
  memcpy (tmp, cp (0), CV_HDR_COPY_SIZE);
  memcpy (cp (0), cp (1), CV_HDR_COPY_SIZE);
  memcpy (cp (1), tmp, CV_HDR_COPY_SIZE);
}
static void
m_csum_0 (void)
{
  cp (0)[CV_HDR_BIN_SIZE + 5] ^= 1;
}
static void
m_csum_1 (void)
{
  cp (1)[OFF_UUID] ^= 0x80;
}
static void
m_torn_0 (void)
{
  size_t from = CV_HDR_BIN_SIZE + json_len (0) / 2;
  memset (cp (0) + from, 0, CV_HDR_COPY_SIZE - from);
}
static void
m_padding (void)
{
  /* Bytes after json_len are not covered by the checksum; readers ignore. */
  memset (cp (0) + CV_HDR_BIN_SIZE + json_len (0) + 1, 'x', 100);
}
static void
m_csum_both (void)
{
  m_csum_0 ();
  cp (1)[CV_HDR_BIN_SIZE + 5] ^= 1;
}
static void
m_json_len_0 (void)
{
  cv_put_be32 (cp (0) + OFF_JSON_LEN, 0);
  cv_put_be32 (cp (1) + OFF_JSON_LEN, 0);
}
static void
m_json_len_big (void)
{
  cv_put_be32 (cp (0) + OFF_JSON_LEN, CV_HDR_JSON_MAX + 1);
  cv_put_be32 (cp (1) + OFF_JSON_LEN, CV_HDR_JSON_MAX + 1);
}
static void
m_hdr_offset (void)
{
  set_field (1, OFF_HDR_OFFSET, 8, CV_HDR_COPY_SIZE);
  set_field (2, OFF_HDR_OFFSET, 8, 0);
}
static void
j_size_2g (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "size", json_integer (2 * GiB));
}
static void
m_seqid_1_newer (void)
{
  edit_json (2, j_size_2g);
  set_field (2, OFF_SEQID, 8, 9);
}
static void
m_seqid_0_newer (void)
{
  set_field (1, OFF_SEQID, 8, 9);
}
static void
m_seqid_range (void)
{
  set_field (BOTH, OFF_SEQID, 8, (uint64_t) INT64_MAX + 1);
}
static void
m_version_both (void)
{
  set_field (BOTH, OFF_VERSION, 2, 2);
}
static void
m_version_0 (void)
{
  set_field (1, OFF_VERSION, 2, 2);
}
static void
j_version (json_t *root, json_t *vol)
{
  json_object_set_new (root, "version", json_integer (2));
}
static void
m_json_version (void)
{
  edit_json (BOTH, j_version);
}
static void
j_cipher (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "cipher", json_string ("serpent-xts-plain64"));
}
static void
m_cipher (void)
{
  edit_json (BOTH, j_cipher);
}
static void
j_key_bits (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "key_bits", json_integer (256));
}
static void
m_key_bits (void)
{
  edit_json (BOTH, j_key_bits);
}
static void
j_requirement (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "requirements",
                       json_pack ("[s,s]", "online-reencrypt", "foo"));
}
static void
m_requirement (void)
{
  edit_json (BOTH, j_requirement);
}
static void
j_requirements_object (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "requirements", json_object ());
}
static void
m_requirements_object (void)
{
  edit_json (BOTH, j_requirements_object);
}
static void
j_requirement_type (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "requirements", json_pack ("[i]", 1));
}
static void
m_requirement_type (void)
{
  edit_json (BOTH, j_requirement_type);
}
static void
t_duplicate (char *text, size_t cap)
{
  /* {"mac":... -> {"version":1,"mac":...: a second "version". */
  memmove (text + 13, text + 1, strlen (text));
  memcpy (text + 1, "\"version\":1,", 12);
}
static void
m_duplicate (void)
{
  edit_text (BOTH, t_duplicate);
}
static void
j_sector_size (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "sector_size", json_integer (1000));
}
static void
m_sector_size (void)
{
  edit_json (BOTH, j_sector_size);
}
static void
j_size (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "size", json_integer (GiB + 512));
}
static void
m_size (void)
{
  edit_json (BOTH, j_size);
}
static void
j_size_zero (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "size", json_integer (0));
}
static void
m_size_zero (void)
{
  edit_json (BOTH, j_size_zero);
}
static void
j_data_offset (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "data_offset", json_integer (1000));
}
static void
m_data_offset (void)
{
  edit_json (BOTH, j_data_offset);
}
static void
j_data_offset_neg (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "data_offset", json_integer (-4096));
}
static void
m_data_offset_neg (void)
{
  edit_json (BOTH, j_data_offset_neg);
}
static void
j_size_string (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "size", json_string ("1G"));
}
static void
m_size_string (void)
{
  edit_json (BOTH, j_size_string);
}
static void
t_trailing (char *text, size_t cap)
{
  strcat (text, " x");
}
static void
m_trailing (void)
{
  edit_text (BOTH, t_trailing);
}
static void
t_not_object (char *text, size_t cap)
{
  strcpy (text, "[1,2]");
}
static void
m_not_object (void)
{
  edit_text (BOTH, t_not_object);
}
static void
j_no_uuid (json_t *root, json_t *vol)
{
  json_object_del (vol, "uuid");
}
static void
m_no_uuid (void)
{
  edit_json (BOTH, j_no_uuid);
}
static void
j_uuid_other (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "uuid",
                       json_string ("00000000-0000-4000-8000-000000000000"));
}
static void
m_uuid_other (void)
{
  edit_json (BOTH, j_uuid_other);
}
static void
j_created (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "created",
                       json_string ("2024-01-01T00:00:00.000000000000000000Z"));
}
static void
m_created (void)
{
  edit_json (BOTH, j_created);
}
static void
j_kcv (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "kcv", json_string ("00ff"));
}
static void
m_kcv (void)
{
  edit_json (BOTH, j_kcv);
}
static void
j_no_mac (json_t *root, json_t *vol)
{
  json_object_del (root, "mac");
}
static void
m_no_mac (void)
{
  edit_json (BOTH, j_no_mac);
}
static void
j_top_member (json_t *root, json_t *vol)
{
  json_object_set_new (root, "foo", json_true ());
}
static void
m_top_member (void)
{
  edit_json (BOTH, j_top_member);
}
static void
j_volume_not_object (json_t *root, json_t *vol)
{
  json_object_set_new (root, "volume", json_array ());
}
static void
m_volume_not_object (void)
{
  edit_json (BOTH, j_volume_not_object);
}
static void
j_wraps_object (json_t *root, json_t *vol)
{
  json_object_set_new (root, "wraps", json_object ());
}
static void
m_wraps_object (void)
{
  edit_json (BOTH, j_wraps_object);
}
static void
j_wrap_string (json_t *root, json_t *vol)
{
  json_array_append_new (json_object_get (root, "wraps"), json_string ("w"));
}
static void
m_wrap_string (void)
{
  edit_json (BOTH, j_wrap_string);
}
static void
j_wrap_no_type (json_t *root, json_t *vol)
{
  json_object_del (json_array_get (json_object_get (root, "wraps"), 0), "type");
}
static void
m_wrap_no_type (void)
{
  edit_json (BOTH, j_wrap_no_type);
}
static void
j_wrap_dup_id (json_t *root, json_t *vol)
{
  json_array_append_new (json_object_get (root, "wraps"),
                         json_pack ("{s:i,s:s}", "id", 1, "type", "kms"));
}
static void
m_wrap_dup_id (void)
{
  edit_json (BOTH, j_wrap_dup_id);
}
static void
j_extra (json_t *root, json_t *vol)
{
  json_object_set_new (vol, "rotation", json_pack ("{s:i}", "done", 7));
}
static void
m_extra (void)
{
  edit_json (BOTH, j_extra);
}
static void
m_other_volume (void)
{
  struct cv_header *o = NULL;
  if (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, GiB, &o) < 0
      || cv_hdr_encode (o, 1, cp (1)) < 0)
    abort ();
  cv_hdr_free (o);
}
static void
m_short (void)
{
  img_len = CV_HDR_AREA_SIZE - 1;
}
static void
m_empty (void)
{
  img_len = 0;
}

/* --- checks on what loaded --- */

static bool
c_size_2g (const struct cv_header *h)
{
  return h->seqid == 9 && h->size == 2 * GiB;
}
static bool
c_seqid_9 (const struct cv_header *h)
{
  return h->seqid == 9 && h->size == GiB;
}
static bool
c_base (const struct cv_header *h)
{
  return h->seqid == 5 && strcmp (h->uuid, base->uuid) == 0 && h->size == GiB
         && h->sector_size == 4096 && json_array_size (h->wraps) == 1;
}
static bool
c_extra (const struct cv_header *h)
{
  json_t *r = json_object_get (h->extra, "rotation");
  return c_base (h) && json_integer_value (json_object_get (r, "done")) == 7;
}

struct row {
  const char *name;
  void (*mutate) (void);
  int rc;
  unsigned valid;     /* for rc == 0 */
  const char *phrase; /* in the one message logged; NULL: nothing logged */
  bool (*check) (const struct cv_header *h);
};

#define V0 CV_HDR_COPY0
#define V1 CV_HDR_COPY1
#define NOT_CV "is not a cryptvol volume (no header magic)"
#define BOTH_BAD "both header copies of " NAME " are corrupt (primary: "

static const struct row rows[] = {
  /* must load */
  { "pristine", m_none, 0, V0 | V1, NULL, c_base },
  { "bad magic in primary", m_magic_0, 0, V1,
    "primary header copy of " NAME " is corrupt (no header magic); opened "
    "from the secondary copy",
    c_base },
  { "bad magic in secondary", m_magic_1, 0, V0,
    "secondary header copy of " NAME " is corrupt (no header magic); opened "
    "from the primary copy",
    c_base },
  { "checksum mismatch in primary", m_csum_0, 0, V1,
    "primary header copy of " NAME " is corrupt (checksum mismatch); opened "
    "from the secondary copy; the next header update rewrites it",
    c_base },
  { "checksum mismatch in secondary", m_csum_1, 0, V0,
    "secondary header copy of " NAME " is corrupt (checksum mismatch)",
    c_base },
  { "torn primary", m_torn_0, 0, V1, "(checksum mismatch)", c_base },
  { "garbage in the padding after the JSON", m_padding, 0, V0 | V1, NULL,
    c_base },
  { "seqid: newer secondary wins", m_seqid_1_newer, 0, V0 | V1,
    "(primary seqid 5, secondary seqid 9): a header update was interrupted; "
    "opened from the newer secondary copy",
    c_size_2g },
  { "seqid: newer primary wins", m_seqid_0_newer, 0, V0 | V1,
    "opened from the newer primary copy", c_seqid_9 },
  { "unknown volume member kept", m_extra, 0, V0 | V1, NULL, c_extra },
  /* must reject */
  { "bad magic in both", m_magic_both, -EINVAL, 0,
    NAME " " NOT_CV "; if it has a detached header, pass it with header=",
    NULL },
  { "copies swapped", m_swapped, -EBADMSG, 0,
    BOTH_BAD "it holds the magic of the secondary copy", NULL },
  { "both checksums bad", m_csum_both, -EBADMSG, 0,
    "both header copies of " NAME " are corrupt (checksum mismatch); restore "
    "the header from a backup",
    NULL },
  { "json_len 0", m_json_len_0, -EBADMSG, 0, "JSON length 0 out of range",
    NULL },
  { "json_len too large", m_json_len_big, -EBADMSG, 0,
    "JSON length 61441 out of range", NULL },
  { "hdr_offset wrong", m_hdr_offset, -EBADMSG, 0,
    BOTH_BAD "its stored offset 65536 is not its position 0", NULL },
  { "seqid out of range", m_seqid_range, -EBADMSG, 0,
    "seqid 9223372036854775808 out of range", NULL },
  { "unknown binary version", m_version_both, -EPROTONOSUPPORT, 0,
    "primary header copy of " NAME ": unsupported format version 2; open it "
    "with a newer cryptvol",
    NULL },
  { "unknown version in one copy: no rollback", m_version_0, -EPROTONOSUPPORT,
    0, "primary header copy of " NAME ": unsupported format", NULL },
  { "unknown JSON version", m_json_version, -EPROTONOSUPPORT, 0,
    "unsupported metadata version 2", NULL },
  { "unknown cipher", m_cipher, -EPROTONOSUPPORT, 0,
    "unsupported cipher \"serpent-xts-plain64\"", NULL },
  { "unknown key size", m_key_bits, -EPROTONOSUPPORT, 0,
    "unsupported key size of 256 bits", NULL },
  { "unknown requirement", m_requirement, -EPROTONOSUPPORT, 0,
    "requires features this cryptvol does not have: online-reencrypt, foo",
    NULL },
  { "requirements not an array", m_requirements_object, -EBADMSG, 0,
    "volume.requirements is not an array", NULL },
  { "requirement not a string", m_requirement_type, -EBADMSG, 0,
    "volume.requirements[0] is not a string", NULL },
  { "duplicate JSON key", m_duplicate, -EBADMSG, 0,
    "JSON metadata does not parse: duplicate object key", NULL },
  { "sector size 1000", m_sector_size, -EBADMSG, 0,
    "sector size 1000 is not 512 or 4096", NULL },
  { "size not a multiple of the sector size", m_size, -EBADMSG, 0,
    "size 1073742336 is not a positive multiple of the sector size 4096",
    NULL },
  { "size zero", m_size_zero, -EBADMSG, 0, "size 0 is not a positive", NULL },
  { "data_offset not a multiple", m_data_offset, -EBADMSG, 0,
    "data offset 1000 is not a multiple of the sector size 4096", NULL },
  { "data_offset negative", m_data_offset_neg, -EBADMSG, 0,
    "volume.data_offset is negative", NULL },
  { "size is a string", m_size_string, -EBADMSG, 0,
    "volume.size is not an integer", NULL },
  { "trailing garbage after JSON", m_trailing, -EBADMSG, 0,
    "does not parse: end of file expected", NULL },
  { "JSON not an object", m_not_object, -EBADMSG, 0,
    "the JSON metadata is not a JSON object", NULL },
  { "missing uuid", m_no_uuid, -EBADMSG, 0, "volume.uuid is missing", NULL },
  { "uuid differs from the binary header", m_uuid_other, -EBADMSG, 0,
    "volume.uuid \"00000000-0000-4000-8000-000000000000\" does not match the "
    "binary header's",
    NULL },
  { "created too long", m_created, -EBADMSG, 0,
    "volume.created is not a timestamp", NULL },
  { "kcv not 16 bytes", m_kcv, -EBADMSG, 0, "volume.kcv is not 16 bytes of hex",
    NULL },
  { "missing mac", m_no_mac, -EBADMSG, 0, "mac is missing", NULL },
  { "unknown top-level member", m_top_member, -EBADMSG, 0,
    "unknown top-level member \"foo\"", NULL },
  { "volume not an object", m_volume_not_object, -EBADMSG, 0,
    "volume is not an object", NULL },
  { "wraps not an array", m_wraps_object, -EBADMSG, 0, "wraps is not an array",
    NULL },
  { "wrap not an object", m_wrap_string, -EBADMSG, 0,
    "wraps[1] is not an object", NULL },
  { "wrap without type", m_wrap_no_type, -EBADMSG, 0,
    "wraps[0].type is missing", NULL },
  { "duplicate wrap id", m_wrap_dup_id, -EBADMSG, 0,
    "wraps[0] and wraps[1] have id 1", NULL },
  { "copies of different volumes", m_other_volume, -EBADMSG, 0,
    "the header copies of " NAME " belong to different volumes", NULL },
  { "file too short", m_short, -EBADMSG, 0,
    NAME " is 131071 bytes, too short to hold a cryptvol header", NULL },
  { "empty file", m_empty, -EBADMSG, 0, "too short to hold a cryptvol header",
    NULL },
};

static unsigned
lines (const char *s)
{
  unsigned n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static void
run_row (const struct row *row, const char *path)
{
  struct cv_header *h = NULL;
  unsigned valid = 0;

  /* The fixture: two good copies, seqid 5, one wrap. */
  memset (img, 0, sizeof img);
  if (cv_hdr_encode (base, 0, cp (0)) < 0
      || cv_hdr_encode (base, 1, cp (1)) < 0)
    abort ();
  img_len = sizeof img;
  row->mutate ();

  CLEANUP_CLOSE int fd = open (path, O_RDWR | O_TRUNC);
  if (fd < 0 || cv_write_all (fd, img, img_len) < 0)
    abort ();
  harness_log_clear ();
  int r = cv_hdr_read (FDEV (fd, NAME), &h, &valid);
  const char *log = harness_logged ();

  CHECK (r == row->rc, "%s: returned %d (%s), want %d", row->name, r,
         strerror (-r), row->rc);
  if (row->phrase) {
    CHECK (strstr (log, row->phrase), "%s: log lacks \"%s\":\n%s", row->name,
           row->phrase, log);
    CHECK (lines (log) == 1, "%s: want one message:\n%s", row->name, log);
    CHECK (strncmp (log, row->rc ? "error: " : "warning: ", row->rc ? 7 : 9)
               == 0,
           "%s: wrong level:\n%s", row->name, log);
  } else
    CHECK (log[0] == '\0', "%s: unexpected message:\n%s", row->name, log);
  if (r == 0) {
    CHECK (valid == row->valid, "%s: valid %u, want %u", row->name, valid,
           row->valid);
    CHECK (!row->check || row->check (h), "%s: loaded header is wrong",
           row->name);
  }
  cv_hdr_free (h);
}

int
main (void)
{
  char path[] = "/tmp/cv-format-corrupt-XXXXXX";

  harness_init ();
  int fd = mkstemp (path);
  if (fd < 0) {
    perror ("mkstemp");
    return 1;
  }
  close (fd);
  if (cv_hdr_new (4096, CV_DATA_OFFSET_DEFAULT, GiB, &base) < 0)
    return 1;
  base->seqid = 5;
  json_array_append_new (base->wraps, json_pack ("{s:i,s:s,s:s}", "id", 1,
                                                 "type", "file", "ref", "/k"));

  for (size_t i = 0; i < ARRAY_SIZE (rows); i++)
    run_row (&rows[i], path);

  cv_hdr_free (base);
  unlink (path);
  return harness_done ("test-format-corrupt");
}

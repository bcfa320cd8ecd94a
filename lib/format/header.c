/* The on-disk header: encoding and decoding of the two binary+JSON copies,
 * reading (copy selection and recovery), committing, and the DEK-derived key
 * check value and MAC. doc/format.md is the byte-exact spec; the offsets
 * below are its table. */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/clock.h"
#include "common/bytes.h"
#include "common/cleanup.h"
#include "common/encode.h"
#include "common/fault.h"
#include "common/fdio.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header-internal.h"

/* Binary header of one copy: every integer big-endian. Bytes from
 * BIN_USED to CV_HDR_BIN_SIZE are written as zero and covered by the checksum;
 * readers ignore them. */
#define OFF_MAGIC 0       /* 8 bytes, per copy */
#define OFF_VERSION 8     /* u16, CV_FORMAT_VERSION */
#define OFF_RESERVED 10   /* u16, zero */
#define OFF_JSON_LEN 12   /* u32, bytes of JSON after the binary header */
#define OFF_HDR_OFFSET 16 /* u64, this copy's offset in the header area */
#define OFF_SEQID 24      /* u64, bumped by every commit */
#define OFF_UUID 32       /* 16 bytes, the volume UUID (binary) */
#define OFF_CSUM 48       /* 32 bytes, SHA-256, see copy_checksum */
#define BIN_USED 80
#define MAGIC_LEN 8
#define CSUM_LEN 32
#define UUID_BIN_LEN 16
#define JSON_MIN 2 /* "{}" */
#define DEK_LEN CV_DEK_LEN
#define KCV_INFO "cryptvol v1 key check value"
#define MAC_INFO "cryptvol v1 metadata mac"
#define CANONICAL (JSON_COMPACT | JSON_SORT_KEYS)
#define WHY_LEN 256

static_assert (OFF_CSUM + CSUM_LEN == BIN_USED, "binary header table");
static_assert (BIN_USED <= CV_HDR_BIN_SIZE, "binary header fits");
static_assert (CV_HDR_JSON_MAX + CV_HDR_BIN_SIZE == CV_HDR_COPY_SIZE,
               "JSON area fills the rest of a copy");
static_assert (sizeof ((struct cv_header *) 0)->kcv == 16, "kcv size");
static_assert (sizeof ((struct cv_header *) 0)->mac == 32, "mac size");

static const uint8_t magic[2][MAGIC_LEN] = {
  { 'C', 'R', 'Y', 'P', 'T', 'V', 'L', 0xba },
  { 'L', 'V', 'T', 'P', 'Y', 'R', 'C', 0xba },
};
static const char *const copy_name[2] = { "primary", "secondary" };

/* Members of "volume" this version interprets; all others go to h->extra. */
static const char *const volume_known[] = {
  "uuid",    "cipher", "key_bits",     "sector_size", "data_offset",  "size",
  "created", "kcv",    "requirements", "seal",        "wrap_binding",
};

/* The features a volume may require (volume.requirements), each with the
 * member that carries it. A reader that lacks one refuses the volume: an
 * older cryptvol would neither check nor keep up the protection. */
#define REQ_SEAL "seal"
#define REQ_BINDING "wrap-binding"

static void
hdr_freep (struct cv_header **h)
{
  cv_hdr_free (*h);
}
#define CLEANUP_HDR __attribute__ ((cleanup (hdr_freep)))

/* Format a reason into why and return r: the decoders describe what is wrong
 * and their callers decide whether it is a warning or an error. */
static int __attribute__ ((format (printf, 4, 5)))
bad (char *why, size_t n, int r, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (why, n, fmt, ap);
  va_end (ap);
  return r;
}

/* Is s a UUID in the canonical lower-case 8-4-4-4-12 text form? */
static bool
uuid_text_ok (const char *s)
{
  if (strlen (s) != CV_UUID_LEN)
    return false;
  for (int i = 0; i < CV_UUID_LEN; i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-'
             : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  }
  return true;
}

static void
uuid_to_text (const uint8_t b[UUID_BIN_LEN], char out[CV_UUID_LEN + 1])
{
  snprintf (out, CV_UUID_LEN + 1,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
            b[11], b[12], b[13], b[14], b[15]);
}

/* Binary form of a UUID text already checked by uuid_text_ok. */
static void
uuid_from_text (const char *s, uint8_t b[UUID_BIN_LEN])
{
  char hex[2 * UUID_BIN_LEN + 1];
  size_t j = 0;

  for (size_t i = 0; s[i]; i++)
    if (s[i] != '-')
      hex[j++] = s[i];
  hex[j] = '\0';
  int r = cv_hex_decode (hex, b, UUID_BIN_LEN);
  assert (r == 0);
  (void) r;
}

static void
set_uuid (struct cv_header *h, const char *uuid)
{
  snprintf (h->uuid, sizeof h->uuid, "%s", uuid);
  snprintf (h->binding, sizeof h->binding, "%s%s", CV_BINDING_PREFIX, uuid);
}

/* The geometry rules shared by cv_hdr_new, the encoder and the decoder. */
static bool
geometry_ok (uint32_t sector_size, uint64_t data_offset, uint64_t size,
             char *why, size_t n)
{
  if (sector_size != 512 && sector_size != 4096) {
    bad (why, n, 0, "sector size %" PRIu32 " is not 512 or 4096", sector_size);
    return false;
  }
  if (size == 0 || size % sector_size) {
    bad (why, n, 0,
         "size %" PRIu64 " is not a positive multiple of the sector size "
         "%" PRIu32,
         size, sector_size);
    return false;
  }
  if (data_offset % sector_size) {
    bad (why, n, 0,
         "data offset %" PRIu64 " is not a multiple of the sector size "
         "%" PRIu32,
         data_offset, sector_size);
    return false;
  }
  if (data_offset > INT64_MAX || size > INT64_MAX - data_offset) {
    bad (why, n, 0,
         "data offset %" PRIu64 " + size %" PRIu64 " exceeds 2^63 - 1",
         data_offset, size);
    return false;
  }
  return true;
}

/* SHA-256 over the first CV_HDR_BIN_SIZE + json_len bytes of a copy, with the
 * checksum field taken as zero. */
static int
copy_checksum (const uint8_t *copy, uint32_t json_len, uint8_t out[CSUM_LEN])
{
  size_t len = CV_HDR_BIN_SIZE + (size_t) json_len;
  CLEANUP_FREE uint8_t *tmp = malloc (len);

  if (!tmp)
    return -ENOMEM;
  memcpy (tmp, copy, len);
  memset (tmp + OFF_CSUM, 0, CSUM_LEN);
  return cv_sha256 (tmp, len, out);
}

/* The "volume" object of h, as stored and MAC'd: h->extra's members plus the
 * ones this version interprets. NULL when out of memory. */
static json_t *
volume_json (const struct cv_header *h)
{
  json_auto_t *v = json_object ();
  CLEANUP_FREE char *kcv = NULL;
  int e = 0;

  if (!v || cv_hex_encode (h->kcv, sizeof h->kcv, &kcv) < 0)
    return NULL;
  if (h->extra)
    e |= json_object_update (v, h->extra);
  e |= json_object_set_new (v, "uuid", json_string (h->uuid));
  e |= json_object_set_new (v, "cipher", json_string (h->cipher));
  e |= json_object_set_new (v, "key_bits", json_integer (DEK_LEN * 8));
  e |= json_object_set_new (v, "sector_size", json_integer (h->sector_size));
  e |= json_object_set_new (v, "data_offset",
                            json_integer ((json_int_t) h->data_offset));
  e |= json_object_set_new (v, "size", json_integer ((json_int_t) h->size));
  e |= json_object_set_new (v, "created", json_string (h->created));
  e |= json_object_set_new (v, "kcv", json_string (kcv));
  json_t *req = json_array ();
  e |= json_object_set_new (v, "requirements", req);
  if (h->has_seal) {
    e |= json_array_append_new (req, json_string (REQ_SEAL));
    e |= json_object_set_new (
        v, "seal",
        json_pack ("{s:I, s:I}", "offset", (json_int_t) h->seal_offset,
                   "generation", (json_int_t) h->generation));
  }
  if (h->bound) {
    e |= json_array_append_new (req, json_string (REQ_BINDING));
    e |= json_object_set_new (v, "wrap_binding",
                              json_pack ("{s:I, s:O}", "next_wrap_id",
                                         (json_int_t) h->bound_next, "wraps",
                                         h->bound));
  }
  return e ? NULL : STEAL (v);
}

/* The whole JSON metadata of h (without seqid). NULL when out of memory. */
static json_t *
root_json (const struct cv_header *h)
{
  json_auto_t *root = json_object ();
  CLEANUP_FREE char *mac = NULL;
  int e = 0;

  if (!root || cv_hex_encode (h->mac, sizeof h->mac, &mac) < 0)
    return NULL;
  e |= json_object_set_new (root, "version", json_integer (CV_FORMAT_VERSION));
  e |= json_object_set_new (root, "volume", volume_json (h));
  e |= json_object_set_new (root, "mac", json_string (mac));
  e |= json_object_set_new (
      root, "wraps", h->wraps ? json_deep_copy (h->wraps) : json_array ());
  e |= json_object_set_new (
      root, "next_wrap_id",
      json_integer ((json_int_t) cv_hdr_next_wrap_id (h)));
  return e ? NULL : STEAL (root);
}

/* A member of obj (whose name in messages is path) of the given type. */
static int
member (json_t *obj, const char *path, const char *key, json_type type,
        json_t **v, char *why, size_t n)
{
  static const char *const type_name[] = {
    [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
    [JSON_STRING] = "a string",  [JSON_INTEGER] = "an integer",
    [JSON_REAL] = "a number",    [JSON_TRUE] = "a boolean",
    [JSON_FALSE] = "a boolean",  [JSON_NULL] = "null",
  };

  *v = json_object_get (obj, key);
  if (!*v)
    return bad (why, n, -EBADMSG, "%s%s is missing", path, key);
  if (json_typeof (*v) != type)
    return bad (why, n, -EBADMSG, "%s%s is not %s", path, key, type_name[type]);
  return 0;
}

static int
member_u64 (json_t *obj, const char *path, const char *key, uint64_t *out,
            char *why, size_t n)
{
  json_t *v;
  int r = member (obj, path, key, JSON_INTEGER, &v, why, n);

  if (r < 0)
    return r;
  if (json_integer_value (v) < 0)
    return bad (why, n, -EBADMSG, "%s%s is negative", path, key);
  *out = (uint64_t) json_integer_value (v);
  return 0;
}

static int
member_hex (json_t *obj, const char *path, const char *key, uint8_t *out,
            size_t len, char *why, size_t n)
{
  json_t *v;
  int r = member (obj, path, key, JSON_STRING, &v, why, n);

  if (r < 0)
    return r;
  if (cv_hex_decode (json_string_value (v), out, len) < 0)
    return bad (why, n, -EBADMSG, "%s%s is not %zu bytes of hex", path, key,
                len);
  return 0;
}

static bool
is_known (const char *key)
{
  for (size_t i = 0; i < ARRAY_SIZE (volume_known); i++)
    if (strcmp (key, volume_known[i]) == 0)
      return true;
  return false;
}

/* volume.seal, present exactly when required: the seal sector lies in the
 * data file before the data area, 4096-aligned (the layout checks that it
 * misses the header copies: cv_seal_*). */
static int
parse_seal (json_t *vol, bool required, struct cv_header *h, char *why,
            size_t n)
{
  json_t *seal = json_object_get (vol, "seal");
  int r;

  if (!required)
    return seal ? bad (why, n, -EBADMSG,
                       "volume.seal without the requirement \"" REQ_SEAL "\"")
                : 0;
  if ((r = member (vol, "volume.", "seal", JSON_OBJECT, &seal, why, n)) < 0
      || (r = member_u64 (seal, "volume.seal.", "offset", &h->seal_offset, why,
                          n))
             < 0
      || (r = member_u64 (seal, "volume.seal.", "generation", &h->generation,
                          why, n))
             < 0)
    return r;
  if (json_object_size (seal) != 2)
    return bad (why, n, -EBADMSG, "volume.seal has unknown members");
  if (h->data_offset < CV_SEAL_SIZE || h->seal_offset % CV_SEAL_SIZE
      || h->seal_offset > h->data_offset - CV_SEAL_SIZE)
    return bad (why, n, -EBADMSG,
                "the seal sector at %" PRIu64
                " is not a 4096-byte block before the data area (%" PRIu64 ")",
                h->seal_offset, h->data_offset);
  h->has_seal = true;
  return 0;
}

/* volume.wrap_binding, present exactly when required. */
static int
parse_binding (json_t *vol, bool required, struct cv_header *h, char *why,
               size_t n)
{
  json_t *b = json_object_get (vol, "wrap_binding"), *wraps, *v;
  uint64_t next;
  const char *key;
  int r;

  if (!required)
    return b ? bad (why, n, -EBADMSG,
                    "volume.wrap_binding without the requirement "
                    "\"" REQ_BINDING "\"")
             : 0;
  if ((r = member (vol, "volume.", "wrap_binding", JSON_OBJECT, &b, why, n)) < 0
      || (r = member_u64 (b, "volume.wrap_binding.", "next_wrap_id", &next, why,
                          n))
             < 0
      || (r = member (b, "volume.wrap_binding.", "wraps", JSON_OBJECT, &wraps,
                      why, n))
             < 0)
    return r;
  if (json_object_size (b) != 2)
    return bad (why, n, -EBADMSG, "volume.wrap_binding has unknown members");
  json_object_foreach (wraps, key, v)
  {
    uint8_t d[32];
    char *end;
    errno = 0;
    long long id = strtoll (key, &end, 10);
    if (!*key || *end || errno || id < 0 || !json_is_string (v)
        || cv_hex_decode (json_string_value (v), d, sizeof d) < 0)
      return bad (why, n, -EBADMSG,
                  "volume.wrap_binding.wraps has a malformed entry \"%.32s\"",
                  key);
  }
  h->bound = json_incref (wraps);
  h->bound_next = (int64_t) next;
  return 0;
}

/* Fill h from the "volume" object; uuid is the binary header's. */
static int
parse_volume (json_t *vol, const char *uuid, struct cv_header *h, char *why,
              size_t n)
{
  const char *key;
  json_t *v;
  uint64_t u;
  bool seal = false, binding = false;
  int r;

  /* What this version cannot handle first: it explains everything else. */
  v = json_object_get (vol, "requirements");
  if (v) {
    if (!json_is_array (v))
      return bad (why, n, -EBADMSG, "volume.requirements is not an array");
    char list[WHY_LEN] = "";
    size_t i;
    json_t *req;
    json_array_foreach (v, i, req)
    {
      const char *name = json_string_value (req);
      if (!name)
        return bad (why, n, -EBADMSG,
                    "volume.requirements[%zu] is not a string", i);
      if (strcmp (name, REQ_SEAL) == 0 && !seal)
        seal = true;
      else if (strcmp (name, REQ_BINDING) == 0 && !binding)
        binding = true;
      else {
        size_t used = strlen (list);
        snprintf (list + used, sizeof list - used, "%s%s", used ? ", " : "",
                  name);
      }
    }
    if (list[0])
      return bad (why, n, -EPROTONOSUPPORT,
                  "it requires features this cryptvol does not have: %s", list);
  }
  if ((r = member (vol, "volume.", "cipher", JSON_STRING, &v, why, n)) < 0)
    return r;
  if (strcmp (json_string_value (v), CV_CIPHER) != 0)
    return bad (why, n, -EPROTONOSUPPORT, "unsupported cipher \"%s\"",
                json_string_value (v));
  snprintf (h->cipher, sizeof h->cipher, "%s", CV_CIPHER);
  if ((r = member_u64 (vol, "volume.", "key_bits", &u, why, n)) < 0)
    return r;
  if (u != DEK_LEN * 8)
    return bad (why, n, -EPROTONOSUPPORT,
                "unsupported key size of %" PRIu64 " bits", u);

  if ((r = member (vol, "volume.", "uuid", JSON_STRING, &v, why, n)) < 0)
    return r;
  if (strcmp (json_string_value (v), uuid) != 0)
    return bad (why, n, -EBADMSG,
                "volume.uuid \"%s\" does not match the binary header's %s",
                json_string_value (v), uuid);
  set_uuid (h, uuid);

  if ((r = member_u64 (vol, "volume.", "sector_size", &u, why, n)) < 0)
    return r;
  if (u != 512 && u != 4096)
    return bad (why, n, -EBADMSG, "sector size %" PRIu64 " is not 512 or 4096",
                u);
  h->sector_size = (uint32_t) u;
  if ((r = member_u64 (vol, "volume.", "data_offset", &h->data_offset, why, n))
          < 0
      || (r = member_u64 (vol, "volume.", "size", &h->size, why, n)) < 0)
    return r;
  if (!geometry_ok (h->sector_size, h->data_offset, h->size, why, n))
    return -EBADMSG;

  if ((r = member (vol, "volume.", "created", JSON_STRING, &v, why, n)) < 0)
    return r;
  if (json_string_length (v) == 0
      || json_string_length (v) >= sizeof h->created)
    return bad (why, n, -EBADMSG, "volume.created is not a timestamp");
  snprintf (h->created, sizeof h->created, "%s", json_string_value (v));
  if ((r = member_hex (vol, "volume.", "kcv", h->kcv, sizeof h->kcv, why, n))
      < 0)
    return r;
  if ((r = parse_seal (vol, seal, h, why, n)) < 0
      || (r = parse_binding (vol, binding, h, why, n)) < 0)
    return r;

  json_object_foreach (vol, key, v)
  {
    if (is_known (key))
      continue;
    if (!h->extra && !(h->extra = json_object ()))
      return bad (why, n, -ENOMEM, "out of memory");
    if (json_object_set (h->extra, key, v) < 0)
      return bad (why, n, -ENOMEM, "out of memory");
  }
  return 0;
}

/* Check the wraps array: objects with a unique integer id and a string type.
 * The providers check their own members when they use a wrap. */
static int
parse_wraps (json_t *wraps, char *why, size_t n)
{
  size_t i, j;
  json_t *w, *other;

  json_array_foreach (wraps, i, w)
  {
    char path[32];
    json_t *v;
    int r;

    snprintf (path, sizeof path, "wraps[%zu].", i);
    if (!json_is_object (w))
      return bad (why, n, -EBADMSG, "wraps[%zu] is not an object", i);
    if ((r = member (w, path, "id", JSON_INTEGER, &v, why, n)) < 0
        || (r = member (w, path, "type", JSON_STRING, &v, why, n)) < 0)
      return r;
    json_array_foreach (wraps, j, other)
    {
      if (j >= i)
        break;
      if (json_integer_value (json_object_get (other, "id"))
          == json_integer_value (json_object_get (w, "id")))
        return bad (why, n, -EBADMSG,
                    "wraps[%zu] and wraps[%zu] have id %" PRId64, j, i,
                    (int64_t) json_integer_value (json_object_get (w, "id")));
    }
  }
  return 0;
}

/* Fill h from the JSON metadata. */
static int
parse_root (json_t *root, const char *uuid, struct cv_header *h, char *why,
            size_t n)
{
  const char *key;
  json_t *v, *vol, *wraps;
  int r;

  if (!json_is_object (root))
    return bad (why, n, -EBADMSG, "the JSON metadata is not a JSON object");
  json_object_foreach (root, key, v)
  {
    if (strcmp (key, "version") && strcmp (key, "volume") && strcmp (key, "mac")
        && strcmp (key, "wraps") && strcmp (key, "next_wrap_id"))
      return bad (why, n, -EBADMSG, "unknown top-level member \"%s\"", key);
  }
  if ((r = member (root, "", "version", JSON_INTEGER, &v, why, n)) < 0)
    return r;
  if (json_integer_value (v) != CV_FORMAT_VERSION)
    return bad (why, n, -EPROTONOSUPPORT,
                "unsupported metadata version %" PRId64,
                (int64_t) json_integer_value (v));
  if ((r = member (root, "", "volume", JSON_OBJECT, &vol, why, n)) < 0
      || (r = parse_volume (vol, uuid, h, why, n)) < 0)
    return r;
  if ((r = member_hex (root, "", "mac", h->mac, sizeof h->mac, why, n)) < 0)
    return r;
  if ((r = member (root, "", "wraps", JSON_ARRAY, &wraps, why, n)) < 0
      || (r = parse_wraps (wraps, why, n)) < 0)
    return r;
  v = json_object_get (root, "next_wrap_id");
  if (v && (!json_is_integer (v) || json_integer_value (v) < 0))
    return bad (why, n, -EBADMSG, "next_wrap_id is not a non-negative integer");
  h->wraps = json_incref (wraps);
  h->next_wrap_id = v ? json_integer_value (v) : 0;
  h->next_wrap_id = cv_hdr_next_wrap_id (h);
  return 0;
}

/* The one function that turns a copy's bytes into a header. Returns 0,
 * -EINVAL (no cryptvol magic at all), -EBADMSG (corrupt or invalid),
 * -EPROTONOSUPPORT (authentic but needs what this version lacks) or -ENOMEM;
 * on failure why says what is wrong. Logs nothing. */
static int
decode_copy (const uint8_t *buf, int copy, struct cv_header **out, char *why,
             size_t n)
{
  uint8_t csum[CSUM_LEN];
  char uuid[CV_UUID_LEN + 1];
  json_error_t jerr;
  int r;

  if (memcmp (buf + OFF_MAGIC, magic[copy], MAGIC_LEN) != 0) {
    if (memcmp (buf + OFF_MAGIC, magic[!copy], MAGIC_LEN) == 0)
      return bad (why, n, -EBADMSG, "it holds the magic of the %s copy",
                  copy_name[!copy]);
    return bad (why, n, -EINVAL, "no header magic");
  }
  uint32_t json_len = cv_get_be32 (buf + OFF_JSON_LEN);
  if (json_len < JSON_MIN || json_len > CV_HDR_JSON_MAX)
    return bad (why, n, -EBADMSG, "JSON length %" PRIu32 " out of range %d..%d",
                json_len, JSON_MIN, CV_HDR_JSON_MAX);
  if ((r = copy_checksum (buf, json_len, csum)) < 0)
    return bad (why, n, r, "cannot compute the checksum: %s", strerror (-r));
  if (memcmp (csum, buf + OFF_CSUM, CSUM_LEN) != 0)
    return bad (why, n, -EBADMSG, "checksum mismatch");

  /* From here on the bytes are as a writer wrote them. */
  if (cv_get_be16 (buf + OFF_VERSION) != CV_FORMAT_VERSION)
    return bad (why, n, -EPROTONOSUPPORT, "unsupported format version %u",
                cv_get_be16 (buf + OFF_VERSION));
  uint64_t off = cv_get_be64 (buf + OFF_HDR_OFFSET);
  if (off != (uint64_t) copy * CV_HDR_COPY_SIZE)
    return bad (why, n, -EBADMSG,
                "its stored offset %" PRIu64 " is not its position %d", off,
                copy * CV_HDR_COPY_SIZE);
  uint64_t seqid = cv_get_be64 (buf + OFF_SEQID);
  if (seqid > INT64_MAX)
    return bad (why, n, -EBADMSG, "seqid %" PRIu64 " out of range", seqid);
  uuid_to_text (buf + OFF_UUID, uuid);

  json_auto_t *root = json_loadb ((const char *) buf + CV_HDR_BIN_SIZE,
                                  json_len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return bad (why, n, -EBADMSG,
                "its JSON metadata does not parse: %s at byte %d", jerr.text,
                jerr.position);
  CLEANUP_HDR struct cv_header *h = calloc (1, sizeof *h);
  if (!h)
    return bad (why, n, -ENOMEM, "out of memory");
  h->seqid = seqid;
  h->copy = copy;
  if ((r = parse_root (root, uuid, h, why, n)) < 0)
    return r;
  *out = STEAL (h);
  return 0;
}

/* Encode h as copy `copy` with the given seqid into buf. Refuses (-EINVAL,
 * logged) to produce bytes that decode_copy would not accept. */
static int
encode_copy (const struct cv_header *h, uint64_t seqid, int copy, uint8_t *buf)
{
  char why[WHY_LEN];
  int r;

  assert (copy == 0 || copy == 1);
  if (!uuid_text_ok (h->uuid)) {
    cv_err ("refusing to write a header with the malformed uuid \"%s\"",
            h->uuid);
    return -EINVAL;
  }
  json_auto_t *root = root_json (h);
  if (!root)
    return -ENOMEM;
  CLEANUP_FREE char *text = json_dumps (root, CANONICAL);
  if (!text)
    return -ENOMEM;
  size_t len = strlen (text);
  if (len > CV_HDR_JSON_MAX) {
    cv_err ("volume %s: the header metadata would be %zu bytes, more than the "
            "%d that fit in a header copy; remove some wraps",
            h->uuid, len, CV_HDR_JSON_MAX);
    return -E2BIG;
  }

  memset (buf, 0, CV_HDR_COPY_SIZE);
  memcpy (buf + OFF_MAGIC, magic[copy], MAGIC_LEN);
  cv_put_be16 (buf + OFF_VERSION, CV_FORMAT_VERSION);
  cv_put_be32 (buf + OFF_JSON_LEN, (uint32_t) len);
  cv_put_be64 (buf + OFF_HDR_OFFSET, (uint64_t) copy * CV_HDR_COPY_SIZE);
  cv_put_be64 (buf + OFF_SEQID, seqid);
  uuid_from_text (h->uuid, buf + OFF_UUID);
  memcpy (buf + CV_HDR_BIN_SIZE, text, len);
  if ((r = copy_checksum (buf, (uint32_t) len, buf + OFF_CSUM)) < 0)
    return r;

  /* Never write what cannot be read back. */
  CLEANUP_HDR struct cv_header *check = NULL;
  r = decode_copy (buf, copy, &check, why, sizeof why);
  if (r == -ENOMEM)
    return r;
  if (r < 0) {
    cv_err ("volume %s: refusing to write a header that would not read back: "
            "%s",
            h->uuid, why);
    return -EINVAL;
  }
  return 0;
}

int
cv_hdr_new (uint32_t sector_size, uint64_t data_offset, uint64_t size,
            struct cv_header **out)
{
  uint8_t b[UUID_BIN_LEN];
  char uuid[CV_UUID_LEN + 1], why[WHY_LEN];
  int r;

  if (!geometry_ok (sector_size, data_offset, size, why, sizeof why)) {
    cv_err ("cannot create a volume header: %s", why);
    return -EINVAL;
  }
  CLEANUP_HDR struct cv_header *h = calloc (1, sizeof *h);
  if (!h || !(h->wraps = json_array ()))
    return -ENOMEM;
  if ((r = cv_random (b, sizeof b)) < 0)
    return r;
  b[6] = (b[6] & 0x0f) | 0x40; /* version 4 (random) */
  b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
  uuid_to_text (b, uuid);
  set_uuid (h, uuid);
  snprintf (h->cipher, sizeof h->cipher, "%s", CV_CIPHER);
  h->sector_size = sector_size;
  h->data_offset = data_offset;
  h->size = size;
  cv_now_rfc3339 (h->created);
  *out = STEAL (h);
  return 0;
}

void
cv_hdr_free (struct cv_header *h)
{
  if (!h)
    return;
  json_decref (h->wraps);
  json_decref (h->extra);
  json_decref (h->bound);
  cv_hdr_free (h->other);
  free (h);
}

int
cv_hdr_encode (const struct cv_header *h, int copy, uint8_t *buf)
{
  return encode_copy (h, h->seqid, copy, buf);
}

int
cv_hdr_decode (const uint8_t *buf, int copy, const char *name,
               struct cv_header **out)
{
  char why[WHY_LEN];
  int r = decode_copy (buf, copy, out, why, sizeof why);

  if (r < 0)
    cv_err ("%s header copy of %s: %s", copy_name[copy], name, why);
  return r;
}

/* Take (F_RDLCK, F_WRLCK) or drop (F_UNLCK) the commit lock, an OFD lock
 * held by a commit while it writes the copies and by a reader while it
 * reads them, so that a reader never sees a commit half done and warns of
 * an interrupted one. Advisory and best effort: where the file system has
 * no locks, or the holder does not let go within COMMIT_LOCK_WAIT_MS (a
 * process stopped mid-commit: a reader must not hang on it), the caller
 * goes on without it; each copy's checksum still protects the reader. */
#define COMMIT_LOCK_WAIT_MS 2000
static void
commit_lock (struct cv_dev *d, short type)
{
  long waited_us = 0, delay_us = 500;
  int r;

  while ((r = cv_dev_lock (d, CV_DEV_LOCK_COMMIT, type, false)) == -EBUSY
         && waited_us < COMMIT_LOCK_WAIT_MS * 1000L) {
    usleep ((useconds_t) delay_us);
    waited_us += delay_us;
    delay_us = delay_us * 2 > 20000 ? 20000 : delay_us * 2;
  }
}

/* Do the two copies in buf (the header area) hold the same commit: the
 * same seqid and JSON text? */
static bool
same_copy (const uint8_t *buf, bool same_seqid)
{
  const uint8_t *b = buf + CV_HDR_COPY_SIZE;
  uint32_t len = cv_get_be32 (buf + OFF_JSON_LEN);

  return same_seqid && len == cv_get_be32 (b + OFF_JSON_LEN)
         && memcmp (buf + CV_HDR_BIN_SIZE, b + CV_HDR_BIN_SIZE, len) == 0;
}

static void
hdr_pair_free (struct cv_header *(*p)[2])
{
  cv_hdr_free ((*p)[0]);
  cv_hdr_free ((*p)[1]);
}

int
cv_hdr_read (struct cv_dev *d, struct cv_header **out, unsigned *valid)
{
  const char *name = d->name;
  __attribute__ ((cleanup (hdr_pair_free))) struct cv_header *hc[2] = { 0 };
  char why[2][WHY_LEN];
  int r[2];
  CLEANUP_FREE uint8_t *buf = NULL;
  size_t got = 0;

  /* Aligned, so that an O_DIRECT descriptor works too. */
  if (posix_memalign ((void **) &buf, 4096, CV_HDR_AREA_SIZE) != 0)
    return -ENOMEM;
  /* Both copies as one commit left them, not one from before and one from
   * after: a commit holds this lock while it writes. */
  commit_lock (d, F_RDLCK);
  int e = cv_dev_pread (d, buf, CV_HDR_AREA_SIZE, 0, &got);
  commit_lock (d, F_UNLCK);
  if (e < 0) {
    cv_err ("cannot read the header of %s: %s", name, strerror (-e));
    return -EIO;
  }
  if (got < CV_HDR_AREA_SIZE) {
    cv_err ("%s is %zu bytes, too short to hold a cryptvol header "
            "(%d bytes)",
            name, got, CV_HDR_AREA_SIZE);
    return -EBADMSG; /* not a volume: what keymgr's exit status 3 says */
  }

  for (int i = 0; i < 2; i++)
    r[i] = decode_copy (buf + (size_t) i * CV_HDR_COPY_SIZE, i, &hc[i], why[i],
                        sizeof why[i]);
  if (r[0] == -ENOMEM || r[1] == -ENOMEM)
    return -ENOMEM;
  if (r[0] == -EINVAL && r[1] == -EINVAL) {
    cv_err ("%s is not a cryptvol volume (no header magic); if it has a "
            "detached header, pass it with header=/--header",
            name);
    return -EINVAL;
  }
  /* A copy that authenticates but needs a newer cryptvol stops the open even
   * if the other copy would do: using the other would silently roll back
   * what the newer version wrote. */
  for (int i = 0; i < 2; i++)
    if (r[i] == -EPROTONOSUPPORT) {
      cv_err ("%s header copy of %s: %s; open it with a newer cryptvol",
              copy_name[i], name, why[i]);
      return -EPROTONOSUPPORT;
    }
  if (r[0] < 0 && r[1] < 0) {
    if (strcmp (why[0], why[1]) == 0)
      cv_err ("both header copies of %s are corrupt (%s); restore the header "
              "from a backup",
              name, why[0]);
    else
      cv_err ("both header copies of %s are corrupt (primary: %s; secondary: "
              "%s); restore the header from a backup",
              name, why[0], why[1]);
    return -EBADMSG;
  }

  int use;
  if (r[0] == 0 && r[1] == 0) {
    if (strcmp (hc[0]->uuid, hc[1]->uuid) != 0) {
      cv_err ("the header copies of %s belong to different volumes "
              "(primary %s, secondary %s); restore the header from a backup",
              name, hc[0]->uuid, hc[1]->uuid);
      return -EBADMSG;
    }
    use = hc[1]->seqid > hc[0]->seqid;
    if (hc[0]->seqid != hc[1]->seqid)
      cv_warn ("the header copies of %s differ (primary seqid %" PRIu64
               ", secondary seqid %" PRIu64
               "): a header update was interrupted; opened from the newer %s "
               "copy; the next header update rewrites both",
               name, hc[0]->seqid, hc[1]->seqid, copy_name[use]);
  } else {
    use = r[0] < 0;
    cv_warn ("%s header copy of %s is corrupt (%s); opened from the %s copy; "
             "the next header update rewrites it",
             copy_name[!use], name, why[!use], copy_name[use]);
  }
  if (valid)
    *valid = (r[0] == 0 ? CV_HDR_COPY0 : 0) | (r[1] == 0 ? CV_HDR_COPY1 : 0);
  /* The other copy, for when this one fails authentication: unless it is
   * the same commit byte for byte (the usual case), which would fail too. */
  if (hc[!use] && !same_copy (buf, hc[0]->seqid == hc[1]->seqid))
    hc[use]->other = STEAL (hc[!use]);
  *out = STEAL (hc[use]);
  return 0;
}

/* Write one whole copy and make it durable: a DSYNC write syncs its own
 * range, not the whole file (with an attached header, the data area a
 * server's clients have written may be gigabytes of cached pages). */
static int
write_copy (struct cv_dev *d, int copy, const uint8_t *buf)
{
  int r = cv_dev_pwrite (d, buf, CV_HDR_COPY_SIZE,
                         (uint64_t) copy * CV_HDR_COPY_SIZE, true);

  if (r < 0)
    cv_err ("cannot write the %s header copy of %s: %s", copy_name[copy],
            d->name, strerror (-r));
  return r;
}

int
cv_hdr_commit (struct cv_dev *d, struct cv_header *h)
{
  const char *name = d->name;
  CLEANUP_FREE uint8_t *buf = NULL;
  int r;

  if (h->seqid >= INT64_MAX) {
    cv_err ("cannot update the header of %s: its seqid %" PRIu64
            " is at the maximum; restore the header from a backup",
            name, h->seqid);
    return -EOVERFLOW;
  }
  uint64_t next = h->seqid + 1;
  if (posix_memalign ((void **) &buf, 4096, CV_HDR_COPY_SIZE) != 0)
    return -ENOMEM;

  if ((r = encode_copy (h, next, 0, buf)) < 0)
    return r;
  commit_lock (d, F_WRLCK);
  if ((r = write_copy (d, 0, buf)) < 0)
    goto out;
  h->seqid = next; /* copy 0 with this seqid is on disk */

  cv_fault_point ("header commit: copy 0 written, copy 1 not");

  if ((r = encode_copy (h, next, 1, buf)) == 0)
    r = write_copy (d, 1, buf);
out:
  commit_lock (d, F_UNLCK);
  /* Both copies are h now: nothing is left to fall back to. */
  if (r == 0) {
    cv_hdr_free (h->other);
    h->other = NULL;
  }
  return r;
}

void
cv_hdr_committed (struct cv_header *h)
{
  h->seqid++;
  cv_hdr_free (h->other);
  h->other = NULL;
}

/* kcv (16 bytes) and MAC key (32 bytes, in *mackey) from the DEK. */
static int
derive (const struct cv_header *h, const struct cv_key *dek, uint8_t kcv[16],
        struct cv_key **mackey)
{
  CLEANUP_KEY struct cv_key *mk = NULL;
  int r;

  if ((r = cv_hkdf_sha256 (dek->b, dek->len, (const uint8_t *) h->uuid,
                           strlen (h->uuid), KCV_INFO, kcv, 16))
          < 0
      || (r = cv_key_new (32, &mk)) < 0
      || (r = cv_hkdf_sha256 (dek->b, dek->len, (const uint8_t *) h->uuid,
                              strlen (h->uuid), MAC_INFO, mk->b, mk->len))
             < 0)
    return r;
  *mackey = STEAL (mk);
  return 0;
}

/* HMAC-SHA256 of the canonical "volume" object under mackey. */
static int
volume_mac (const struct cv_header *h, const struct cv_key *mackey,
            uint8_t mac[32])
{
  json_auto_t *vol = volume_json (h);
  if (!vol)
    return -ENOMEM;
  CLEANUP_FREE char *text = json_dumps (vol, CANONICAL);
  if (!text)
    return -ENOMEM;
  return cv_hmac_sha256 (mackey->b, mackey->len, text, strlen (text), mac);
}

int
cv_hdr_seal (struct cv_header *h, const struct cv_key *dek)
{
  CLEANUP_KEY struct cv_key *mk = NULL;
  uint8_t kcv[16], mac[32];
  int r;

  if (dek->len != DEK_LEN) {
    cv_err ("volume %s: a data key must be %d bytes, not %zu", h->uuid, DEK_LEN,
            dek->len);
    return -EINVAL;
  }
  if (h->bound && (r = cv_hdr_bind_wraps (h)) < 0)
    return r;
  if (h->has_seal)
    h->generation++;
  if ((r = derive (h, dek, kcv, &mk)) < 0)
    return r;
  memcpy (h->kcv, kcv, sizeof kcv); /* the MAC covers the kcv */
  if ((r = volume_mac (h, mk, mac)) < 0)
    return r;
  memcpy (h->mac, mac, sizeof mac);
  return 0;
}

int
cv_hdr_authenticate (const struct cv_header *h, const struct cv_key *dek)
{
  CLEANUP_KEY struct cv_key *mk = NULL;
  uint8_t kcv[16], mac[32];
  int r;

  if (dek->len != DEK_LEN)
    return -EKEYREJECTED;
  if ((r = derive (h, dek, kcv, &mk)) < 0)
    return r;
  if (CRYPTO_memcmp (kcv, h->kcv, sizeof kcv) != 0)
    return -EKEYREJECTED;
  if ((r = volume_mac (h, mk, mac)) < 0)
    return r;
  if (CRYPTO_memcmp (mac, h->mac, sizeof mac) != 0)
    return -EBADMSG;
  return 0;
}

const char *
cv_hdr_uuid (const struct cv_header *h)
{
  return h->uuid;
}

uint32_t
cv_hdr_sector_size (const struct cv_header *h)
{
  return h->sector_size;
}

uint64_t
cv_hdr_data_offset (const struct cv_header *h)
{
  return h->data_offset;
}

uint64_t
cv_hdr_size (const struct cv_header *h)
{
  return h->size;
}

uint64_t
cv_hdr_seqid (const struct cv_header *h)
{
  return h->seqid;
}

const json_t *
cv_hdr_wraps (const struct cv_header *h)
{
  return h->wraps;
}

const char *
cv_hdr_cipher (const struct cv_header *h)
{
  return h->cipher;
}

const char *
cv_hdr_created (const struct cv_header *h)
{
  return h->created;
}

void
cv_hdr_supersede (struct cv_header *h, const struct cv_header *cur)
{
  if (h->seqid < cur->seqid)
    h->seqid = cur->seqid;
  /* The volume keeps the protection it has (a backup from before upgrade
   * gets it back), and the next seal's generation passes the seal's. */
  if (cur->has_seal && !h->has_seal) {
    h->has_seal = true;
    h->seal_offset = cur->seal_offset;
  }
  if (h->generation < cur->generation)
    h->generation = cur->generation;
  if (cur->bound && !h->bound)
    h->bound = json_object ();
}

const char *
cv_hdr_binding (const struct cv_header *h)
{
  /* Set with the uuid by cv_hdr_new and the decoder, the only constructors. */
  assert (strncmp (h->binding, CV_BINDING_PREFIX, strlen (CV_BINDING_PREFIX))
              == 0
          && strcmp (h->binding + strlen (CV_BINDING_PREFIX), h->uuid) == 0);
  return h->binding;
}

json_t *
cv_hdr_to_json (const struct cv_header *h)
{
  json_auto_t *root = root_json (h);

  if (!root
      || json_object_set_new (root, "seqid",
                              json_integer ((json_int_t) h->seqid))
             < 0)
    return NULL;
  return STEAL (root);
}

int
cv_hdr_protect (struct cv_header *h, uint64_t seal_offset)
{
  if (seal_offset != UINT64_MAX) {
    /* Callers place it with cv_seal_offset_for. */
    assert (h->data_offset >= CV_SEAL_SIZE && seal_offset % CV_SEAL_SIZE == 0
            && seal_offset <= h->data_offset - CV_SEAL_SIZE);
    h->has_seal = true;
    h->seal_offset = seal_offset;
  }
  if (!h->bound && !(h->bound = json_object ()))
    return -ENOMEM;
  return 0;
}

bool
cv_hdr_sealed (const struct cv_header *h, uint64_t *offset,
               uint64_t *generation)
{
  if (offset)
    *offset = h->seal_offset;
  if (generation)
    *generation = h->generation;
  return h->has_seal;
}

bool
cv_hdr_binds_wraps (const struct cv_header *h)
{
  return h->bound != NULL;
}

const struct cv_header *
cv_hdr_other (const struct cv_header *h)
{
  return h->other;
}

const char *
cv_hdr_copy_name (const struct cv_header *h)
{
  return copy_name[h->copy];
}

bool
cv_hdr_use_other (struct cv_header *h, const char *name, const char *why)
{
  struct cv_header *o = h->other;

  if (!o)
    return false;
  cv_warn ("the %s header copy of %s does not authenticate (%s): it was "
           "altered; opened from the %s copy, which does; the next header "
           "update rewrites both",
           copy_name[h->copy], name, why, copy_name[o->copy]);
  /* h takes o's contents; o, holding h's, is freed. */
  struct cv_header tmp = *h;
  *h = *o;
  *o = tmp;
  h->other = NULL;
  o->other = NULL;
  /* The next commit must supersede the copy set aside. */
  if (h->seqid < o->seqid)
    h->seqid = o->seqid;
  cv_hdr_free (o);
  return true;
}

void
cv_hdr_uuid_bin (const struct cv_header *h, uint8_t out[16])
{
  uuid_from_text (h->uuid, out);
}

/* The wraps array of a header: reading wrap fields, the one allocator of
 * wrap ids, the common members of a new wrap, and adding, replacing,
 * removing and marking wraps. The providers' own members are lib/keys'. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "format/header-internal.h"

/* The id of wrap w, or -1 (the decoder has checked it is an integer). */
static int64_t
id_of (const json_t *w)
{
  json_t *id = json_object_get (w, "id");

  return json_is_integer (id) ? json_integer_value (id) : -1;
}

/* The wrap object with that id and its index, or NULL. */
static json_t *
find (const struct cv_header *h, int64_t id, size_t *index)
{
  size_t i;
  json_t *w;

  json_array_foreach (h->wraps, i, w)
  {
    if (id_of (w) == id) {
      if (index)
        *index = i;
      return w;
    }
  }
  return NULL;
}

static void
fill_info (const json_t *w, struct cv_wrap_info *out)
{
  out->id = id_of (w);
  out->type = json_string_value (json_object_get (w, "type"));
  out->ref = json_string_value (json_object_get (w, "ref"));
  out->created = json_string_value (json_object_get (w, "created"));
  out->verified = json_string_value (json_object_get (w, "verified"));
  out->kdf = json_string_value (
      json_object_get (json_object_get (w, "kdf"), "type"));
}

int64_t
cv_hdr_next_wrap_id (const struct cv_header *h)
{
  int64_t next = h->next_wrap_id;
  size_t i;
  json_t *w;

  json_array_foreach (h->wraps, i, w)
  {
    if (id_of (w) >= next)
      next = id_of (w) + 1;
  }
  return next;
}

size_t
cv_hdr_wrap_count (const struct cv_header *h)
{
  return json_array_size (h->wraps);
}

int
cv_hdr_wrap_at (const struct cv_header *h, size_t i, struct cv_wrap_info *out)
{
  json_t *w = json_array_get (h->wraps, i);

  if (!w)
    return -ENOENT;
  fill_info (w, out);
  return 0;
}

int
cv_hdr_wrap_find (const struct cv_header *h, int64_t id,
                  struct cv_wrap_info *out)
{
  json_t *w = find (h, id, NULL);

  if (!w)
    return -ENOENT;
  if (out)
    fill_info (w, out);
  return 0;
}

const char *
cv_hdr_wrap_member (const struct cv_header *h, int64_t id, const char *key)
{
  return json_string_value (json_object_get (find (h, id, NULL), key));
}

json_t *
cv_hdr_wrap_to_json (const struct cv_header *h, int64_t id)
{
  json_t *w = find (h, id, NULL);

  return w ? json_deep_copy (w) : NULL;
}

int
cv_hdr_wrap_new (const struct cv_header *h, int64_t id, const char *type,
                 const char *ref, json_t **out)
{
  char created[32];

  if (id < 0)
    id = cv_hdr_next_wrap_id (h);
  if (id == INT64_MAX) {
    cv_err ("volume %s: no wrap id left", h->uuid);
    return -EOVERFLOW;
  }
  cv_now_rfc3339 (created);
  json_auto_t *w = json_pack ("{s:I, s:s, s:s}", "id", (json_int_t) id, "type",
                              type, "created", created);
  if (!w || (ref && json_object_set_new (w, "ref", json_string (ref)) < 0))
    return -ENOMEM;
  *out = STEAL (w);
  return 0;
}

int
cv_hdr_wrap_append (struct cv_header *h, json_t *w)
{
  json_auto_t *nw = w;
  int64_t id = id_of (nw);

  if (find (h, id, NULL)) {
    cv_err ("volume %s: a wrap with id %lld exists already", h->uuid,
            (long long) id);
    return -EEXIST;
  }
  if (json_array_append (h->wraps, nw) < 0)
    return -ENOMEM;
  if (id >= h->next_wrap_id)
    h->next_wrap_id = id + 1;
  return 0;
}

int
cv_hdr_wraps_replace (struct cv_header *h, json_t *wraps)
{
  json_auto_t *nw = wraps;
  size_t i;
  json_t *w;

  if (!json_is_array (nw)
      || json_array_size (nw) != json_array_size (h->wraps)) {
    cv_err ("volume %s: the new wraps do not replace the old ones one for "
            "one",
            h->uuid);
    return -EINVAL;
  }
  json_array_foreach (nw, i, w)
  {
    if (!find (h, id_of (w), NULL)) {
      cv_err ("volume %s: a new wrap %lld replaces no wrap", h->uuid,
              (long long) id_of (w));
      return -EINVAL;
    }
  }
  json_decref (h->wraps);
  h->wraps = STEAL (nw);
  return 0;
}

int
cv_hdr_wrap_remove (struct cv_header *h, const char *name, int64_t id)
{
  size_t index;

  if (!find (h, id, &index)) {
    cv_err ("%s has no wrap %lld (see list-wraps)", name, (long long) id);
    return -ENOENT;
  }
  if (json_array_size (h->wraps) == 1) {
    cv_err ("wrap %lld is the only wrap of %s: removing it would make the "
            "volume impossible to open; add another wrap first (or use shred "
            "to destroy the volume)",
            (long long) id, name);
    return -EPERM;
  }
  json_array_remove (h->wraps, index);
  return 0;
}

int
cv_hdr_wrap_mark_verified (struct cv_header *h, int64_t id)
{
  json_t *w = find (h, id, NULL);
  char now[32];

  if (!w)
    return -ENOENT;
  cv_now_rfc3339 (now);
  return json_object_set_new (w, "verified", json_string (now)) < 0 ? -ENOMEM
                                                                    : 0;
}

/* Wrap binding (doc/format.md "Wrap binding"): the volume MAC covers the
 * digest of every wrap as the DEK holder last sealed it. */

/* SHA-256 (hex) of w's canonical JSON into hex[65]. */
static int
wrap_digest (const json_t *w, char hex[65])
{
  CLEANUP_FREE char *text = json_dumps (w, JSON_COMPACT | JSON_SORT_KEYS);
  CLEANUP_FREE char *h = NULL;
  uint8_t d[32];
  int r;

  if (!text)
    return -ENOMEM;
  if ((r = cv_sha256 (text, strlen (text), d)) < 0
      || (r = cv_hex_encode (d, sizeof d, &h)) < 0)
    return r;
  memcpy (hex, h, 65);
  return 0;
}

int
cv_hdr_bind_wraps (struct cv_header *h)
{
  json_auto_t *b = json_object ();
  size_t i;
  json_t *w;
  int r;

  if (!b)
    return -ENOMEM;
  json_array_foreach (h->wraps, i, w)
  {
    char id[24], hex[65];
    snprintf (id, sizeof id, "%" PRId64, id_of (w));
    if ((r = wrap_digest (w, hex)) < 0)
      return r;
    if (json_object_set_new (b, id, json_string (hex)) < 0)
      return -ENOMEM;
  }
  json_decref (h->bound);
  h->bound = STEAL (b);
  h->bound_next = cv_hdr_next_wrap_id (h);
  return 0;
}

/* A wrap added since the last seal may stand only if it authenticates its
 * own metadata without the DEK: a KMS wrap whose encryption context binds
 * it (made by a re-wrap inside KMS, which never sees the DEK). */
static bool
self_bound (const json_t *w)
{
  const char *type = json_string_value (json_object_get (w, "type"));

  return type && strcmp (type, "kms") == 0
         && json_is_string (
             json_object_get (json_object_get (w, "ctx"), "cryptvol:wrap"));
}

int
cv_hdr_wrap_bound (const struct cv_header *h, int64_t id)
{
  char key[24], hex[65];
  json_t *w = find (h, id, NULL);

  if (!h->bound || !w)
    return -ENOENT;
  snprintf (key, sizeof key, "%" PRId64, id);
  const char *want = json_string_value (json_object_get (h->bound, key));
  if (!want)
    return 0;
  if (wrap_digest (w, hex) < 0)
    return -ENOMEM;
  return strcmp (hex, want) == 0 ? 1 : -EBADMSG;
}

int
cv_hdr_wraps_check (const struct cv_header *h, char *why, size_t len)
{
  size_t i;
  json_t *w;

  if (!h->bound)
    return 0;
  if (cv_hdr_next_wrap_id (h) < h->bound_next) {
    snprintf (why, len,
              "its next_wrap_id %" PRId64 " is below the %" PRId64
              " the volume key sealed",
              cv_hdr_next_wrap_id (h), h->bound_next);
    return -EBADMSG;
  }
  json_array_foreach (h->wraps, i, w)
  {
    int64_t id = id_of (w);
    int r = cv_hdr_wrap_bound (h, id);
    if (r == -ENOMEM)
      return r;
    if (r == -EBADMSG) {
      snprintf (why, len,
                "its wrap %" PRId64 " is not as the volume key sealed it "
                "(its type, reference, key id, KDF parameters, dates or "
                "other members were altered)",
                id);
      return -EBADMSG;
    }
    if (r == 0 && (id < h->bound_next || !self_bound (w))) {
      snprintf (why, len,
                "its wrap %" PRId64 " was not sealed by the volume key and "
                "does not authenticate itself (only a KMS re-wrap adds a "
                "wrap without the key): it was put in by editing the header",
                id);
      return -EBADMSG;
    }
  }
  return 0;
}

bool
cv_hdr_wraps_settled (const struct cv_header *h)
{
  size_t i;
  json_t *w;

  if (!h->bound)
    return true;
  if (json_object_size (h->bound) != json_array_size (h->wraps))
    return false;
  json_array_foreach (h->wraps, i, w)
  {
    if (cv_hdr_wrap_bound (h, id_of (w)) != 1)
      return false;
  }
  return true;
}

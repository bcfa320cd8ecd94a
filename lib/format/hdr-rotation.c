/* The DEK rotation state in the header: the "rotation" member of the
 * MAC-covered "volume" object (doc/format.md). lib/vol/rotate.c gives it its
 * meaning; this file only reads and writes it. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header-internal.h"

static_assert (sizeof ((struct cv_hdr_rotation *) 0)->iv == CV_GCM_IV_LEN,
               "iv size");
static_assert (sizeof ((struct cv_hdr_rotation *) 0)->ct == CV_DEK_LEN,
               "sealed DEK size");
static_assert (sizeof ((struct cv_hdr_rotation *) 0)->tag == CV_GCM_TAG_LEN,
               "tag size");

static json_t *
rotation (const struct cv_header *h)
{
  return h->extra ? json_object_get (h->extra, "rotation") : NULL;
}

bool
cv_hdr_rotating (const struct cv_header *h)
{
  return rotation (h) != NULL;
}

/* Decode base64 s into exactly len bytes at out: 0, -EBADMSG (not that) or
 * -ENOMEM. */
static int
b64_exact (const char *s, uint8_t *out, size_t len)
{
  CLEANUP_FREE uint8_t *b = NULL;
  size_t n = 0;
  int r = cv_b64_decode (s, &b, &n);

  if (r == -ENOMEM)
    return r;
  if (r < 0 || n != len)
    return -EBADMSG;
  memcpy (out, b, len);
  return 0;
}

static int
malformed (const char *name)
{
  cv_err ("%s: the DEK rotation state in the header is malformed", name);
  return -EBADMSG;
}

int
cv_hdr_rotation_get (const struct cv_header *h, const char *name,
                     struct cv_hdr_rotation *r)
{
  json_t *j = rotation (h);
  const char *id, *started = "", *iv, *ct, *tag;
  json_int_t boundary, step = 0;
  int rc;

  if (!j)
    return -ENOENT;
  memset (r, 0, sizeof *r);
  if (json_unpack (j, "{s:s, s:I, s?:I, s?:s, s:{s:s, s:s, s:s}}", "id", &id,
                   "boundary", &boundary, "step", &step, "started", &started,
                   "old_dek", "iv", &iv, "ct", &ct, "tag", &tag)
          < 0
      || strlen (id) != 16 || boundary < 0 || (uint64_t) boundary > h->size
      || boundary % h->sector_size || strlen (started) >= sizeof r->started)
    return malformed (name);
  if ((rc = b64_exact (iv, r->iv, sizeof r->iv)) < 0
      || (rc = b64_exact (ct, r->ct, sizeof r->ct)) < 0
      || (rc = b64_exact (tag, r->tag, sizeof r->tag)) < 0)
    return rc == -ENOMEM ? rc : malformed (name);
  memcpy (r->id, id, sizeof r->id);
  r->boundary = (uint64_t) boundary;
  r->step = step > 0 ? (uint64_t) step : 0;
  memcpy (r->started, started, strlen (started) + 1);
  return 0;
}

int
cv_hdr_rotation_set (struct cv_header *h, const struct cv_hdr_rotation *r)
{
  CLEANUP_FREE char *iv = NULL, *ct = NULL, *tag = NULL;
  int rc;

  if ((rc = cv_b64_encode (r->iv, sizeof r->iv, &iv)) < 0
      || (rc = cv_b64_encode (r->ct, sizeof r->ct, &ct)) < 0
      || (rc = cv_b64_encode (r->tag, sizeof r->tag, &tag)) < 0)
    return rc;
  json_t *j = json_pack ("{s:s, s:I, s:I, s:s, s:{s:s, s:s, s:s}}", "id", r->id,
                         "boundary", (json_int_t) r->boundary, "step",
                         (json_int_t) r->step, "started", r->started, "old_dek",
                         "iv", iv, "ct", ct, "tag", tag);
  if (!j)
    return -ENOMEM;
  if (!h->extra && !(h->extra = json_object ())) {
    json_decref (j);
    return -ENOMEM;
  }
  return json_object_set_new (h->extra, "rotation", j) < 0 ? -ENOMEM : 0;
}

void
cv_hdr_rotation_clear (struct cv_header *h)
{
  if (h->extra)
    json_object_del (h->extra, "rotation");
}

/* The key the old DEK is sealed under, from the new DEK, and the additional
 * data binding it to volume and rotation (doc/format.md). */
static int
old_dek_key (const struct cv_header *h, const struct cv_key *dek,
             const char *id, struct cv_key **k, char *aad, size_t len)
{
  int rc = cv_key_new (32, k);

  if (rc == 0)
    rc = cv_hkdf_sha256 (dek->b, dek->len, (const uint8_t *) h->uuid,
                         strlen (h->uuid), "cryptvol v1 rotation old dek",
                         (*k)->b, 32);
  snprintf (aad, len, "%s:rotation:%s", h->binding, id);
  return rc;
}

int
cv_hdr_rotation_seal_old (const struct cv_header *h, struct cv_hdr_rotation *r,
                          const struct cv_key *dek, const struct cv_key *odek)
{
  CLEANUP_KEY struct cv_key *k = NULL;
  char aad[256];
  int rc;

  if ((rc = old_dek_key (h, dek, r->id, &k, aad, sizeof aad)) < 0
      || (rc = cv_random (r->iv, sizeof r->iv)) < 0)
    return rc;
  return cv_gcm_seal (k->b, r->iv, aad, strlen (aad), odek->b, CV_DEK_LEN,
                      r->ct, r->tag);
}

int
cv_hdr_rotation_old_dek (const struct cv_header *h, const char *name,
                         const struct cv_key *dek, struct cv_key **odek)
{
  struct cv_hdr_rotation r;
  CLEANUP_KEY struct cv_key *k = NULL, *o = NULL;
  char aad[256];
  int rc = cv_hdr_rotation_get (h, name, &r);

  if (rc < 0)
    return rc;
  if ((rc = old_dek_key (h, dek, r.id, &k, aad, sizeof aad)) < 0
      || (rc = cv_key_new (CV_DEK_LEN, &o)) < 0)
    return rc;
  if (cv_gcm_open (k->b, r.iv, aad, strlen (aad), r.ct, sizeof r.ct, r.tag,
                   o->b)
      < 0) {
    cv_err ("%s: the old DEK of the rotation in progress does not "
            "authenticate; the header was altered",
            name);
    return -EBADMSG;
  }
  *odek = STEAL (o);
  return 0;
}

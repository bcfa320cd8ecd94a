/* DEK rotation: re-encrypt the data area from the old DEK to a new one, one
 * step (a "hotzone") at a time, so that a crash at any instant leaves a
 * volume that opens and reads correctly, and the next run continues.
 *
 * State, in the MAC-covered "volume" object of the header (sealed with the
 * NEW DEK, whose wraps replace the old ones when the rotation begins):
 *   "rotation": {"id": 16 hex, "boundary": bytes done, "step": bytes,
 *                "started": RFC 3339, "old_dek": {"iv","ct","tag"} (b64)}
 * The old DEK is AES-256-GCM sealed under HKDF(new DEK) with AAD
 * "<binding>:rotation:<id>". Data below the boundary is under the new DEK,
 * from the boundary on under the old one.
 *
 * Each step is journalled, as LUKS2's "checksum" resilience mode does: before
 * the hotzone [boundary, boundary + len) is rewritten, a record naming it and
 * a tag of every sector's old and new ciphertext is written and synced to the
 * journal area (after the two header copies, in the header file). The tags
 * are GMAC (AES-256-GCM over the sector as additional data) under a key from
 * the new DEK, with IV = sector index || old/new: keyed, and several times
 * faster than SHA-256 where AES and carry-less multiply are in hardware. A
 * crash during the rewrite leaves each sector old or new (sector writes are
 * atomic); on the next open, each is identified by its hash and the step is
 * finished. A sector that matches neither (a torn write) is reported, never
 * guessed. The record is authenticated with HMAC under HKDF(new DEK). */
#include <errno.h>
#include <pthread.h>
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
#include "format/header.h"
#include "io/backend.h"
#include "vol-internal.h"
#include "volume.h"

#define STEP_DEFAULT (64 * 1024 * 1024)
#define JOFF CV_HDR_AREA_SIZE /* journal offset in the header file */
#define JHDR 4096             /* journal record; sector hashes follow */
#define JMAGIC "CVROTJ01"
#define TAG CV_GCM_TAG_LEN
#define PIECE (1024 * 1024)  /* data written between fault points */
#define PASS (256 * 1024)    /* data tagged and re-encrypted in one pass */
#define RCHUNK (1024 * 1024) /* offline: hotzone read in pieces... */
#define RDEPTH 8             /* ... this many in flight */

/* Journal record layout (big-endian integers). */
enum {
  J_MAGIC = 0,  /* 8 bytes */
  J_ID = 8,     /* 8 bytes: the rotation id */
  J_START = 16, /* u64: hotzone start, bytes in the data area */
  J_LEN = 24,   /* u64: hotzone length */
  J_MAC = 32,   /* 32 bytes: HMAC-SHA256 of [0, 32) || hashes */
  J_USED = 64,
};

/* A 32-byte key derived from the new DEK of the volume with this uuid, for
 * one purpose. */
static int
derive (const char *uuid, const struct cv_key *dek, const char *info,
        struct cv_key **out)
{
  int rc = cv_key_new (32, out);

  if (rc == 0)
    rc = cv_hkdf_sha256 (dek->b, dek->len, (const uint8_t *) uuid,
                         strlen (uuid), info, (*out)->b, 32);
  if (rc < 0) {
    cv_key_free (*out);
    *out = NULL;
  }
  return rc;
}

static void
hdr_freep (struct cv_header **h)
{
  cv_hdr_free (*h);
}
#define CLEANUP_HDR __attribute__ ((cleanup (hdr_freep)))

/* Lock the header for writing and read what is on disk now (a wrap may have
 * been added since the volume was opened) into *h, checked against the DEK
 * key. On success the caller holds the header lock; v is not changed. */
static int
lock_fresh (struct cv_vol *v, const struct cv_key *key, struct cv_header **h)
{
  CLEANUP_HDR struct cv_header *fresh = NULL;
  unsigned valid;
  int rc = cv_lock_header (v->hdev, true);

  if (rc < 0)
    return rc;
  if ((rc = cv_hdr_read (v->hdev, &fresh, &valid)) == 0
      && (rc = cv_hdr_authenticate (fresh, key)) < 0)
    cv_err ("%s: the header on disk changed and no longer matches the "
            "volume's key; refusing to write it",
            v->hname);
  if (rc < 0) {
    cv_unlock_header (v->hdev);
    return rc;
  }
  *h = STEAL (fresh);
  return 0;
}

/* Seal h with dek, commit it and drop the header lock; on success h becomes
 * v's header (taken), else it is freed and v keeps the one it had. */
static int
seal_commit_unlock (struct cv_vol *v, struct cv_header *h,
                    const struct cv_key *dek)
{
  CLEANUP_HDR struct cv_header *nh = h;
  int rc = cv_hdr_commit_sealed (v->hdev, v->ddev, nh, dek);

  cv_unlock_header (v->hdev);
  if (rc < 0)
    return rc;
  cv_hdr_free (v->hdr);
  v->hdr = STEAL (nh);
  return 0;
}

/* The rotation state of h, which must have one (v has an old DEK). Returns 0
 * or -EBADMSG (logged). */
static int
rotation_of (const struct cv_vol *v, const struct cv_header *h,
             struct cv_hdr_rotation *r)
{
  int rc = cv_hdr_rotation_get (h, v->hname, r);

  if (rc == -ENOENT) {
    cv_err ("%s: the rotation state vanished from the header", v->hname);
    return -EBADMSG;
  }
  return rc;
}

/* Record a new boundary in the header. */
static int
commit_boundary (struct cv_vol *v, uint64_t boundary)
{
  struct cv_header *h = NULL;
  struct cv_hdr_rotation r;
  int rc = lock_fresh (v, v->dek, &h);

  if (rc < 0)
    return rc;
  if ((rc = rotation_of (v, h, &r)) == 0) {
    r.boundary = boundary;
    rc = cv_hdr_rotation_set (h, &r);
  }
  if (rc < 0) {
    cv_hdr_free (h);
    cv_unlock_header (v->hdev);
    return rc;
  }
  if ((rc = seal_commit_unlock (v, h, v->dek)) == 0)
    __atomic_store_n (&v->boundary, boundary, __ATOMIC_RELEASE);
  return rc;
}

/* Room for the journal: the gap between the header copies and the data (or
 * the seal sector before it) in an attached header (hname == path);
 * unbounded in a detached header file. */
static uint64_t
room_of (const char *path, const char *hname, const struct cv_header *h)
{
  uint64_t end = cv_hdr_data_offset (h), seal;

  if (strcmp (hname, path) != 0)
    return UINT64_MAX;
  if (cv_hdr_sealed (h, &seal, NULL) && seal >= JOFF && seal < end)
    end = seal;
  return end > JOFF ? end - JOFF : 0;
}

static uint64_t
journal_room (const struct cv_vol *v)
{
  return room_of (v->path, v->hname, v->hdr);
}

/* HMAC of a journal record and its hashes. */
static int
journal_mac (const struct cv_vol *v, const uint8_t *rec, const uint8_t *hashes,
             size_t nhash, uint8_t mac[32])
{
  CLEANUP_KEY struct cv_key *k = NULL;
  CLEANUP_FREE uint8_t *msg = malloc (J_MAC + nhash);
  int rc;

  if (!msg)
    return -ENOMEM;
  if ((rc = derive (v->uuid, v->dek, "cryptvol v1 rotation journal", &k)) < 0)
    return rc;
  memcpy (msg, rec, J_MAC);
  memcpy (msg + J_MAC, hashes, nhash);
  return cv_hmac_sha256 (k->b, k->len, msg, J_MAC + nhash, mac);
}

/* The IV of the tag of sector sec's old (which = 0) or new (1) ciphertext. */
static void
tag_iv (uint64_t sec, int which, uint8_t iv[CV_GCM_IV_LEN])
{
  memset (iv, 0, CV_GCM_IV_LEN);
  cv_put_be64 (iv, sec);
  iv[8] = (uint8_t) which;
}

/* A GMAC context keyed for this volume's sector tags. */
static int
tag_key (const struct cv_vol *v, struct cv_gmac **g)
{
  CLEANUP_KEY struct cv_key *k = NULL;
  int rc = derive (v->uuid, v->dek, "cryptvol v1 rotation sector tags", &k);

  return rc < 0 ? rc : cv_gmac_new (k->b, g);
}

/* Tags of nsect sectors of buf, the first being sector first, into
 * out[(i * 2 + which) * TAG]. */
static int
tag_sectors (const struct cv_vol *v, struct cv_gmac *g, const uint8_t *buf,
             uint64_t first, size_t nsect, uint8_t *out, int which)
{
  uint8_t iv[CV_GCM_IV_LEN];

  for (size_t i = 0; i < nsect; i++) {
    tag_iv (first + i, which, iv);
    int rc
        = cv_gmac (g, iv, buf + i * v->ss, v->ss, out + (i * 2 + which) * TAG);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* What re-encrypting needs, made once per run: the tag context, an XTS
 * engine for each DEK, and a queue for the data I/O (freed with the context,
 * so none is kept by an open that recovers a step before nbdkit forks). */
struct rot_ctx {
  struct cv_gmac *g;
  struct cv_xts *old, *new;
  struct cv_io_queue *q;
  bool own_q; /* made here (else the online engine's, kept across steps) */
};

static void
rot_ctx_free (struct rot_ctx *c)
{
  if (c->own_q)
    cv_io_queue_free (c->q);
  cv_gmac_free (c->g);
  cv_xts_free (c->old);
  cv_xts_free (c->new);
}

/* With q NULL, a queue of its own. */
static int
rot_ctx_new (const struct cv_vol *v, struct cv_io_queue *q, struct rot_ctx *c)
{
  int rc;

  *c = (struct rot_ctx){ .q = q, .own_q = !q };
  if ((rc = tag_key (v, &c->g)) < 0
      || (rc = cv_xts_new (v->xts_impl, v->odek->b, v->ss, &c->old)) < 0
      || (rc = cv_xts_new (v->xts_impl, v->dek->b, v->ss, &c->new)) < 0
      || (!q && (rc = cv_io_queue_new (v->io, 1, &c->q)) < 0))
    rot_ctx_free (c);
  return rc;
}

/* Re-encrypt nsect sectors of buf in place from the old DEK to the new one;
 * first is the index of buf's first sector. */
static int
reencrypt (const struct rot_ctx *c, uint8_t *buf, uint64_t first, size_t nsect)
{
  int rc = cv_xts_decrypt (c->old, buf, buf, first, nsect);

  return rc < 0 ? rc : cv_xts_encrypt (c->new, buf, buf, first, nsect);
}

static int
io_fail (const struct cv_vol *v, const char *what, const char *file,
         uint64_t off, int rc)
{
  cv_err ("%s: rotation: %s %s at offset %llu: %s", v->hname, what, file,
          (unsigned long long) off, strerror (-rc));
  return rc;
}

/* A buffer for data I/O of len bytes, aligned for O_DIRECT (volumes served
 * with direct=true); NULL when out of memory. */
static uint8_t *
io_buffer (size_t len)
{
  void *p = NULL;

  return posix_memalign (&p, 4096, len) == 0 ? p : NULL;
}

/* Finish the interrupted step the journal describes: every sector of the
 * hotzone is identified as new (done), old (re-encrypted now) or neither
 * (refused). Then the boundary moves past it. buf holds len bytes. */
static int
recover_sectors (struct cv_vol *v, const struct rot_ctx *c, uint64_t start,
                 uint64_t len, const uint8_t *hashes, uint8_t *buf)
{
  size_t nsect = len / v->ss;
  uint8_t h[TAG], iv[CV_GCM_IV_LEN];
  int rc;

  if ((rc = cv_io_pread (c->q, buf, len, v->data_offset + start)) < 0)
    return io_fail (v, "reading", v->path, start, rc);
  size_t redo = 0;
  for (size_t i = 0; i < nsect; i++) {
    uint8_t *s = buf + i * v->ss;
    uint64_t sec = start / v->ss + i;
    tag_iv (sec, 1, iv);
    if ((rc = cv_gmac (c->g, iv, s, v->ss, h)) < 0)
      return rc;
    if (CRYPTO_memcmp (h, hashes + (i * 2 + 1) * TAG, TAG) == 0)
      continue; /* already new */
    tag_iv (sec, 0, iv);
    if ((rc = cv_gmac (c->g, iv, s, v->ss, h)) < 0)
      return rc;
    if (CRYPTO_memcmp (h, hashes + i * 2 * TAG, TAG) != 0) {
      cv_err ("%s: sector %llu of the interrupted rotation step holds "
              "neither its old nor its new ciphertext (a torn write?); "
              "refusing to guess: restore that sector from a backup",
              v->path, (unsigned long long) (start / v->ss + i));
      return -EIO;
    }
    if ((rc = reencrypt (c, s, start / v->ss + i, 1)) < 0)
      return rc;
    redo++;
  }
  cv_info ("%s: finishing an interrupted rotation step at %llu: %zu of %zu "
           "sectors were still under the old key",
           v->path, (unsigned long long) start, redo, nsect);
  if (redo
      && ((rc = cv_io_pwrite (c->q, buf, len, v->data_offset + start, false))
              < 0
          || (rc = cv_io_flush (c->q)) < 0))
    return io_fail (v, "writing", v->path, start, rc);
  return commit_boundary (v, start + len);
}

/* Recover the interrupted step at start (recover_sectors) with its own
 * buffer and tag context. */
static int
recover (struct cv_vol *v, uint64_t start, uint64_t len, const uint8_t *hashes)
{
  CLEANUP_FREE uint8_t *buf = io_buffer (len);
  struct rot_ctx c;
  int rc;

  if (!buf || (rc = rot_ctx_new (v, NULL, &c)) < 0)
    return buf ? rc : -ENOMEM;
  rc = recover_sectors (v, &c, start, len, hashes, buf);
  rot_ctx_free (&c);
  return rc;
}

/* Read the journal record; if it is this rotation's and describes the step at
 * the boundary, finish that step. */
static int
check_journal (struct cv_vol *v, const char *id)
{
  uint8_t rec[J_USED], mac[32], idbin[8];
  int rc;

  if (journal_room (v) < JHDR)
    return 0;
  rc = cv_dev_pread (v->hdev, rec, sizeof rec, JOFF, NULL);
  if (rc == -EIO)
    return 0; /* a detached header that never had a journal */
  if (rc < 0)
    return io_fail (v, "reading the journal of", v->hname, JOFF, rc);
  if (memcmp (rec + J_MAGIC, JMAGIC, 8) != 0 || cv_hex_decode (id, idbin, 8) < 0
      || memcmp (rec + J_ID, idbin, 8) != 0)
    return 0; /* no record, or one of an earlier rotation */
  uint64_t start = cv_get_be64 (rec + J_START), len = cv_get_be64 (rec + J_LEN);
  if (start != v->boundary)
    return 0; /* a step already committed */
  if (len == 0 || len % v->ss || len > v->size - start
      || len / v->ss * 2 * TAG > journal_room (v) - JHDR) {
    cv_err ("%s: the rotation journal is malformed (hotzone %llu+%llu)",
            v->hname, (unsigned long long) start, (unsigned long long) len);
    return -EBADMSG;
  }
  size_t nhash = len / v->ss * 2 * TAG;
  CLEANUP_FREE uint8_t *hashes = malloc (nhash);
  if (!hashes)
    return -ENOMEM;
  if ((rc = cv_dev_pread (v->hdev, hashes, nhash, JOFF + JHDR, NULL)) < 0)
    return io_fail (v, "reading the journal of", v->hname, JOFF + JHDR, rc);
  if ((rc = journal_mac (v, rec, hashes, nhash, mac)) < 0)
    return rc;
  if (CRYPTO_memcmp (mac, rec + J_MAC, 32) != 0)
    return 0; /* torn record: written before any data of its step */
  if (v->readonly) {
    cv_err ("%s: a DEK rotation step was interrupted; open the volume "
            "read-write once (or run cryptvol-keymgr rotate-dek) to finish it",
            v->path);
    return -EROFS;
  }
  return recover (v, start, len, hashes);
}

int
cv_rot_old_dek (struct cv_vol *v, const struct cv_key *dek,
                struct cv_key **odek)
{
  return cv_rot_old_dek_of (v, v->hdr, dek, odek);
}

int
cv_rot_old_dek_of (struct cv_vol *v, const struct cv_header *h,
                   const struct cv_key *dek, struct cv_key **odek)
{
  return cv_hdr_rotation_old_dek (h, v->hname, dek, odek);
}

int
cv_rot_open (struct cv_vol *v)
{
  struct cv_hdr_rotation r;
  int rc = cv_hdr_rotation_get (v->hdr, v->hname, &r);

  if (rc == -ENOENT)
    return 0;
  if (rc < 0 || (rc = cv_rot_old_dek (v, v->dek, &v->odek)) < 0)
    return rc;
  v->boundary = r.boundary;
  cv_rot_engine_note (v, &r);
  cv_info ("%s: a DEK rotation is in progress: %llu of %llu bytes "
           "re-encrypted (a server continues it with rotate=auto, "
           "cryptvol-keymgr rotate-dek offline or with --control)",
           v->path, (unsigned long long) v->boundary,
           (unsigned long long) v->size);
  return check_journal (v, r.id);
}

bool
cv_vol_rotating (const struct cv_vol *v, uint64_t *done)
{
  if (done)
    *done = v->boundary;
  return v->odek != NULL;
}

/* After a failed commit of the header that begins rotation id: say what is
 * on disk now, from what a new open would read. */
static void
report_begin_failure (struct cv_vol *v, const char *id)
{
  CLEANUP_HDR struct cv_header *h = NULL;
  struct cv_hdr_rotation r;
  unsigned valid;

  if (cv_hdr_read (v->hdev, &h, &valid) < 0)
    cv_err ("%s: the DEK rotation may have been recorded in the header: open "
            "the volume again; if a rotation is in progress, run rotate-dek "
            "to continue it",
            v->hname);
  else if (cv_hdr_rotation_get (h, v->hname, &r) == 0 && strcmp (r.id, id) == 0)
    cv_err ("%s: the DEK rotation was recorded in the primary header copy "
            "only, which the next open uses: the volume now opens with the "
            "new DEK; run rotate-dek again to continue the rotation",
            v->hname);
  else
    cv_info ("%s: the DEK rotation was not started; nothing was changed",
             v->hname);
}

/* cv_rot_prepare, with the new DEK in *dek1 and the rotation state in *rout
 * for the caller that opened the volume itself (cv_vol_rotate_begin). */
static int
rot_prepare (struct cv_header *h, const char *path, const char *hname,
             const struct cv_creds *c, const struct cv_key *dek, uint64_t step,
             bool online, struct cv_key **dek1, struct cv_hdr_rotation *rout)
{
  CLEANUP_KEY struct cv_key *nk = NULL;
  struct cv_hdr_rotation r = { .boundary = 0 };
  uint8_t idbin[8];
  CLEANUP_FREE char *id = NULL;
  unsigned ss = cv_hdr_sector_size (h);
  int rc;

  if (cv_hdr_rotating (h)) {
    cv_err ("%s: a DEK rotation is already in progress; run rotate-dek "
            "again to continue it",
            path);
    return -EALREADY;
  }
  uint64_t room = room_of (path, hname, h);
  if (room < JHDR + 2 * TAG) {
    cv_err ("%s: no room for the rotation journal between the header and "
            "the data (data offset %llu); use a detached header",
            path, (unsigned long long) cv_hdr_data_offset (h));
    return -ENOSPC;
  }
  if (step == 0)
    step = online ? CV_ROT_STEP_ONLINE : STEP_DEFAULT;
  if (room != UINT64_MAX && (room - JHDR) / (2 * TAG) * ss < step)
    step = (room - JHDR) / (2 * TAG) * ss;
  step = step / ss * ss;
  if (step == 0)
    step = ss;

  /* The new DEK, and the old one sealed under it. */
  r.step = step;
  cv_now_rfc3339 (r.started);
  if ((rc = cv_dek_generate (&nk)) < 0
      || (rc = cv_random (idbin, sizeof idbin)) < 0
      || (rc = cv_hex_encode (idbin, sizeof idbin, &id)) < 0)
    return rc;
  snprintf (r.id, sizeof r.id, "%s", id);
  if ((rc = cv_hdr_rotation_seal_old (h, &r, nk, dek)) < 0
      || (rc = cv_wrap_remake_all (h, hname, c, dek, nk)) < 0
      || (rc = cv_hdr_rotation_set (h, &r)) < 0
      || (rc = cv_hdr_seal (h, nk)) < 0)
    return rc;
  if (dek1)
    *dek1 = STEAL (nk);
  if (rout)
    *rout = r;
  return 0;
}

int
cv_rot_prepare (struct cv_header *h, const char *path, const char *hname,
                const struct cv_creds *c, const struct cv_key *dek,
                uint64_t step, bool online, struct cv_key **dek1)
{
  return rot_prepare (h, path, hname, c, dek, step, online, dek1, NULL);
}

int
cv_vol_rotate_begin (struct cv_vol *v, const struct cv_creds *c, uint64_t step)
{
  CLEANUP_KEY struct cv_key *dek1 = NULL;
  CLEANUP_HDR struct cv_header *h = NULL;
  struct cv_hdr_rotation r;
  int rc;

  if (v->odek) {
    cv_err ("%s: a DEK rotation is already in progress; run rotate-dek "
            "again to continue it",
            v->path);
    return -EALREADY;
  }
  if (v->readonly) {
    cv_err ("%s: opened read-only; a DEK rotation needs it opened for "
            "writing",
            v->path);
    return -EROFS;
  }
  /* Every wrap re-made for the new DEK, in a copy of the header: v keeps
   * its header, DEK and wraps until the commit succeeds. */
  if ((rc = lock_fresh (v, v->dek, &h)) < 0)
    return rc;
  if ((rc
       = rot_prepare (h, v->path, v->hname, c, v->dek, step, false, &dek1, &r))
      < 0) {
    cv_unlock_header (v->hdev);
    cv_info ("%s: the DEK rotation was not started; nothing was changed",
             v->hname);
    return rc;
  }
  /* From this commit on, every wrap opens the new DEK. */
  rc = cv_hdr_commit (v->hdev, h);
  cv_unlock_header (v->hdev);
  if (rc < 0) {
    report_begin_failure (v, r.id);
    return rc;
  }
  /* Under the new DEK; until it is written the seal, under the old one,
   * still authenticates (cv_seal_check). */
  if (cv_hdr_sealed (h, NULL, NULL))
    cv_fault_point ("seal: header committed, seal not written");
  cv_seal_write (v->ddev, v->ddev == v->hdev, h, dek1);
  cv_hdr_free (v->hdr);
  v->hdr = STEAL (h);
  v->odek = v->dek;
  v->dek = STEAL (dek1);
  v->boundary = 0;
  cv_vol_drop_threads (v);
  cv_rot_engine_note (v, &r);
  cv_fault_point ("rotate: begun");
  return 0;
}

/* A step failed (rc, reported) after its journal record was written: some
 * of the hotzone may be under the new DEK while v->boundary says old. Finish
 * the step from the journal now, as the next open would; if that fails too,
 * the volume serves nothing until it is reopened. Returns rc. */
static int
step_failed (struct cv_vol *v, const struct rot_ctx *c, uint64_t start,
             uint64_t len, const uint8_t *hashes, uint8_t *buf, int rc)
{
  cv_vol_range_reads (v, true); /* the hotzone may be rewritten again */
  if (recover_sectors (v, c, start, len, hashes, buf) < 0) {
    v->stale = true;
    cv_err ("%s: the rotation step at %llu could not be finished; the volume "
            "serves no I/O until it is opened again, which finishes it",
            v->path, (unsigned long long) start);
  }
  return rc;
}

/* Tag every sector of the n bytes at off of the hotzone at start (in
 * buf + off) under the old DEK, re-encrypt them and tag them again, into
 * hashes (the tags of the whole hotzone); PASS bytes at a time, so that each
 * pass is tagged, re-encrypted and tagged again while it is in the cache. */
static int
transform (const struct cv_vol *v, const struct rot_ctx *c, uint8_t *buf,
           uint64_t start, uint64_t off, uint64_t n, uint8_t *hashes)
{
  int rc;

  for (uint64_t o = off; o < off + n; o += PASS) {
    size_t k = (off + n - o < PASS ? off + n - o : PASS) / v->ss;
    uint8_t *p = buf + o, *h = hashes + o / v->ss * 2 * TAG;
    uint64_t first = (start + o) / v->ss;
    if ((rc = tag_sectors (v, c->g, p, first, k, h, 0)) < 0
        || (rc = reencrypt (c, p, first, k)) < 0
        || (rc = tag_sectors (v, c->g, p, first, k, h, 1)) < 0)
      return rc;
  }
  return 0;
}

/* Journal the hotzone [start, start + len), whose tags are in jbuf after its
 * JHDR-byte record: the record is filled in and, with the tags, made durable
 * before any sector of the hotzone is rewritten. */
static int
journal_write (struct cv_vol *v, const struct rot_ctx *c, uint8_t *jbuf,
               uint64_t start, uint64_t len)
{
  size_t nhash = len / v->ss * 2 * TAG;
  struct cv_hdr_rotation r;
  int rc;

  memset (jbuf, 0, JHDR);
  memcpy (jbuf + J_MAGIC, JMAGIC, 8);
  if ((rc = rotation_of (v, v->hdr, &r)) < 0)
    return rc;
  cv_hex_decode (r.id, jbuf + J_ID, 8);
  cv_put_be64 (jbuf + J_START, start);
  cv_put_be64 (jbuf + J_LEN, len);
  if ((rc = journal_mac (v, jbuf, jbuf + JHDR, nhash, jbuf + J_MAC)) < 0)
    return rc;
  /* The hotzone on disk must be what was read and tagged before the
   * journal names it: a served volume's clients may have written it
   * without a flush (offline, a server killed before its flush), and a
   * power loss must not leave a sector that matches neither tag. With an
   * attached header, the hotzone's range is written back and the journal's
   * hashes, written with DSYNC (which flushes the device's cache), make it
   * durable before the record that validates them: nothing syncs the rest
   * of the file, which may hold much that the clients wrote. A detached
   * header may be on another device: the data store is flushed whole. The
   * record is durable (DSYNC) before the first sector of the hotzone is
   * written: else a crash could leave new sectors that no record
   * identifies. */
  if ((rc = strcmp (v->hname, v->path) == 0
                ? cv_io_sync_range (c->q, v->data_offset + start, len)
                : cv_io_flush (c->q))
      < 0)
    return io_fail (v, "syncing", v->path, start, rc);
  if ((rc = cv_dev_pwrite (v->hdev, jbuf + JHDR, nhash, JOFF + JHDR, true)) < 0
      || (rc = cv_dev_pwrite (v->hdev, jbuf, JHDR, JOFF, true)) < 0)
    return io_fail (v, "writing the journal of", v->hname, JOFF, rc);
  __atomic_store_n (&v->jstart, start, __ATOMIC_RELAXED);
  __atomic_store_n (&v->jlen, len, __ATOMIC_RELAXED);
  cv_fault_point ("rotate: journal written");
  return 0;
}

/* Write the re-encrypted hotzone [start, start + len) from buf, PIECE bytes
 * at a time (a fault point after each), each durable as it is written if fua
 * (DSYNC: its own range, and the device's cache), else left for one flush
 * before the commit; then the boundary moves past it in memory. Reads of the
 * hotzone wait while it is rewritten, then go on under the new DEK; writes
 * wait until the boundary is committed (until then the journal's tags must
 * describe the hotzone). Returns 0 or -errno (logged); the step is then to
 * be finished from its journal (step_failed). */
static int
hotzone_write (struct cv_vol *v, const struct rot_ctx *c, const uint8_t *buf,
               uint64_t start, uint64_t len, bool fua)
{
  int rc = 0;

  cv_vol_range_reads (v, true);
  for (uint64_t off = 0; off < len; off += PIECE) {
    size_t n = len - off < PIECE ? len - off : PIECE;
    if ((rc
         = cv_io_pwrite (c->q, buf + off, n, v->data_offset + start + off, fua))
        < 0)
      return io_fail (v, "writing", v->path, start + off, rc);
    cv_fault_point ("rotate: hotzone piece written");
  }
  __atomic_store_n (&v->boundary, start + len, __ATOMIC_RELEASE);
  cv_vol_range_reads (v, false);
  return 0;
}

/* The hotzone [start, start + len) is durable under the new DEK: commit the
 * boundary past it; if that fails, finish it from its journal (step_failed,
 * with buf and the journal's hashes). */
static int
step_commit (struct cv_vol *v, const struct rot_ctx *c, uint8_t *buf,
             const uint8_t *hashes, uint64_t start, uint64_t len)
{
  int rc = commit_boundary (v, start + len);

  if (rc < 0)
    return step_failed (v, c, start, len, hashes, buf, rc);
  __atomic_store_n (&v->jlen, 0, __ATOMIC_RELAXED);
  cv_fault_point ("rotate: step committed");
  return 0;
}

/* One step (step_once, under the range lock): journal the hotzone at the
 * boundary, rewrite it, commit. */
static int
step_locked (struct cv_vol *v, const struct rot_ctx *c, uint8_t *buf,
             uint8_t *jbuf, uint64_t len)
{
  uint64_t start = v->boundary;
  uint8_t *hashes = jbuf + JHDR;
  int rc;

  if ((rc = cv_io_pread (c->q, buf, len, v->data_offset + start)) < 0)
    return io_fail (v, "reading", v->path, start, rc);
  if ((rc = transform (v, c, buf, start, 0, len, hashes)) < 0
      || (rc = journal_write (v, c, jbuf, start, len)) < 0)
    return rc;
  if ((rc = hotzone_write (v, c, buf, start, len, true)) < 0)
    return step_failed (v, c, start, len, hashes, buf, rc);
  return step_commit (v, c, buf, hashes, start, len);
}

/* One step of len bytes at the boundary, which client requests overlapping
 * it wait for (and it for them): none reads a sector half-way between two
 * keys, none writes one the step would then overwrite with stale data. */
static int
step_once (struct cv_vol *v, const struct rot_ctx *c, uint8_t *buf,
           uint8_t *jbuf, uint64_t len)
{
  cv_vol_range_lock (v, v->boundary, v->boundary + len, false);
  int rc = step_locked (v, c, buf, jbuf, len);
  cv_vol_range_unlock (v);
  if (rc < 0)
    cv_wipe (buf, len); /* it may hold plaintext; a step ends in ciphertext */
  return rc;
}

uint64_t
cv_rot_step_max (struct cv_vol *v, uint64_t cap)
{
  struct cv_hdr_rotation r;
  uint64_t step = rotation_of (v, v->hdr, &r) == 0 ? r.step : 0;

  if (step == 0 || step % v->ss)
    step = v->ss;
  if (cap && step > cap)
    step = cap / v->ss * v->ss;
  return step > v->size ? v->size : step;
}

size_t
cv_rot_jbuf_size (const struct cv_vol *v, uint64_t max)
{
  return JHDR + max / v->ss * 2 * TAG;
}

int
cv_rot_step (struct cv_vol *v, struct cv_io_queue *q, uint8_t *buf,
             uint8_t *jbuf, uint64_t len)
{
  struct rot_ctx c;
  int rc = rot_ctx_new (v, q, &c);

  if (rc < 0)
    return rc;
  rc = step_once (v, &c, buf, jbuf, len);
  rot_ctx_free (&c);
  return rc;
}

int
cv_rot_finish (struct cv_vol *v)
{
  struct cv_header *h = NULL;
  static const uint8_t zero[JHDR];
  int rc;

  if ((rc = lock_fresh (v, v->dek, &h)) < 0)
    return rc;
  cv_hdr_rotation_clear (h);
  if ((rc = seal_commit_unlock (v, h, v->dek)) < 0)
    return rc;
  cv_fault_point ("rotate: finished");
  /* The record; the tags after it are GMACs of ciphertext, nothing
   * secret. */
  cv_dev_pwrite (v->hdev, zero, sizeof zero, JOFF, true);
  /* Requests in flight finish with the old DEK's engines; then those are
   * wiped and every thread re-keys with the new DEK alone. */
  pthread_rwlock_wrlock (&v->klock);
  cv_key_free (v->odek);
  v->odek = NULL;
  __atomic_store_n (&v->boundary, v->size, __ATOMIC_RELEASE);
  cv_vol_wipe_threads (v);
  v->gen++;
  pthread_rwlock_unlock (&v->klock);
  return 0; /* status keeps the id of the rotation "done" */
}

/* A second thread for the cipher of the offline run. The pieces of a
 * hotzone whose reads completed wait in a list; the helper takes them one by
 * one, and the run's thread too whenever it would otherwise wait (for a
 * read, or at the end of the step). Each thread has its own tag context and
 * XTS engines. */
struct helper {
  pthread_t t;
  pthread_mutex_t m;
  pthread_cond_t cv;
  const struct cv_vol *v;
  struct rot_ctx c;
  /* The hotzone: transform's arguments but the piece. */
  uint8_t *buf, *hashes;
  uint64_t start, len;
  uint64_t *pend; /* offsets of the pieces waiting, [head, tail) */
  size_t head, tail;
  unsigned busy; /* pieces being transformed by either thread */
  bool stop;
  int rc; /* the first failure */
};

/* Take the next waiting piece into *off; false if none. Under h->m. */
static bool
helper_pop (struct helper *h, uint64_t *off)
{
  if (h->head == h->tail)
    return false;
  *off = h->pend[h->head++];
  h->busy++;
  return true;
}

/* Transform the piece at off (popped), outside h->m, with the context c. */
static void
helper_do (struct helper *h, const struct rot_ctx *c, uint64_t off)
{
  uint64_t n = h->len - off < RCHUNK ? h->len - off : RCHUNK;
  int rc = transform (h->v, c, h->buf, h->start, off, n, h->hashes);

  pthread_mutex_lock (&h->m);
  if (rc < 0 && h->rc == 0)
    h->rc = rc;
  h->busy--;
  pthread_cond_broadcast (&h->cv);
  pthread_mutex_unlock (&h->m);
}

/* The helper's thread: transform the waiting pieces, until stopped. */
static void *
helper_main (void *arg)
{
  struct helper *h = arg;
  uint64_t off;

  pthread_mutex_lock (&h->m);
  for (;;) {
    while (!h->stop && h->head == h->tail)
      pthread_cond_wait (&h->cv, &h->m);
    if (!helper_pop (h, &off))
      break;
    pthread_mutex_unlock (&h->m);
    helper_do (h, &h->c, off);
    pthread_mutex_lock (&h->m);
  }
  pthread_mutex_unlock (&h->m);
  return NULL;
}

/* Start the helper with its own keys (q: the run's queue, which it does not
 * use), for hotzones of up to step bytes. Returns false, with nothing to
 * free, where there is no second CPU or it cannot be made: the run then
 * does without. */
static bool
helper_start (const struct cv_vol *v, struct cv_io_queue *q, uint64_t step,
              struct helper *h)
{
  *h = (struct helper){ .v = v };
  if (sysconf (_SC_NPROCESSORS_ONLN) < 2
      || !(h->pend = calloc (step / RCHUNK + 1, sizeof *h->pend)))
    return false;
  if (rot_ctx_new (v, q, &h->c) < 0) {
    free (h->pend);
    return false;
  }
  pthread_mutex_init (&h->m, NULL);
  pthread_cond_init (&h->cv, NULL);
  int err = pthread_create (&h->t, NULL, helper_main, h);
  if (err == 0)
    return true;
  cv_debug ("%s: rotation: no second thread for the cipher: %s", v->path,
            strerror (err));
  pthread_mutex_destroy (&h->m);
  pthread_cond_destroy (&h->cv);
  rot_ctx_free (&h->c);
  free (h->pend);
  return false;
}

/* Stop the helper (idle: after helper_finish) and free what it holds. */
static void
helper_stop (struct helper *h)
{
  pthread_mutex_lock (&h->m);
  h->stop = true;
  pthread_cond_broadcast (&h->cv);
  pthread_mutex_unlock (&h->m);
  pthread_join (h->t, NULL);
  pthread_mutex_destroy (&h->m);
  pthread_cond_destroy (&h->cv);
  rot_ctx_free (&h->c);
  free (h->pend);
}

/* The next hotzone, in buf (its tags into hashes); the helper is idle. */
static void
helper_hotzone (struct helper *h, uint8_t *buf, uint8_t *hashes, uint64_t start,
                uint64_t len)
{
  pthread_mutex_lock (&h->m);
  h->buf = buf;
  h->hashes = hashes;
  h->start = start;
  h->len = len;
  h->head = h->tail = 0;
  pthread_mutex_unlock (&h->m);
}

/* The piece at off of the hotzone was read: to be transformed. */
static void
helper_push (struct helper *h, uint64_t off)
{
  pthread_mutex_lock (&h->m);
  h->pend[h->tail++] = off;
  pthread_cond_broadcast (&h->cv);
  pthread_mutex_unlock (&h->m);
}

/* With the run's context c, transform one waiting piece if there is one;
 * false if there was none. */
static bool
helper_lend (struct helper *h, const struct rot_ctx *c)
{
  uint64_t off;

  pthread_mutex_lock (&h->m);
  bool got = helper_pop (h, &off);
  pthread_mutex_unlock (&h->m);
  if (got)
    helper_do (h, c, off);
  return got;
}

/* Every piece pushed transformed (helping with c); the first failure since
 * the last call, or 0. */
static int
helper_finish (struct helper *h, const struct rot_ctx *c)
{
  while (helper_lend (h, c))
    ;
  pthread_mutex_lock (&h->m);
  while (h->busy)
    pthread_cond_wait (&h->cv, &h->m);
  int rc = h->rc;
  h->rc = 0;
  pthread_mutex_unlock (&h->m);
  return rc;
}

/* The offline run's pipeline (cv_vol_rotate_run), so that the device and
 * the cipher work at once as in a copy: while step k is written and
 * flushed, the hotzone of step k + 1 is read into the other buffer, RCHUNK
 * at a time with RDEPTH reads in flight on a queue of its own, and each
 * piece is tagged and re-encrypted as it arrives. Step k is committed once
 * its flush has completed, before step k + 1 is journalled: the journal
 * holds one step, and the crash protocol is each step's, unchanged. */
struct run {
  struct rot_ctx c;
  struct cv_io_queue *rq;    /* the reads ahead */
  uint8_t *buf[2], *jbuf[2]; /* for two steps in turn */
  int cur;                   /* the step being read: buf[cur], jbuf[cur] */
  uint64_t start, len;       /* its hotzone */
  uint64_t queued;           /* bytes of it whose read is queued */
  uint64_t got;              /* bytes of it whose read completed */
  unsigned inflight;         /* reads in flight on rq */
  /* The step written, its flush queued on c.q and not yet reaped (flen 0:
   * none), and where its data and tags are. */
  uint64_t fstart, flen;
  uint8_t *fbuf, *fjbuf;
  struct helper h;
  bool helped; /* h runs */
};

/* Queue reads of the hotzone into buf[cur] while there is room, each tagged
 * with its offset in the hotzone, and submit them. */
static int
run_queue_reads (struct cv_vol *v, struct run *r)
{
  int rc;

  while (r->queued < r->len && r->inflight < RDEPTH) {
    size_t n = r->len - r->queued < RCHUNK ? r->len - r->queued : RCHUNK;
    if ((rc
         = cv_io_queue_read (r->rq, r->buf[r->cur] + r->queued, n,
                             v->data_offset + r->start + r->queued, r->queued))
        < 0)
      return io_fail (v, "reading", v->path, r->start + r->queued, rc);
    r->queued += n;
    r->inflight++;
  }
  return cv_io_submit (r->rq);
}

/* The next of the reads in flight (there is one) that completed, waiting
 * for it if wait, else -EAGAIN if there is none yet: 0 or its -errno with
 * *off its tag, or -errno with *off CV_IO_BROKEN when the queue failed
 * (logged) with none left in flight. */
static int
run_reap (struct run *r, uint64_t *off, bool wait)
{
  int rc = wait ? cv_io_reap (r->rq, off) : cv_io_reap_ready (r->rq, off);

  if (rc == -EAGAIN)
    return rc;
  if (*off == CV_IO_BROKEN)
    r->inflight = 0;
  else
    r->inflight--;
  return rc;
}

/* A read of the hotzone completed (rc, at off): its piece is transformed,
 * by the helper if there is one. */
static int
run_got (struct cv_vol *v, struct run *r, int rc, uint64_t off)
{
  if (rc < 0)
    return off == CV_IO_BROKEN
               ? rc
               : io_fail (v, "reading", v->path, r->start + off, rc);
  r->got += r->len - off < RCHUNK ? r->len - off : RCHUNK;
  if (r->helped) {
    helper_push (&r->h, off);
    return 0;
  }
  return transform (v, &r->c, r->buf[r->cur], r->start, off,
                    r->len - off < RCHUNK ? r->len - off : RCHUNK,
                    r->jbuf[r->cur] + JHDR);
}

/* Without waiting: the reads of the hotzone that completed go to run_got,
 * and more are queued. */
static int
run_poll (struct cv_vol *v, struct run *r)
{
  uint64_t off;
  int rc = 0;

  while (rc == 0 && r->got < r->queued) {
    if ((rc = run_reap (r, &off, false)) == -EAGAIN)
      return run_queue_reads (v, r);
    rc = run_got (v, r, rc, off);
  }
  return rc < 0 ? rc : run_queue_reads (v, r);
}

/* The rest of the hotzone [start, start + len) into buf[cur], each piece
 * tagged and re-encrypted as its read completes (in any order), its tags
 * into jbuf[cur]; this thread takes a piece itself whenever it would wait
 * for a read. */
static int
run_read_in (struct cv_vol *v, struct run *r)
{
  uint64_t off;
  int rc = 0;

  while (rc == 0 && r->got < r->len) {
    if ((rc = run_poll (v, r)) < 0 || r->got == r->len)
      break;
    if (!r->helped || !helper_lend (&r->h, &r->c)) {
      rc = run_reap (r, &off, true);
      rc = run_got (v, r, rc, off);
    }
  }
  int hrc = r->helped ? helper_finish (&r->h, &r->c) : 0;
  return rc < 0 ? rc : hrc;
}

/* Start reading the step after the one in buf[cur], into the other buffer;
 * step: the bytes of a step. */
static int
run_read_next (struct cv_vol *v, struct run *r, uint64_t step)
{
  r->cur ^= 1;
  r->start += r->len;
  r->len = v->size - r->start < step ? v->size - r->start : step;
  r->queued = r->got = 0;
  if (r->helped)
    helper_hotzone (&r->h, r->buf[r->cur], r->jbuf[r->cur] + JHDR, r->start,
                    r->len);
  return run_queue_reads (v, r);
}

/* The step written before: wait for its flush, then commit it (a failure of
 * either finishes it from its journal: step_failed). Nothing to do if
 * there is none. */
static int
run_commit_prev (struct cv_vol *v, struct run *r,
                 void (*progress) (uint64_t done, uint64_t total, void *arg),
                 void *arg)
{
  uint64_t start = r->fstart, len = r->flen, tag;
  uint8_t *hashes = r->fjbuf + JHDR;
  int rc;

  if (len == 0)
    return 0;
  r->flen = 0;
  if ((rc = cv_io_reap (r->c.q, &tag)) < 0) {
    if (tag != CV_IO_BROKEN)
      io_fail (v, "syncing", v->path, start, rc);
    return step_failed (v, &r->c, start, len, hashes, r->fbuf, rc);
  }
  if ((rc = step_commit (v, &r->c, r->fbuf, hashes, start, len)) < 0)
    return rc;
  if (progress)
    progress (start + len, v->size, arg);
  return 0;
}

/* One step of the pipeline: the hotzone in buf[cur] has been read; journal
 * it, start reading the next, write it and queue its flush. */
static int
run_write (struct cv_vol *v, struct run *r, uint64_t step)
{
  uint64_t start = r->start, len = r->len;
  uint8_t *buf = r->buf[r->cur], *jbuf = r->jbuf[r->cur];
  int rc;

  if ((rc = journal_write (v, &r->c, jbuf, start, len)) < 0)
    return rc;
  if ((start + len < v->size && (rc = run_read_next (v, r, step)) < 0)
      || (rc = hotzone_write (v, &r->c, buf, start, len, false)) < 0)
    return step_failed (v, &r->c, start, len, jbuf + JHDR, buf, rc);
  /* One flush for the step's pieces, instead of a DSYNC each: the hotzone
   * must be durable before the header's boundary moves past it, else a
   * power loss could leave sectors under the old DEK that the header says
   * are new, and no journal to find them. Its wait overlaps the next
   * step's reads and cipher; its commit comes before that step's journal
   * (run_commit_prev). */
  if ((rc = cv_io_queue_flush (r->c.q, 0)) < 0
      || (rc = cv_io_submit (r->c.q)) < 0) /* the queue failed (logged) */
    return step_failed (v, &r->c, start, len, jbuf + JHDR, buf, rc);
  r->fstart = start;
  r->flen = len;
  r->fbuf = buf;
  r->fjbuf = jbuf;
  return 0;
}

/* Run the pipeline from the boundary to the end of the volume, under the
 * range lock over all of it (offline: the volume is opened exclusively, and
 * the next step's hotzone is read while the current one is written). */
static int
run_steps (struct cv_vol *v, struct run *r, uint64_t step,
           void (*progress) (uint64_t done, uint64_t total, void *arg),
           void *arg)
{
  int rc, frc;

  r->start = v->boundary;
  r->len = v->size - r->start < step ? v->size - r->start : step;
  if (r->helped)
    helper_hotzone (&r->h, r->buf[r->cur], r->jbuf[r->cur] + JHDR, r->start,
                    r->len);
  rc = run_queue_reads (v, r);
  for (;;) {
    bool last = r->start + r->len == v->size;
    if (rc == 0)
      rc = run_read_in (v, r);
    frc = run_commit_prev (v, r, progress, arg);
    if (rc == 0 && (rc = frc) == 0 && (rc = run_write (v, r, step)) == 0
        && last)
      rc = run_commit_prev (v, r, progress, arg);
    if (rc < 0 || last)
      return rc;
  }
}

int
cv_vol_rotate_run (struct cv_vol *v,
                   void (*progress) (uint64_t done, uint64_t total, void *arg),
                   void *arg)
{
  struct run r = { .cur = 0 };
  uint64_t off;
  int rc = 0;

  if (!v->odek) {
    cv_err ("%s: no DEK rotation in progress", v->path);
    return -EINVAL;
  }
  if (v->stale) {
    cv_err ("%s: a rotation step failed; open the volume again to finish it "
            "before continuing",
            v->path);
    return -EIO;
  }
  if (v->boundary == v->size)
    return cv_rot_finish (v); /* killed after the last step's commit */
  uint64_t step = cv_rot_step_max (v, 0);
  size_t jlen = cv_rot_jbuf_size (v, step);
  for (int i = 0; i < 2; i++)
    if (!(r.buf[i] = io_buffer (step)) || !(r.jbuf[i] = malloc (jlen)))
      rc = -ENOMEM;
  if (rc == 0 && (rc = rot_ctx_new (v, NULL, &r.c)) == 0) {
    if ((rc = cv_io_queue_new (v->io, RDEPTH, &r.rq)) == 0) {
      r.helped = helper_start (v, r.c.q, step, &r.h);
      cv_vol_range_lock (v, v->boundary, v->size, false);
      rc = run_steps (v, &r, step, progress, arg);
      cv_vol_range_unlock (v);
      while (r.inflight) /* reads ahead of a failed step */
        run_reap (&r, &off, true);
      if (r.helped)
        helper_stop (&r.h);
      cv_io_queue_free (r.rq);
    }
    rot_ctx_free (&r.c);
  }
  for (int i = 0; i < 2; i++) {
    /* A failed step may leave plaintext; a step ends in ciphertext. */
    if (rc < 0 && r.buf[i])
      cv_wipe (r.buf[i], step);
    free (r.buf[i]);
    free (r.jbuf[i]);
  }
  return rc < 0 ? rc : cv_rot_finish (v);
}

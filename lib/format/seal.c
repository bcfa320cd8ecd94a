/* The seal sector (doc/format.md "Seal"): the volume's own record of the
 * newest header a DEK holder committed, so that a stale header (a backup
 * from before a DEK rotation or a wrap removal, old copies written back with
 * dd, another volume's detached header) is refused before a sector is served
 * or written. It lives in the data file, not with the header, so that
 * replacing the header does not replace it. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/crypto.h>

#include "common/bytes.h"
#include "common/cleanup.h"
#include "common/fault.h"
#include "common/fdio.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "format/header-internal.h"

/* Layout of the seal sector (big-endian integers); the rest is zero. */
enum {
  S_MAGIC = 0, /* 8 bytes */
  S_UUID = 8,  /* 16 bytes, binary */
  S_GEN = 24,  /* u64: the generation of the header last committed */
  S_MAC = 32,  /* 32 bytes: HMAC-SHA256 of [0, 32) */
  S_USED = 64,
};
static const uint8_t seal_magic[8] = { 'C', 'V', 'S', 'E', 'A', 'L', '0', '1' };
#define SEAL_INFO "cryptvol v1 seal"

/* The MAC of a seal sector's first S_MAC bytes under a key from dek. */
static int
seal_mac (const struct cv_header *h, const struct cv_key *dek,
          const uint8_t *sec, uint8_t mac[32])
{
  CLEANUP_KEY struct cv_key *k = NULL;
  int r;

  if ((r = cv_key_new (32, &k)) < 0
      || (r = cv_hkdf_sha256 (dek->b, dek->len, (const uint8_t *) h->uuid,
                              strlen (h->uuid), SEAL_INFO, k->b, k->len))
             < 0)
    return r;
  return cv_hmac_sha256 (k->b, k->len, sec, S_MAC, mac);
}

/* A seal sector of h in an attached layout must miss the header copies. */
static int
placed (const struct cv_header *h, const char *dname, bool attached)
{
  if (attached && h->seal_offset < CV_HDR_AREA_SIZE) {
    cv_err ("%s: the header puts the seal sector at %" PRIu64
            ", inside the header copies; the header was altered",
            dname, h->seal_offset);
    return -EBADMSG;
  }
  return 0;
}

/* A header without a seal, for a volume that has one where create and
 * upgrade put it (just before the data area): a header from before the
 * upgrade, which would bypass the check. */
static int
unsealed_check (struct cv_dev *dd, bool attached, const struct cv_header *h)
{
  const char *dname = dd->name;
  CLEANUP_FREE uint8_t *sec = NULL;
  uint8_t uuid[16];
  size_t got = 0;

  uint64_t off = cv_seal_offset_for (attached, h->data_offset);

  if (off == UINT64_MAX)
    return 0;
  if (posix_memalign ((void **) &sec, 4096, CV_SEAL_SIZE) != 0)
    return -ENOMEM;
  if (cv_dev_pread (dd, sec, CV_SEAL_SIZE, off, &got) < 0 || got < CV_SEAL_SIZE)
    return 0; /* nothing there to contradict the header */
  cv_hdr_uuid_bin (h, uuid);
  if (memcmp (sec + S_MAGIC, seal_magic, sizeof seal_magic) == 0
      && memcmp (sec + S_UUID, uuid, sizeof uuid) == 0) {
    cv_err ("the header given for %s has no seal, but the volume has one: "
            "a header from before cryptvol-keymgr upgrade (a stale copy or "
            "backup); refusing to serve or write with it; restore the "
            "current header",
            dname);
    return -ESTALE;
  }
  return 0;
}

int
cv_seal_write (struct cv_dev *dd, bool attached, const struct cv_header *h,
               const struct cv_key *dek)
{
  const char *dname = dd->name;
  CLEANUP_FREE uint8_t *sec = NULL;
  int r;

  if (!h->has_seal)
    return 0;
  if ((r = placed (h, dname, attached)) < 0)
    return r;
  /* Aligned: the data file may be open with O_DIRECT. */
  if (posix_memalign ((void **) &sec, 4096, CV_SEAL_SIZE) != 0)
    return -ENOMEM;
  memset (sec, 0, CV_SEAL_SIZE);
  memcpy (sec + S_MAGIC, seal_magic, sizeof seal_magic);
  cv_hdr_uuid_bin (h, sec + S_UUID);
  cv_put_be64 (sec + S_GEN, h->generation);
  if ((r = seal_mac (h, dek, sec, sec + S_MAC)) < 0)
    return r;
  r = cv_dev_pwrite (dd, sec, CV_SEAL_SIZE, h->seal_offset, true);
  if (r < 0)
    cv_err ("cannot write the seal sector of %s (at %" PRIu64 "): %s; the "
            "header was committed and the next open writes it again",
            dname, h->seal_offset, strerror (-r));
  return r;
}

int
cv_seal_check (struct cv_dev *dd, bool attached, const struct cv_header *h,
               const struct cv_key *dek, bool *behind)
{
  const char *dname = dd->name;
  CLEANUP_FREE uint8_t *sec = NULL;
  CLEANUP_KEY struct cv_key *odek = NULL;
  uint8_t uuid[16], mac[32];
  size_t got = 0;
  int r;

  *behind = false;
  if (!h->has_seal)
    return unsealed_check (dd, attached, h);
  if ((r = placed (h, dname, attached)) < 0)
    return r;
  if (posix_memalign ((void **) &sec, 4096, CV_SEAL_SIZE) != 0)
    return -ENOMEM;
  r = cv_dev_pread (dd, sec, CV_SEAL_SIZE, h->seal_offset, &got);
  if (r < 0 || got < CV_SEAL_SIZE) {
    cv_err ("cannot read the seal sector of %s (at %" PRIu64 "): %s", dname,
            h->seal_offset, r < 0 ? strerror (-r) : "the file is too short");
    return -EIO;
  }
  if (memcmp (sec + S_MAGIC, seal_magic, sizeof seal_magic) != 0) {
    cv_err ("%s has no seal sector at %" PRIu64 " although its header "
            "requires one (it was overwritten, or this header is not of this "
            "data file): cannot tell whether the header is current; if you "
            "are sure it is, write the seal again with cryptvol-keymgr "
            "upgrade --reseal",
            dname, h->seal_offset);
    return -EBADMSG;
  }
  cv_hdr_uuid_bin (h, uuid);
  if (memcmp (sec + S_UUID, uuid, sizeof uuid) != 0) {
    cv_err ("the header given for %s is of volume %s, but the data file is "
            "another volume (its seal sector says so): a header of another "
            "volume; give this volume's header",
            dname, h->uuid);
    return -EBADMSG;
  }
  /* Sealed under h's DEK; or, while a rotation runs, under the old DEK by a
   * commit from before the rotation's first (its seal not yet rewritten). */
  if ((r = seal_mac (h, dek, sec, mac)) < 0)
    return r;
  if (CRYPTO_memcmp (mac, sec + S_MAC, sizeof mac) != 0) {
    bool old = false;
    if (cv_hdr_rotating (h)
        && cv_hdr_rotation_old_dek (h, dname, dek, &odek) == 0) {
      if ((r = seal_mac (h, odek, sec, mac)) < 0)
        return r;
      old = CRYPTO_memcmp (mac, sec + S_MAC, sizeof mac) == 0;
    }
    if (!old) {
      cv_err ("the header given for %s does not hold the data key the volume "
              "is under (its seal sector does not authenticate with it): a "
              "header from before a DEK rotation (a stale copy or backup) or "
              "altered; refusing to serve or write with it; restore the "
              "current header (restore-header with a backup taken after the "
              "last rotate-dek)",
              dname);
      return -ESTALE;
    }
  }
  uint64_t gen = cv_get_be64 (sec + S_GEN);
  if (gen > h->generation) {
    cv_err ("the header given for %s is stale: it is generation %" PRIu64
            " but the volume has had generation %" PRIu64 " (its seal "
            "sector): restored from before a later change (a wrap added or "
            "removed, a DEK rotation step); refusing to serve or write with "
            "it; restore the current header (restore-header with a recent "
            "backup)",
            dname, h->generation, gen);
    return -ESTALE;
  }
  *behind = gen < h->generation || odek != NULL;
  return 0;
}

int
cv_hdr_commit_sealed (struct cv_dev *hd, struct cv_dev *dd, struct cv_header *h,
                      const struct cv_key *dek)
{
  int r;

  if ((r = cv_hdr_seal (h, dek)) < 0 || (r = cv_hdr_commit (hd, h)) < 0)
    return r;
  if (h->has_seal)
    cv_fault_point ("seal: header committed, seal not written");
  return cv_seal_write (dd, hd == dd || strcmp (hd->name, dd->name) == 0, h,
                        dek);
}

uint64_t
cv_seal_offset_for (bool attached, uint64_t data_offset)
{
  if (data_offset < CV_SEAL_SIZE
      || (attached && data_offset - CV_SEAL_SIZE < CV_HDR_AREA_SIZE))
    return UINT64_MAX;
  return (data_offset - CV_SEAL_SIZE) / CV_SEAL_SIZE * CV_SEAL_SIZE;
}

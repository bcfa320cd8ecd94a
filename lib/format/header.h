/* The on-disk header: two binary+JSON copies, canonical JSON metadata, and the
 * DEK-derived MAC and key check value. doc/format.md is the byte-exact spec.
 *
 * Layout of the header area (at offset 0 of the volume, or of a detached
 * header file):
 *   copy 0 ("primary")   at 0,               CV_HDR_COPY_SIZE bytes
 *   copy 1 ("secondary") at CV_HDR_COPY_SIZE, CV_HDR_COPY_SIZE bytes
 * Each copy: a CV_HDR_BIN_SIZE-byte binary header, then the JSON text. */
#ifndef CV_HEADER_H
#define CV_HEADER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct cv_key;

#define CV_HDR_COPY_SIZE (64 * 1024)
#define CV_HDR_BIN_SIZE 4096
#define CV_HDR_AREA_SIZE (2 * CV_HDR_COPY_SIZE)
#define CV_HDR_JSON_MAX (CV_HDR_COPY_SIZE - CV_HDR_BIN_SIZE)
#define CV_DATA_OFFSET_DEFAULT (16 * 1024 * 1024) /* attached header */
#define CV_FORMAT_VERSION 1
#define CV_CIPHER "aes-xts-plain64"
#define CV_UUID_LEN 36 /* text form, without the NUL */
#define CV_BINDING_PREFIX "cryptvol:v1:volume:"

/* The in-memory header. Only cv_hdr_read/cv_hdr_decode fill it from bytes. */
struct cv_header {
  uint64_t seqid; /* of the copy it was read from; commit bumps it */
  char uuid[CV_UUID_LEN + 1];
  /* CV_BINDING_PREFIX + uuid, set together with uuid by cv_hdr_new and the
   * decoder (cv_hdr_binding returns it); never change uuid afterwards. */
  char binding[sizeof CV_BINDING_PREFIX + CV_UUID_LEN];
  char cipher[32];      /* CV_CIPHER */
  uint32_t sector_size; /* 512 or 4096 */
  uint64_t data_offset; /* bytes, in the data file */
  uint64_t size;        /* bytes of the data area; multiple of sector_size */
  char created[32];     /* RFC 3339 UTC */
  uint8_t kcv[16];      /* key check value, HKDF from the DEK */
  uint8_t mac[32];      /* HMAC-SHA256 over the canonical "volume" object */
  json_t *wraps;        /* JSON array of wrap objects; owned */
  /* The id the next new wrap gets, so that ids are never reused. Not
   * MAC-covered: a KMS re-wrap, which never sees the DEK, must bump it. */
  int64_t next_wrap_id;
  json_t *extra; /* MAC-covered "volume" members this version keeps
                    but does not interpret (e.g. rotation state);
                    owned, may be NULL */
};

/* Which copies were found valid by cv_hdr_read. */
#define CV_HDR_COPY0 1
#define CV_HDR_COPY1 2

/* A new header for a volume: fresh random UUID, created = now, empty wraps.
 * kcv and mac are set later by cv_hdr_seal. Returns 0 or -errno. */
int cv_hdr_new (uint32_t sector_size, uint64_t data_offset, uint64_t size,
                struct cv_header **out);
void cv_hdr_free (struct cv_header *h);

/* Read both copies from fd (the volume or the detached header file; name is
 * used in messages), validate magic, version, offset, checksum and JSON, and
 * return the valid copy with the highest seqid in *out. *valid gets the
 * CV_HDR_COPY* mask. A corrupt copy is reported as a warning when the other
 * is good; both bad is an error.
 * Returns 0, -EINVAL (not a cryptvol
 * header: no magic in either copy), -EBADMSG (both copies corrupt),
 * -EPROTONOSUPPORT (unknown format version, cipher or required feature),
 * -EIO (read failed or file too short), -ENOMEM. */
int cv_hdr_read (int fd, const char *name, struct cv_header **out,
                 unsigned *valid);

/* Encode h as one copy's bytes (buf of CV_HDR_COPY_SIZE, copy 0 or 1) with
 * its seqid. Exposed for tests and the corrupt-image generator. Returns 0,
 * -EINVAL (h would not decode: bad uuid, geometry...), -E2BIG (the JSON does
 * not fit in a copy) or -ENOMEM; logged. */
int cv_hdr_encode (const struct cv_header *h, int copy, uint8_t *buf);
/* Decode one copy's bytes (for tests and tools; cv_hdr_read uses the same
 * decoder). Returns 0, -EINVAL (no magic), -EBADMSG (corrupt or invalid),
 * -EPROTONOSUPPORT or -ENOMEM; a failure is logged as an error. */
int cv_hdr_decode (const uint8_t *buf, int copy, const char *name,
                   struct cv_header **out);

/* Write h with seqid + 1: copy 0, fdatasync, copy 1, fdatasync, so that at
 * every instant at least one valid copy is on disk. The caller holds the
 * header write lock (cv_lock_header). h->seqid is bumped once copy 0 is on
 * disk. Returns 0 or -errno (logged). */
int cv_hdr_commit (int fd, const char *name, struct cv_header *h);

/* Compute and store kcv and mac from the DEK. Call after any change to the
 * "volume" object (not needed after changing wraps). */
int cv_hdr_seal (struct cv_header *h, const struct cv_key *dek);
/* Check a DEK against the header: -EKEYREJECTED if the key check value does
 * not match (a wrong DEK), -EBADMSG if it matches but the MAC does not (the
 * header was altered). Returns 0 when both hold. Logs nothing: callers know
 * which wrap produced the DEK and say so. */
int cv_hdr_authenticate (const struct cv_header *h, const struct cv_key *dek);

/* The binding string every wrap is bound to ("cryptvol:v1:volume:<uuid>");
 * points into h. */
const char *cv_hdr_binding (const struct cv_header *h);

/* The volume's geometry and identity as the header records them. */
const char *cv_hdr_uuid (const struct cv_header *h);
uint32_t cv_hdr_sector_size (const struct cv_header *h);
uint64_t cv_hdr_data_offset (const struct cv_header *h);
uint64_t cv_hdr_size (const struct cv_header *h);
uint64_t cv_hdr_seqid (const struct cv_header *h);
/* The wraps array, for lib/keys (which reads its members); never changed
 * through this pointer. */
const json_t *cv_hdr_wraps (const struct cv_header *h);

/* The whole header as a JSON object, as `keymgr info --json` shows it: the
 * stored JSON metadata plus "seqid". Never contains secrets (wrap blobs are
 * ciphertext). Caller decrefs; NULL when out of memory. */
json_t *cv_hdr_to_json (const struct cv_header *h);

/* Locks (OFD byte-range locks on the header file, released on close).
 * The header write lock serialises header writers (keymgr vs keymgr, keymgr vs
 * plugin); the in-use lock is held shared by a serving plugin and taken
 * exclusive by offline operations (rotate-dek, shred, restore).
 * wait = false makes a busy lock fail at once with -EBUSY, which is not
 * logged (the caller names the volume and who may hold it); other errors are
 * (-EBADF: the header lock needs fd open for writing). */
int cv_lock_header (int fd, bool wait);
int cv_unlock_header (int fd);
int cv_lock_in_use (int fd, bool exclusive, bool wait);

#endif

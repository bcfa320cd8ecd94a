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
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/dev.h"

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

/* The in-memory header; opaque outside lib/format (header-internal.h).
 * Only cv_hdr_read/cv_hdr_decode fill it from bytes. */
struct cv_header;

/* Which copies were found valid by cv_hdr_read. */
#define CV_HDR_COPY0 1
#define CV_HDR_COPY1 2

/* A new header for a volume: fresh random UUID, created = now, empty wraps.
 * kcv and mac are set later by cv_hdr_seal. Returns 0 or -errno. */
int cv_hdr_new (uint32_t sector_size, uint64_t data_offset, uint64_t size,
                struct cv_header **out);
void cv_hdr_free (struct cv_header *h);

/* Read both copies from d (the volume or the detached header file; its name
 * is used in messages), validate magic, version, offset, checksum and JSON, and
 * return the valid copy with the highest seqid in *out. *valid gets the
 * CV_HDR_COPY* mask. A corrupt copy is reported as a warning when the other
 * is good; both bad is an error.
 * Returns 0, -EINVAL (not a cryptvol
 * header: no magic in either copy), -EBADMSG (both copies corrupt),
 * -EPROTONOSUPPORT (unknown format version, cipher or required feature),
 * -EIO (read failed or file too short), -ENOMEM. */
int cv_hdr_read (struct cv_dev *d, struct cv_header **out, unsigned *valid);

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
int cv_hdr_commit (struct cv_dev *d, struct cv_header *h);
/* h, encoded with cv_hdr_encode (its seqid), was committed by another
 * writer (the server of a volume, through its control socket): leave h as
 * cv_hdr_commit would have (seqid + 1; no other copy). */
void cv_hdr_committed (struct cv_header *h);

/* Compute and store kcv and mac from the DEK: the seal of a DEK holder's
 * commit. A volume with wrap binding gets its wraps bound as they are now
 * (cv_hdr_bind_wraps); one with a seal sector gets its generation bumped,
 * which the seal sector then records (cv_hdr_commit_sealed). Call before
 * every commit made with the DEK. */
int cv_hdr_seal (struct cv_header *h, const struct cv_key *dek);
/* Check a DEK against the header: -EKEYREJECTED if the key check value does
 * not match (a wrong DEK), -EBADMSG if it matches but the MAC does not (the
 * header was altered). Returns 0 when both hold. Logs nothing: callers know
 * which wrap produced the DEK and say so. */
int cv_hdr_authenticate (const struct cv_header *h, const struct cv_key *dek);

/* --- Anti-rollback (lib/format/seal.c; doc/format.md "Seal") ---------
 * The seal sector: CV_SEAL_SIZE bytes in the data file (before the data
 * area) that record the volume's UUID and the generation of the header last
 * committed by a DEK holder, under a MAC keyed from the DEK. A header older
 * than the seal (restored from before a wrap change or a DEK rotation), or
 * another volume's, is refused before any data is served or written. */
#define CV_SEAL_SIZE 4096

/* Give h (new, or being upgraded) a seal sector at seal_offset of the data
 * file (from cv_seal_offset_for) and wrap binding; seal_offset UINT64_MAX:
 * binding only (no room). Seal h afterwards. Returns 0 or -ENOMEM. */
int cv_hdr_protect (struct cv_header *h, uint64_t seal_offset);
/* Whether h has a seal sector (*offset and *generation, may be NULL) and
 * whether its wraps are bound. */
bool cv_hdr_sealed (const struct cv_header *h, uint64_t *offset,
                    uint64_t *generation);
bool cv_hdr_binds_wraps (const struct cv_header *h);

/* Where create and upgrade put the seal sector: the last 4096-byte block
 * before the data area, or UINT64_MAX when there is no room (a detached
 * header with data offset 0; an attached one whose data starts right after
 * the header copies). */
uint64_t cv_seal_offset_for (bool attached, uint64_t data_offset);

/* Check the seal sector (read from dd, the data file; attached:
 * the header lives in the same file) against h, authenticated with dek (h's
 * DEK; during a DEK rotation also the old DEK, which a seal written before
 * the rotation's first commit is under). Returns 0 when h is the newest
 * header the volume has had, with *behind set when the seal lags h (a
 * commit interrupted before its seal was written: write it again);
 * -ESTALE: h is older than the volume (a header from before a wrap change
 * or a DEK rotation, or another volume's with the same key);
 * -EBADMSG: the seal is missing, altered or another volume's; -EIO.
 * Logged, naming the header, the data file and what to do. A header
 * without a seal: 0. */
int cv_seal_check (struct cv_dev *dd, bool attached, const struct cv_header *h,
                   const struct cv_key *dek, bool *behind);
/* Write the seal sector for h (sealed with dek) and make it durable.
 * Returns 0 or -errno (logged); 0 without a seal. */
int cv_seal_write (struct cv_dev *dd, bool attached, const struct cv_header *h,
                   const struct cv_key *dek);
/* A DEK holder's commit: cv_hdr_seal, cv_hdr_commit, then the seal sector
 * (in the data file dd; attached: dd is hd). Crash-safe in this order: a
 * seal that lags its header is accepted and written again at the next
 * open. Returns 0 or -errno (logged). */
int cv_hdr_commit_sealed (struct cv_dev *hd, struct cv_dev *dd,
                          struct cv_header *h, const struct cv_key *dek);

/* --- Wrap binding (lib/format/hdr-wraps.c) ----------------------------
 * cv_hdr_bind_wraps: record the digest of every wrap of h (and its next
 * wrap id) under the volume MAC; cv_hdr_seal does it. Returns 0 or -ENOMEM.
 * cv_hdr_wraps_check: after the MAC holds, check the wraps against what was
 * bound: a bound wrap changed in any member, a wrap added since that does
 * not authenticate itself (only KMS wraps whose encryption context binds
 * their metadata may be added without the DEK), or next_wrap_id lowered:
 * -EBADMSG, with the reason in why (not logged). Bound wraps that are gone are
 * not an error (a KMS re-wrap removes one without the DEK). 0 for a volume
 * without binding.
 * cv_hdr_wrap_bound: 1 (bound, unchanged), 0 (added since the last seal),
 * -EBADMSG (changed), -ENOENT (no such wrap, or no binding); not logged.
 * cv_hdr_wraps_settled: true when every wrap is bound and every bound wrap
 * is there (nothing for a DEK holder to seal). */
int cv_hdr_bind_wraps (struct cv_header *h);
int cv_hdr_wraps_check (const struct cv_header *h, char *why, size_t len);
int cv_hdr_wrap_bound (const struct cv_header *h, int64_t id);
bool cv_hdr_wraps_settled (const struct cv_header *h);

/* --- The other copy ---------------------------------------------------
 * cv_hdr_read keeps the other header copy when it is valid too. When the
 * copy read fails authentication (its MAC, its wraps) and the other passes,
 * the caller switches: cv_hdr_use_other makes h the other copy (h keeps its
 * address; the copy set aside is dropped) and warns, naming both copies;
 * the next commit rewrites both. Returns false when there is no other copy.
 * cv_hdr_other: the other copy or NULL (none valid, or the same commit byte
 * for byte); for checking it too: one that fails while h passes is reported
 * by the caller. */
bool cv_hdr_use_other (struct cv_header *h, const char *name, const char *why);
const struct cv_header *cv_hdr_other (const struct cv_header *h);
/* The copy h was read from: "primary" or "secondary". */
const char *cv_hdr_copy_name (const struct cv_header *h);

/* The binding string every wrap is bound to ("cryptvol:v1:volume:<uuid>");
 * points into h. */
const char *cv_hdr_binding (const struct cv_header *h);

/* The volume's geometry and identity as the header records them. */
const char *cv_hdr_uuid (const struct cv_header *h);
uint32_t cv_hdr_sector_size (const struct cv_header *h);
uint64_t cv_hdr_data_offset (const struct cv_header *h);
uint64_t cv_hdr_size (const struct cv_header *h);
uint64_t cv_hdr_seqid (const struct cv_header *h);
/* The wraps array, for lib/keys (which reads its members) and for printing
 * (list-wraps --json); never changed through this pointer. */
const json_t *cv_hdr_wraps (const struct cv_header *h);

const char *cv_hdr_cipher (const struct cv_header *h);
const char *cv_hdr_created (const struct cv_header *h);

/* Make h's next commit supersede cur, the header now on disk (restoring a
 * backup): h's seqid and generation are raised to cur's if lower, and h
 * takes cur's seal sector and wrap binding if it has none. Seal h after. */
void cv_hdr_supersede (struct cv_header *h, const struct cv_header *cur);

/* The wraps (lib/format/hdr-wraps.c). A wrap's common members as read from
 * the header; the strings point into h and stay valid until that wrap is
 * changed or removed or h is freed. */
struct cv_wrap_info {
  int64_t id;
  const char *type;     /* "file", "passphrase", "kms", "pkcs11"... */
  const char *ref;      /* key file, KMS key, PKCS#11 URI; NULL: none */
  const char *created;  /* RFC 3339 UTC; NULL if absent */
  const char *verified; /* when last seen to unlock the volume; or NULL */
  const char *kdf;      /* passphrase wraps: "argon2id" or "scrypt"; or NULL */
};

size_t cv_hdr_wrap_count (const struct cv_header *h);
/* The i-th wrap in header order. Returns 0, or -ENOENT when i >= count. */
int cv_hdr_wrap_at (const struct cv_header *h, size_t i,
                    struct cv_wrap_info *out);
/* The wrap with that id (out may be NULL). Returns 0, or -ENOENT (not
 * logged: the caller says what it was looking for). */
int cv_hdr_wrap_find (const struct cv_header *h, int64_t id,
                      struct cv_wrap_info *out);
/* A provider's own string member of wrap id ("key_arn", "token_label"...),
 * or NULL if the wrap or the member is absent or not a string. */
const char *cv_hdr_wrap_member (const struct cv_header *h, int64_t id,
                                const char *key);
/* A copy of wrap id as a JSON object, for --json output (ciphertext only,
 * never a secret). Caller decrefs; NULL if there is no such wrap or out of
 * memory. */
json_t *cv_hdr_wrap_to_json (const struct cv_header *h, int64_t id);

/* A new wrap object with the common members: "id" (id >= 0: that id, for a
 * wrap that replaces the one with this id; CV_WRAP_ID_NEW: the next id of
 * the header, which is taken only when the wrap is appended, so that ids are
 * never reused), "type", "ref" (omitted when NULL) and "created" (now). For
 * lib/keys, which adds the provider's members. Caller decrefs *out.
 * Returns 0, -EOVERFLOW (no id left; logged) or -ENOMEM. */
#define CV_WRAP_ID_NEW (-1)
int cv_hdr_wrap_new (const struct cv_header *h, int64_t id, const char *type,
                     const char *ref, json_t **out);
/* Append w (taken, made by cv_hdr_wrap_new with CV_WRAP_ID_NEW) and take its
 * id. Returns 0, -EEXIST (h has a wrap with that id; logged) or -ENOMEM. */
int cv_hdr_wrap_append (struct cv_header *h, json_t *w);
/* Replace every wrap by wraps (taken: an array of wraps made by
 * cv_hdr_wrap_new with the ids of the wraps they replace, one for each;
 * DEK rotation).
 * Returns 0, or -EINVAL (logged) if wraps is not such an array. */
int cv_hdr_wraps_replace (struct cv_header *h, json_t *wraps);
/* Remove wrap id; name (the header's file) is for messages. Returns 0,
 * -ENOENT (no such wrap) or -EPERM (it is the last wrap: the volume could no
 * longer be opened); both logged. */
int cv_hdr_wrap_remove (struct cv_header *h, const char *name, int64_t id);
/* Record that wrap id was just seen to unlock the volume ("verified": now).
 * Returns 0, -ENOENT (not logged) or -ENOMEM. */
int cv_hdr_wrap_mark_verified (struct cv_header *h, int64_t id);

/* The DEK rotation state ("rotation" in the MAC-covered "volume" object;
 * lib/format/hdr-rotation.c). lib/vol/rotate.c owns its meaning. */
struct cv_hdr_rotation {
  char id[17];       /* 16 hex digits naming this rotation */
  uint64_t boundary; /* bytes re-encrypted; a multiple of the sector size */
  uint64_t step;     /* bytes per step (0: not recorded) */
  char started[32];  /* RFC 3339 UTC */
  /* The old DEK, AES-256-GCM sealed under a key from the new one. */
  uint8_t iv[12], ct[64], tag[16];
};
bool cv_hdr_rotating (const struct cv_header *h);
/* The rotation state of h; name (the header's file) is for messages.
 * Returns 0, -ENOENT (no rotation in progress; not logged) or -EBADMSG (the
 * state is malformed; logged) or -ENOMEM. */
int cv_hdr_rotation_get (const struct cv_header *h, const char *name,
                         struct cv_hdr_rotation *r);
/* Record r as h's rotation state (seal h afterwards: it is MAC-covered).
 * Returns 0 or -ENOMEM. */
int cv_hdr_rotation_set (struct cv_header *h, const struct cv_hdr_rotation *r);
/* Forget the rotation state (the rotation finished). */
void cv_hdr_rotation_clear (struct cv_header *h);
/* Seal odek, the old DEK, under dek, the new one, into r (iv, ct, tag) for
 * rotation r->id of h. Returns 0 or -errno. */
int cv_hdr_rotation_seal_old (const struct cv_header *h,
                              struct cv_hdr_rotation *r,
                              const struct cv_key *dek,
                              const struct cv_key *odek);
/* The old DEK of the rotation h records, under dek (its new DEK), in *odek
 * (caller frees). Returns 0, -ENOENT (no rotation; not logged), -EBADMSG
 * (it does not authenticate: altered; logged) or -errno. */
int cv_hdr_rotation_old_dek (const struct cv_header *h, const char *name,
                             const struct cv_key *dek, struct cv_key **odek);

/* The whole header as a JSON object, as `keymgr info --json` shows it: the
 * stored JSON metadata plus "seqid". Never contains secrets (wrap blobs are
 * ciphertext). Caller decrefs; NULL when out of memory. */
json_t *cv_hdr_to_json (const struct cv_header *h);

/* Locks (the device's: OFD byte-range locks on a header file, released on
 * close; an RBD image's exclusive lock, see common/dev.h).
 * The header write lock serialises header writers (keymgr vs keymgr, keymgr vs
 * plugin); the in-use lock is held shared by a serving plugin and taken
 * exclusive by offline operations (rotate-dek, shred, restore).
 * wait = false makes a busy lock fail at once with -EBUSY, which is not
 * logged (the caller names the volume and who may hold it); other errors are
 * (-EBADF: the header lock needs a file open for writing). */
int cv_lock_header (struct cv_dev *d, bool wait);
int cv_unlock_header (struct cv_dev *d);
int cv_lock_in_use (struct cv_dev *d, bool exclusive, bool wait);
/* Who holds the in-use lock of d, without taking it (d may be read-only):
 * 0 (nobody else), 1 (held shared: a server) or 2 (held exclusive: an
 * offline keymgr operation), or -errno (logged). */
int cv_lock_in_use_holder (struct cv_dev *d);
/* As cv_lock_header and cv_lock_in_use, but a busy lock is retried for up to
 * wait_ms milliseconds (0: once) before -EBUSY (not logged). */
int cv_lock_header_for (struct cv_dev *d, unsigned wait_ms);
int cv_lock_in_use_for (struct cv_dev *d, bool exclusive, unsigned wait_ms);

#endif

/* The in-memory header as lib/format sees it. Private to lib/format (and to
 * the unit tests and the corrupt-image tool, which build headers field by
 * field); everyone else uses the functions of header.h. */
#ifndef CV_HEADER_INTERNAL_H
#define CV_HEADER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "format/header.h"

/* Everything outside lib/format, but for the tests, is built with
 * CV_HEADER_OPAQUE (see the Makefile): including this there is an error. */
#ifdef CV_HEADER_OPAQUE
#error "struct cv_header is private to lib/format: use format/header.h"
/* The binary form (16 bytes) of h's UUID. */
void cv_hdr_uuid_bin (const struct cv_header *h, uint8_t out[16]);

#endif

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
  /* Anti-rollback ("volume.seal", requirement "seal"): the seal sector's
   * byte offset in the data file, and the generation every seal (a commit
   * by a DEK holder) bumps. has_seal false: a volume without one. */
  bool has_seal;
  uint64_t seal_offset;
  uint64_t generation;
  /* Wrap binding ("volume.wrap_binding", requirement "wrap-binding"): wrap
   * id (decimal text) -> SHA-256 (hex) of the wrap's canonical JSON, and
   * next_wrap_id, as the DEK holder last sealed them; owned. NULL: the
   * wraps are not bound (a volume made before, not upgraded). */
  json_t *bound;
  int64_t bound_next;
  /* cv_hdr_read: the other copy when it is valid too (a tampered copy is
   * set aside for it by cv_hdr_use_other); owned, may be NULL. */
  struct cv_header *other;
  int copy; /* the copy this was read from: 0 or 1 (cv_hdr_new: 0) */
};

/* The id the next new wrap gets: h->next_wrap_id, or one past the largest
 * id present if that is higher. The one place that decides wrap ids. */
int64_t cv_hdr_next_wrap_id (const struct cv_header *h);

/* The binary form (16 bytes) of h's UUID. */
void cv_hdr_uuid_bin (const struct cv_header *h, uint8_t out[16]);

#endif

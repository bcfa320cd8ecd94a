/* The in-memory header as lib/format sees it. Private to lib/format (and to
 * the unit tests and the corrupt-image tool, which build headers field by
 * field); everyone else uses the functions of header.h. */
#ifndef CV_HEADER_INTERNAL_H
#define CV_HEADER_INTERNAL_H

#include <stdint.h>

#include <jansson.h>

#include "format/header.h"

/* Everything outside lib/format, but for the tests, is built with
 * CV_HEADER_OPAQUE (see the Makefile): including this there is an error. */
#ifdef CV_HEADER_OPAQUE
#error "struct cv_header is private to lib/format: use format/header.h"
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
};

/* The id the next new wrap gets: h->next_wrap_id, or one past the largest
 * id present if that is higher. The one place that decides wrap ids. */
int64_t cv_hdr_next_wrap_id (const struct cv_header *h);

#endif

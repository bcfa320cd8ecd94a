/* The input of the header fuzz targets (fuzz-header.c, fuzz-unlock.c): a
 * header area written compactly, so that the fuzzer spends its mutations on
 * the bytes a reader interprets rather than on 128 KiB of padding:
 *
 *   FLAGS  (1 byte)
 *   COPY0  the first 80 bytes of copy 0's binary header (fewer: the rest
 *          zero), then its JSON text
 *   SEP    HDR_INPUT_SEP (bytes that never occur in valid JSON text)
 *   COPY1  the same for copy 1; no SEP: copy 1 is all zero (no magic)
 *
 * Like cryptsetup's LUKS2 fuzzers, the harness repairs what a writer
 * computes, so that mutations reach the JSON parser and the schema checks:
 * each copy's json_len is set to the length of its text and its SHA-256
 * checksum (doc/format.md, "Checksum") is recomputed, unless FLAGS says to
 * keep the stored value (bits HDR_KEEP_*), which leaves those checks to the
 * fuzzer too. tests/fuzz/make-seeds.sh writes real headers in this form. */
#ifndef CV_FUZZ_HDR_INPUT_H
#define CV_FUZZ_HDR_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/bytes.h"
#include "crypto/prim.h"
#include "format/header.h"

#define HDR_INPUT_SEP "\xff\xfe--copy1--\xfe\xff"
#define HDR_BIN_USED 80     /* binary header bytes a reader looks at */
#define HDR_OFF_JSON_LEN 12 /* doc/format.md, "Binary header" */
#define HDR_OFF_CSUM 48
#define HDR_KEEP_CSUM0 0x01
#define HDR_KEEP_CSUM1 0x02
#define HDR_KEEP_LEN0 0x04
#define HDR_KEEP_LEN1 0x08

/* Write one copy (its compact bytes p, n) into dst (CV_HDR_COPY_SIZE bytes,
 * zero) and repair it as flags say. */
static void
hdr_input_copy (uint8_t *dst, const uint8_t *p, size_t n, int keep_csum,
                int keep_len)
{
  size_t bin = n < HDR_BIN_USED ? n : HDR_BIN_USED;
  size_t text = n - bin;

  memcpy (dst, p, bin);
  if (text > CV_HDR_JSON_MAX)
    text = CV_HDR_JSON_MAX;
  memcpy (dst + CV_HDR_BIN_SIZE, p + bin, text);
  if (!keep_len)
    cv_put_be32 (dst + HDR_OFF_JSON_LEN, (uint32_t) text);
  uint32_t len = cv_get_be32 (dst + HDR_OFF_JSON_LEN);
  if (!keep_csum && len <= CV_HDR_JSON_MAX) {
    uint8_t saved[32];
    memcpy (saved, dst + HDR_OFF_CSUM, sizeof saved);
    memset (dst + HDR_OFF_CSUM, 0, sizeof saved);
    if (cv_sha256 (dst, CV_HDR_BIN_SIZE + len, dst + HDR_OFF_CSUM) < 0)
      memcpy (dst + HDR_OFF_CSUM, saved, sizeof saved);
  }
}

/* Build the header area (CV_HDR_AREA_SIZE bytes) from a fuzz input.
 * Returns the number of copies the input gives (1 or 2), 0 if empty. */
static int
hdr_input_area (const uint8_t *data, size_t size, uint8_t *area)
{
  static const char sep[] = HDR_INPUT_SEP;
  const size_t seplen = sizeof sep - 1;

  memset (area, 0, CV_HDR_AREA_SIZE);
  if (size == 0)
    return 0;
  unsigned flags = data[0];
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  const uint8_t *s = memmem (p, n, sep, seplen);
  size_t n0 = s ? (size_t) (s - p) : n;

  hdr_input_copy (area, p, n0, flags & HDR_KEEP_CSUM0, flags & HDR_KEEP_LEN0);
  if (!s)
    return 1;
  hdr_input_copy (area + CV_HDR_COPY_SIZE, s + seplen, n - n0 - seplen,
                  flags & HDR_KEEP_CSUM1, flags & HDR_KEEP_LEN1);
  return 2;
}

#endif

/* A byte pattern that depends on the file offset and a seed, for I/O tests:
 * fill a buffer as it should be at an offset, find where it is not. */
#ifndef CV_TEST_PATTERN_H
#define CV_TEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* The byte expected at file offset off for a given seed. */
static inline uint8_t
pattern (uint64_t off, unsigned seed)
{
  return (uint8_t) ((off >> 9) * 31 + off * 7 + seed);
}

static inline void
fill (uint8_t *buf, size_t len, uint64_t off, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = pattern (off + i, seed);
}

/* Index of the first byte that differs from the pattern, or len. */
static inline size_t
mismatch (const uint8_t *buf, size_t len, uint64_t off, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    if (buf[i] != pattern (off + i, seed))
      return i;
  return len;
}

#endif

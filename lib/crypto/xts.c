/* The AES-256-XTS sector engine: the tweak numbering (xts.h), the choice of
 * implementation (OpenSSL or libgcrypt: a known-answer self-test of each,
 * and for auto a short timing of both), and the sector loop over the
 * implementation's one-data-unit function. */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "crypto/xts-internal.h"

#define HALF (CV_DEK_LEN / 2)
#define NIMPL 3 /* enum cv_xts_impl values */

static const char *const impl_names[NIMPL] = { "auto", "openssl", "gcrypt" };

int
cv_xts_impl_parse (const char *s, enum cv_xts_impl *out)
{
  for (unsigned i = 0; i < NIMPL; i++)
    if (strcmp (s, impl_names[i]) == 0) {
      *out = (enum cv_xts_impl) i;
      return 0;
    }
  return -EINVAL;
}

const char *
cv_xts_impl_name (enum cv_xts_impl impl)
{
  return (unsigned) impl < NIMPL ? impl_names[impl] : "?";
}

static void
xts_freep (struct cv_xts **x)
{
  cv_xts_free (*x);
}

/* An engine of impl (not auto) keyed with key, without the self-test. */
static int
xts_make (enum cv_xts_impl impl, const uint8_t key[CV_DEK_LEN],
          unsigned sector_size, struct cv_xts **out)
{
  __attribute__ ((cleanup (xts_freep))) struct cv_xts *x = NULL;
  int r;

  if (sector_size != 512 && sector_size != 4096) {
    cv_err ("xts: sector size %u is not supported; use 512 or 4096",
            sector_size);
    return -EINVAL;
  }
  if (CRYPTO_memcmp (key, key + HALF, HALF) == 0) {
    cv_err ("xts: the two 32-byte halves of the 64-byte key are equal, which "
            "XTS forbids; generate a new key");
    return -EINVAL;
  }
  x = calloc (1, sizeof *x);
  if (!x) {
    cv_err ("xts: cannot allocate the engine: out of memory");
    return -ENOMEM;
  }
  x->impl = impl;
  x->sector_size = sector_size;
  x->shift = sector_size == 4096 ? 3 : 0;
  r = impl == CV_XTS_GCRYPT ? cv_xts_gc_key (x, key) : cv_xts_ossl_key (x, key);
  if (r < 0)
    return r;
  *out = STEAL (x);
  return 0;
}

/* IEEE 1619-2007 vector 10: AES-256 (key1 = digits of e, key2 = of pi),
 * data unit 0xff, 512 bytes of 0x00..0xff twice; the SHA-256 of its
 * ciphertext (the vector itself is in tests/data/vectors). */
static const uint8_t kat_key[CV_DEK_LEN]
    = { 0x27, 0x18, 0x28, 0x18, 0x28, 0x45, 0x90, 0x45, 0x23, 0x53, 0x60,
        0x28, 0x74, 0x71, 0x35, 0x26, 0x62, 0x49, 0x77, 0x57, 0x24, 0x70,
        0x93, 0x69, 0x99, 0x59, 0x57, 0x49, 0x66, 0x96, 0x76, 0x27, 0x31,
        0x41, 0x59, 0x26, 0x53, 0x58, 0x97, 0x93, 0x23, 0x84, 0x62, 0x64,
        0x33, 0x83, 0x27, 0x95, 0x02, 0x88, 0x41, 0x97, 0x16, 0x93, 0x99,
        0x37, 0x51, 0x05, 0x82, 0x09, 0x74, 0x94, 0x45, 0x92 };
static const uint8_t kat_ct_sha256[32]
    = { 0xe9, 0x7e, 0x97, 0x4f, 0xa3, 0x93, 0xaf, 0x79, 0x4f, 0x7a, 0x46,
        0x84, 0x39, 0x58, 0x14, 0xcf, 0x82, 0x0d, 0xe6, 0x0a, 0x01, 0xea,
        0xec, 0x67, 0x7d, 0x87, 0xb4, 0x52, 0xe3, 0x16, 0xb3, 0x64 };

enum cv_xts_impl cv_xts_kat_break_for_tests = CV_XTS_AUTO;

/* The known-answer test of impl: vector 10 encrypted (its hash compared)
 * and decrypted back. 0 or -EIO (logged). */
static int
self_test (enum cv_xts_impl impl)
{
  __attribute__ ((cleanup (xts_freep))) struct cv_xts *x = NULL;
  uint8_t tweak[16] = { 0xff }, pt[512], buf[512], md[32];
  int r;

  for (size_t i = 0; i < sizeof pt; i++)
    pt[i] = (uint8_t) i;
  if ((r = xts_make (impl, kat_key, 512, &x)) < 0)
    return r;
  if (x->unit (x, 1, tweak, buf, pt, sizeof pt) < 0
      || (impl == cv_xts_kat_break_for_tests && (buf[7] ^= 1) == 0)
      || cv_sha256 (buf, sizeof buf, md) < 0
      || memcmp (md, kat_ct_sha256, sizeof md) != 0
      || x->unit (x, 0, tweak, buf, buf, sizeof buf) < 0
      || memcmp (buf, pt, sizeof pt) != 0) {
    cv_err ("xts: %s failed its AES-256-XTS known-answer test; it is not "
            "used (choose the other with xts-engine=)",
            impl_names[impl]);
    return -EIO;
  }
  return 0;
}

/* Seconds of this thread's CPU time: what a timing on a shared machine can
 * trust (wall time counts other processes' turns). */
static double
thread_cpu (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Bytes per CPU second of impl encrypting 64 KiB sector by sector in place,
 * the best of 3 turns of about 1 ms; 0 if it cannot be keyed. */
static double
rate_of (enum cv_xts_impl impl, unsigned ss, uint8_t *buf, size_t len)
{
  __attribute__ ((cleanup (xts_freep))) struct cv_xts *x = NULL;
  uint8_t key[CV_DEK_LEN];
  double best = 0;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 37 + 1); /* a throw-away key */
  if (xts_make (impl, key, ss, &x) < 0)
    return 0;
  for (int turn = 0; turn < 3; turn++) {
    double t0 = thread_cpu (), t;
    size_t bytes = 0;
    do {
      if (cv_xts_encrypt (x, buf, buf, bytes / ss, len / ss) < 0)
        return 0;
      bytes += len;
    } while ((t = thread_cpu () - t0) < 1e-3);
    if (bytes / t > best)
      best = bytes / t;
  }
  return best;
}

static double
fmax2 (double a, double b)
{
  return a > b ? a : b;
}

static pthread_mutex_t pick_lock = PTHREAD_MUTEX_INITIALIZER;
static int tested[NIMPL]; /* 0 untested, 1 passed, -errno failed */
static int picked[2];     /* per sector size (512, 4096): 0, or the impl */

static int
tested_ok (enum cv_xts_impl impl)
{
  if (tested[impl] == 0)
    tested[impl] = self_test (impl) == 0 ? 1 : -EIO;
  return tested[impl] < 0 ? tested[impl] : 0;
}

/* The faster of the implementations that pass, timed once (pick_lock
 * held). */
static int
calibrate (unsigned ss, enum cv_xts_impl *got)
{
  const size_t len = 64 * 1024;
  bool ossl = tested_ok (CV_XTS_OPENSSL) == 0;
  bool gc = tested_ok (CV_XTS_GCRYPT) == 0;
  double r_ossl = 0, r_gc = 0;
  uint8_t *buf;

  if (!ossl && !gc)
    return -EIO;
  if (!(buf = calloc (1, len))) {
    cv_err ("xts: out of memory timing the implementations");
    return -ENOMEM;
  }
  /* Alternate, so that a burst of other work hits both. */
  for (int i = 0; i < 2; i++) {
    if (ossl)
      r_ossl = fmax2 (r_ossl, rate_of (CV_XTS_OPENSSL, ss, buf, len));
    if (gc)
      r_gc = fmax2 (r_gc, rate_of (CV_XTS_GCRYPT, ss, buf, len));
  }
  free (buf);
  *got = r_gc > r_ossl ? CV_XTS_GCRYPT : CV_XTS_OPENSSL;
  cv_debug ("xts: %u-byte sectors: libgcrypt %.1f GB/s, OpenSSL %.1f GB/s "
            "(one core): using %s",
            ss, r_gc / 1e9, r_ossl / 1e9, impl_names[*got]);
  return 0;
}

int
cv_xts_pick (enum cv_xts_impl want, unsigned sector_size, enum cv_xts_impl *got)
{
  int *slot = &picked[sector_size == 4096];
  int r = 0;

  pthread_mutex_lock (&pick_lock);
  if (want != CV_XTS_AUTO) {
    if ((unsigned) want >= NIMPL)
      r = -EINVAL;
    else if ((r = tested_ok (want)) == 0)
      *got = want;
  } else if (*slot)
    *got = (enum cv_xts_impl) * slot;
  else if ((r = calibrate (sector_size, got)) == 0)
    *slot = (int) *got;
  pthread_mutex_unlock (&pick_lock);
  return r;
}

int
cv_xts_new (enum cv_xts_impl impl, const uint8_t key[CV_DEK_LEN],
            unsigned sector_size, struct cv_xts **out)
{
  int r;

  if ((r = cv_xts_pick (impl, sector_size == 4096 ? 4096 : 512, &impl)) < 0)
    return r;
  return xts_make (impl, key, sector_size, out);
}

enum cv_xts_impl
cv_xts_impl_of (const struct cv_xts *x)
{
  return x->impl;
}

/* Free x and its keyed contexts (wiped). NULL is allowed. */
void
cv_xts_free (struct cv_xts *x)
{
  if (!x)
    return;
  if (x->release)
    x->release (x);
  free (x);
}

/* The hot path: nsect sectors, each one call of the implementation with its
 * tweak. The tweak is 128 bits wide so that 8 * index cannot wrap. */
static int
crypt_sectors (struct cv_xts *x, int enc, uint8_t *dst, const uint8_t *src,
               uint64_t first, size_t nsect)
{
  unsigned __int128 t = (unsigned __int128) first << x->shift;
  const unsigned __int128 step = (unsigned __int128) 1 << x->shift;
  const size_t ss = x->sector_size;
  uint64_t tweak[2];

  for (size_t i = 0; i < nsect; i++, t += step) {
    tweak[0] = htole64 ((uint64_t) t);
    tweak[1] = htole64 ((uint64_t) (t >> 64));
    if (x->unit (x, enc, (const uint8_t *) tweak, dst + i * ss, src + i * ss,
                 ss)
        < 0) {
      cv_err ("xts: %s sector %llu failed", enc ? "encrypting" : "decrypting",
              (unsigned long long) (first + i));
      return -EIO;
    }
  }
  return 0;
}

/* Encrypt nsect sectors src -> dst (may be equal). 0 or -EIO. */
int
cv_xts_encrypt (struct cv_xts *x, uint8_t *dst, const uint8_t *src,
                uint64_t first, size_t nsect)
{
  return crypt_sectors (x, 1, dst, src, first, nsect);
}

/* Decrypt nsect sectors src -> dst (may be equal). 0 or -EIO. */
int
cv_xts_decrypt (struct cv_xts *x, uint8_t *dst, const uint8_t *src,
                uint64_t first, size_t nsect)
{
  return crypt_sectors (x, 0, dst, src, first, nsect);
}

/* One data unit with an explicit tweak. 0, -EINVAL (len < 16 or > INT_MAX)
 * or -EIO. */
int
cv_xts_unit (struct cv_xts *x, const uint8_t tweak[16], uint8_t *dst,
             const uint8_t *src, size_t len, int enc)
{
  if (len < 16 || len > INT_MAX) {
    cv_err ("xts: data unit of %zu bytes; XTS needs 16 to %d bytes", len,
            INT_MAX);
    return -EINVAL;
  }
  return x->unit (x, enc, tweak, dst, src, len);
}

/* A fresh 64-byte DEK in secure memory with distinct halves; the caller
 * frees it with cv_key_free. 0 or -errno (already logged). */
int
cv_dek_generate (struct cv_key **out)
{
  CLEANUP_KEY struct cv_key *k = NULL;
  int r = cv_key_new (CV_DEK_LEN, &k);

  if (r < 0)
    return r;
  do {
    r = cv_random (k->b, CV_DEK_LEN);
    if (r < 0)
      return r;
  } while (CRYPTO_memcmp (k->b, k->b + HALF, HALF) == 0);
  *out = STEAL (k);
  return 0;
}

/* The libgcrypt implementation of the XTS engine: one handle, opened in
 * secure memory (our secure heap, secheap.h), keyed once; per data unit one
 * gcry_cipher_setiv and one gcry_cipher_encrypt or _decrypt. libgcrypt 1.10
 * has a VAES/AVX-512 XTS path, about twice OpenSSL 3.0's AES-NI loop on
 * CPUs that have it (doc/performance.md). */
#include <errno.h>
#include <pthread.h>

#include <gcrypt.h>

#include "common/log.h"
#include "crypto/secheap.h"
#include "crypto/xts-internal.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool ready;

/* Initialise libgcrypt (if nothing in the process has) and route its secure
 * allocations to our heap, before the first handle. */
static void
init (void)
{
  if (!gcry_check_version (GCRYPT_VERSION)) {
    cv_err ("xts: libgcrypt %s is older than the %s this was built with",
            gcry_check_version (NULL), GCRYPT_VERSION);
    return;
  }
  cv_secheap_hook_gcrypt ();
  if (!gcry_control (GCRYCTL_INITIALIZATION_FINISHED_P))
    gcry_control (GCRYCTL_INITIALIZATION_FINISHED, 0);
  ready = true;
}

static int
gc_fail (const char *what, gcry_error_t e)
{
  cv_err ("xts: libgcrypt: %s: %s", what, gcry_strerror (e));
  return gcry_err_code (e) == GPG_ERR_ENOMEM ? -ENOMEM : -EIO;
}

static int
gc_unit (struct cv_xts *x, int enc, const uint8_t tweak[16], uint8_t *dst,
         const uint8_t *src, size_t len)
{
  /* In place is asked for by passing no input. */
  const uint8_t *in = src == dst ? NULL : src;
  size_t inlen = in ? len : 0;
  gcry_error_t e = gcry_cipher_setiv (x->gc, tweak, 16);

  if (!e)
    e = enc ? gcry_cipher_encrypt (x->gc, dst, len, in, inlen)
            : gcry_cipher_decrypt (x->gc, dst, len, in, inlen);
  return e ? gc_fail (enc ? "encrypting a data unit" : "decrypting a data unit",
                      e)
           : 0;
}

static void
gc_release (struct cv_xts *x)
{
  gcry_cipher_close (x->gc); /* wipes it; our heap wipes it again */
}

int
cv_xts_gc_key (struct cv_xts *x, const uint8_t key[CV_DEK_LEN])
{
  gcry_error_t e;

  pthread_once (&once, init);
  if (!ready)
    return -EIO;
  e = gcry_cipher_open (&x->gc, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_XTS,
                        GCRY_CIPHER_SECURE);
  if (e)
    return gc_fail ("opening AES-256-XTS", e);
  if ((e = gcry_cipher_setkey (x->gc, key, CV_DEK_LEN))) {
    gcry_cipher_close (x->gc);
    return gc_fail ("keying AES-256-XTS", e);
  }
  x->unit = gc_unit;
  x->release = gc_release;
  return 0;
}

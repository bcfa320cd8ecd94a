/* The choice of XTS implementation: names, the known-answer self-test that
 * keeps a broken implementation out (auto then takes the other), the two
 * implementations agreeing byte for byte, and their key schedules living in
 * the secure heap (out of core dumps). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secheap.h"
#include "crypto/xts-internal.h"
#include "harness.h"

static void
test_names (void)
{
  enum cv_xts_impl i = CV_XTS_GCRYPT;

  CHECK (cv_xts_impl_parse ("auto", &i) == 0 && i == CV_XTS_AUTO, "auto");
  CHECK (cv_xts_impl_parse ("openssl", &i) == 0 && i == CV_XTS_OPENSSL,
         "openssl");
  CHECK (cv_xts_impl_parse ("gcrypt", &i) == 0 && i == CV_XTS_GCRYPT, "gcrypt");
  CHECK (cv_xts_impl_parse ("nettle", &i) == -EINVAL, "nettle accepted");
  CHECK (cv_xts_impl_parse ("", &i) == -EINVAL, "empty accepted");
  CHECK (strcmp (cv_xts_impl_name (CV_XTS_GCRYPT), "gcrypt") == 0, "name");
  CHECK (cv_xts_pick ((enum cv_xts_impl) 7, 4096, &i) == -EINVAL,
         "an unknown implementation was picked");
}

/* The same key and sectors give the same ciphertext through both. */
static void
test_agree (unsigned ss)
{
  uint8_t key[CV_DEK_LEN];
  const size_t n = 64 * 1024;
  CLEANUP_FREE uint8_t *pt = malloc (n);
  CLEANUP_FREE uint8_t *a = malloc (n);
  CLEANUP_FREE uint8_t *b = malloc (n);
  struct cv_xts *xo = NULL, *xg = NULL;

  if (!pt || !a || !b)
    return;
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 13 + 5);
  for (size_t i = 0; i < n; i++)
    pt[i] = (uint8_t) (i * 7 + i / 509);
  CHECK (cv_xts_new (CV_XTS_OPENSSL, key, ss, &xo) == 0
             && cv_xts_new (CV_XTS_GCRYPT, key, ss, &xg) == 0,
         "keying both");
  if (xo && xg) {
    CHECK (cv_xts_impl_of (xo) == CV_XTS_OPENSSL
               && cv_xts_impl_of (xg) == CV_XTS_GCRYPT,
           "implementations");
    CHECK (cv_xts_encrypt (xo, a, pt, 1000, n / ss) == 0
               && cv_xts_encrypt (xg, b, pt, 1000, n / ss) == 0
               && memcmp (a, b, n) == 0,
           "%u-byte sectors: OpenSSL and libgcrypt differ", ss);
    CHECK (cv_xts_decrypt (xg, b, a, 1000, n / ss) == 0
               && memcmp (b, pt, n) == 0,
           "%u-byte sectors: libgcrypt does not decrypt OpenSSL's", ss);
    /* Key schedules: OpenSSL's two contexts and libgcrypt's handle. */
    CHECK (cv_secheap_owns (xo->ossl.enc) && cv_secheap_owns (xo->ossl.dec),
           "OpenSSL's contexts are not in the secure heap");
    CHECK (cv_secheap_owns (xg->gc),
           "libgcrypt's handle is not in the secure heap");
  }
  cv_xts_free (xo);
  cv_xts_free (xg);
}

/* A block freed is wiped and reused; ordinary memory is not ours. */
static void
test_heap (void)
{
  uint8_t *p = cv_secheap_alloc (100), *q;
  int on_stack;

  CHECK (p && cv_secheap_owns (p) && (uintptr_t) p % 16 == 0, "alloc");
  if (!p)
    return;
  memset (p, 0xa5, 100);
  cv_secheap_free (p);
  CHECK (p[0] == 0 && p[99] == 0, "a freed block is not wiped");
  q = cv_secheap_alloc (40);
  CHECK (q == p, "the freed block was not reused");
  cv_secheap_free (q);
  CHECK (!cv_secheap_owns (&on_stack), "the stack is ours?");
  CHECK (cv_secheap_alloc ((size_t) 1 << 40) == NULL, "1 TiB allocated");
}

/* An implementation that fails its known-answer test is refused when asked
 * for by name, and auto takes the other. In a child: the outcome of the
 * self-test is kept for the process, so the child is forked before any
 * implementation is used. */
static void
self_test_child (void)
{
  enum cv_xts_impl got = CV_XTS_AUTO;
  uint8_t key[CV_DEK_LEN];
  struct cv_xts *x = NULL;

  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) i;
  cv_xts_kat_break_for_tests = CV_XTS_GCRYPT;
  harness_log_clear ();
  CHECK (cv_xts_pick (CV_XTS_GCRYPT, 4096, &got) == -EIO,
         "a broken implementation was picked");
  CHECK (strstr (harness_logged (), "known-answer") != NULL,
         "no message; log: %s", harness_logged ());
  CHECK (cv_xts_new (CV_XTS_GCRYPT, key, 4096, &x) == -EIO && !x,
         "a broken implementation was keyed");
  CHECK (cv_xts_pick (CV_XTS_AUTO, 512, &got) == 0 && got == CV_XTS_OPENSSL,
         "auto took %s", cv_xts_impl_name (got));
}

static void
test_self_test (void)
{
  int status = 0;
  pid_t pid = fork ();

  if (pid == 0) {
    self_test_child ();
    _exit (harness_failures ? 1 : 0);
  }
  CHECK (pid > 0 && waitpid (pid, &status, 0) == pid && WIFEXITED (status)
             && WEXITSTATUS (status) == 0,
         "the self-test checks failed in the child (status %d)", status);
}

int
main (void)
{
  harness_init ();
  test_self_test (); /* first: nothing tested yet in the child */
  test_names ();
  test_heap ();
  test_agree (512);
  test_agree (4096);
  return harness_done ("test-crypto-xts-impl");
}

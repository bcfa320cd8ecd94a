/* The secure heap: where OpenSSL and libgcrypt put the cipher contexts that
 * hold our key schedules. One reserved mapping, excluded from core dumps,
 * its pages locked as they are first used, every block wiped when freed.
 *
 * A key schedule is the key: AES-256's first two round keys are the 32 key
 * bytes themselves. The libraries allocate their contexts themselves, so they
 * are pointed here: libgcrypt through its allocation handler for secure
 * memory (a handle opened with GCRY_CIPHER_SECURE), OpenSSL through
 * CRYPTO_set_mem_functions, which sends the allocations of a thread inside
 * cv_secheap_scope_begin/end here and all others to malloc. Internal to
 * lib/crypto. */
#ifndef CV_SECHEAP_H
#define CV_SECHEAP_H

#include <stdbool.h>
#include <stddef.h>

/* A block of n bytes (16-byte aligned, zeroed), or NULL (heap full:
 * logged once). */
void *cv_secheap_alloc (size_t n);
/* Wipe and release p (a block of this heap). */
void cv_secheap_free (void *p);
/* Whether p points into this heap. */
bool cv_secheap_owns (const void *p);

/* OpenSSL: allocations of the calling thread between begin and end go to the
 * secure heap. Returns false (and logs a warning once) when OpenSSL's
 * allocator could not be redirected, because something allocated through it
 * before this library was loaded: then contexts land on the ordinary heap. */
bool cv_secheap_scope_begin (void);
void cv_secheap_scope_end (void);

/* libgcrypt: route its secure allocations here. Called once, before the
 * first handle is opened (cv_gcrypt_init). */
void cv_secheap_hook_gcrypt (void);

/* Lock the pages in use again (after fork: locks are not inherited). */
void cv_secheap_relock (void);

#endif

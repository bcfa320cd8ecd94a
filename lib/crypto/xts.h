/* The AES-256-XTS sector engine, dm-crypt's aes-xts-plain64, over one of two
 * implementations: OpenSSL's EVP or libgcrypt's (which has a VAES path).
 * The tweak of a data unit is the 16-byte little-endian value of
 * (byte offset of the unit within the data area / 512); for 4096-byte sectors
 * sector n therefore uses tweak 8n, as LUKS2 does.
 *
 * An engine is keyed once and then used by one thread at a time (the data path
 * keeps one per thread); per sector only the tweak changes. */
#ifndef CV_XTS_H
#define CV_XTS_H

#include <stddef.h>
#include <stdint.h>

#define CV_DEK_LEN 64 /* key1 || key2 */

struct cv_xts;

/* Which implementation an engine uses. CV_XTS_AUTO: the faster here. */
enum cv_xts_impl { CV_XTS_AUTO = 0, CV_XTS_OPENSSL, CV_XTS_GCRYPT };

/* "auto", "openssl", "gcrypt" <-> the enum. Parse returns 0 or -EINVAL. */
int cv_xts_impl_parse (const char *s, enum cv_xts_impl *out);
const char *cv_xts_impl_name (enum cv_xts_impl impl);

/* Resolve want for data units of sector_size bytes into an implementation
 * that passed its known-answer self-test in this process. For CV_XTS_AUTO,
 * both are timed for a few milliseconds on a throw-away key and the faster
 * is taken (logged once per process and sector size, with both rates). The
 * result is cached. Returns 0, -EIO (the implementation asked for failed its
 * self-test; with auto, only if both did) or -ENOMEM. */
int cv_xts_pick (enum cv_xts_impl want, unsigned sector_size,
                 enum cv_xts_impl *got);

/* Key an engine of implementation impl (CV_XTS_AUTO: cv_xts_pick) with a
 * 64-byte key for data units of sector_size bytes (512 or 4096). The key
 * schedules live in locked memory excluded from core dumps. Returns 0,
 * -EINVAL (bad sector size, or the two key halves are equal: XTS loses its
 * security), -EIO or -ENOMEM. */
int cv_xts_new (enum cv_xts_impl impl, const uint8_t key[CV_DEK_LEN],
                unsigned sector_size, struct cv_xts **out);
/* The implementation an engine uses. */
enum cv_xts_impl cv_xts_impl_of (const struct cv_xts *x);
void cv_xts_free (struct cv_xts *x);

/* Encrypt nsect sectors from src into dst (dst may equal src); first is the
 * index, in sector_size units, of the first sector within the data area.
 * Returns 0 or -EIO (OpenSSL failure, logged). */
int cv_xts_encrypt (struct cv_xts *x, uint8_t *dst, const uint8_t *src,
                    uint64_t first, size_t nsect);
/* Decrypt, as cv_xts_encrypt. */
int cv_xts_decrypt (struct cv_xts *x, uint8_t *dst, const uint8_t *src,
                    uint64_t first, size_t nsect);

/* One data unit of any length >= 16 with an explicit tweak (enc = 1 encrypt,
 * 0 decrypt), on the same keyed engine. For known-answer tests and tools. */
int cv_xts_unit (struct cv_xts *x, const uint8_t tweak[16], uint8_t *dst,
                 const uint8_t *src, size_t len, int enc);

/* A fresh DEK from the CSPRNG with key1 != key2. Returns 0 or -errno. */
struct cv_key;
int cv_dek_generate (struct cv_key **out);

#endif

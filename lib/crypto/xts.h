/* The AES-256-XTS sector engine (OpenSSL EVP), dm-crypt's aes-xts-plain64.
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

/* Key an engine with a 64-byte key for data units of sector_size bytes (512 or
 * 4096). Returns 0, -EINVAL (bad sector size, or the two key halves are
 * equal: OpenSSL refuses those and XTS loses its security), or -ENOMEM. */
int cv_xts_new (const uint8_t key[CV_DEK_LEN], unsigned sector_size,
                struct cv_xts **out);
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

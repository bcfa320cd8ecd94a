/* Hex and base64 for the JSON metadata. Each returns 0 or -errno. */
#ifndef CV_ENCODE_H
#define CV_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* Lower-case hex of len bytes into a new string (*out, caller frees). */
int cv_hex_encode (const uint8_t *in, size_t len, char **out);
/* The value of the hex digit c (either case), or -1 if c is not one. */
int cv_hex_digit (char c);
/* Exactly outlen bytes from the hex string s; -EINVAL if s is not that. */
int cv_hex_decode (const char *s, uint8_t *out, size_t outlen);
/* Standard base64 (with padding) into a new string (*out, caller frees). */
int cv_b64_encode (const uint8_t *in, size_t len, char **out);
/* Decode base64 s into a new buffer (*out, caller frees, *outlen bytes);
 * -EINVAL if s is not canonical base64. */
int cv_b64_decode (const char *s, uint8_t **out, size_t *outlen);

#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "encode.h"

int
cv_hex_encode (const uint8_t *in, size_t len, char **out)
{
  static const char digits[] = "0123456789abcdef";
  char *s = malloc (2 * len + 1);

  if (!s)
    return -ENOMEM;
  for (size_t i = 0; i < len; i++) {
    s[2 * i] = digits[in[i] >> 4];
    s[2 * i + 1] = digits[in[i] & 15];
  }
  s[2 * len] = '\0';
  *out = s;
  return 0;
}

int
cv_hex_digit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int
cv_hex_decode (const char *s, uint8_t *out, size_t outlen)
{
  if (strlen (s) != 2 * outlen)
    return -EINVAL;
  for (size_t i = 0; i < outlen; i++) {
    int hi = cv_hex_digit (s[2 * i]), lo = cv_hex_digit (s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -EINVAL;
    out[i] = (uint8_t) (hi << 4 | lo);
  }
  return 0;
}

int
cv_b64_encode (const uint8_t *in, size_t len, char **out)
{
  char *s = malloc (4 * ((len + 2) / 3) + 1);

  if (!s)
    return -ENOMEM;
  EVP_EncodeBlock ((unsigned char *) s, in, (int) len);
  *out = s;
  return 0;
}

int
cv_b64_decode (const char *s, uint8_t **out, size_t *outlen)
{
  size_t n = strlen (s);

  if (n % 4 != 0 || n > 1 << 20)
    return -EINVAL;
  uint8_t *buf = malloc (n / 4 * 3 + 1);
  if (!buf)
    return -ENOMEM;
  int len = EVP_DecodeBlock (buf, (const unsigned char *) s, (int) n);
  if (len < 0) {
    free (buf);
    return -EINVAL;
  }
  /* EVP_DecodeBlock counts padding as zero bytes: remove them. */
  if (n >= 1 && s[n - 1] == '=')
    len--;
  if (n >= 2 && s[n - 2] == '=')
    len--;
  /* Canonical form only: re-encoding must give the same string back. */
  char *check = malloc (n + 1);
  if (!check) {
    free (buf);
    return -ENOMEM;
  }
  EVP_EncodeBlock ((unsigned char *) check, buf, len);
  int same = strcmp (check, s) == 0;
  free (check);
  if (!same) {
    free (buf);
    return -EINVAL;
  }
  *out = buf;
  *outlen = (size_t) len;
  return 0;
}

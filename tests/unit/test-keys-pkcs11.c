/* The pkcs11 provider's token code path on a real SoftHSM2 token: the RFC 5649
 * vectors (tests/data/vectors/aes256_keywrap.json, KWP) through
 * cv_p11_wrap_bytes / cv_p11_unwrap_bytes with the mechanism the provider
 * picks, each vector's KEK imported as a session key; URI checks; module
 * loading errors. Skips (77) if SoftHSM2 is not installed. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/keys.h"
#include "keys/pkcs11-token.h"

#define PIN "87654321"

static const char *const modules[] = {
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
};

/* Hex field name of v into a new buffer (*len bytes); NULL if absent. */

/* An AES session key with value kek, allowed to wrap and unwrap. */
static CK_OBJECT_HANDLE
import_kek (struct cv_p11 *p, const uint8_t *kek, size_t len)
{
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE t[] = {
    { CKA_CLASS, &cls, sizeof cls },  { CKA_KEY_TYPE, &type, sizeof type },
    { CKA_TOKEN, &no, sizeof no },    { CKA_WRAP, &yes, sizeof yes },
    { CKA_UNWRAP, &yes, sizeof yes }, { CKA_EXTRACTABLE, &yes, sizeof yes },
    { CKA_VALUE, (void *) kek, len },
  };
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  CK_RV rv = p->f->C_CreateObject (p->s, t, ARRAY_SIZE (t), &h);

  CHECK (rv == CKR_OK, "C_CreateObject: %s", cv_p11_rv_name (rv));
  return h;
}

/* Every KWP vector through the token. Unwrap: each vector's ciphertext opens
 * to its plaintext, each bad one is refused. Wrap: SoftHSM2 2.6 writes the
 * padded length, not the input length, into RFC 5649's message length
 * indicator, so its wraps match the vectors only for inputs that are a
 * multiple of 8 bytes (none of the vectors; the provider always wraps 96
 * bytes): those are compared with the vector, and under each vector's KEK a
 * 96-byte and a 64-byte input are compared with cv_kwp_wrap, the software RFC
 * 5649 that test-crypto-keywrap-vectors checks against the same vectors. */
static void
test_vectors (struct cv_p11 *p, CK_MECHANISM_TYPE mech)
{
  json_error_t err;
  json_auto_t *all = json_load_file (
      harness_srcpath ("tests/data/vectors/aes256_keywrap.json"), 0, &err);
  size_t i, nopen = 0, nfail = 0, nsoft = 0;
  json_t *v;

  CHECK (json_is_array (all), "cannot load the vectors: %s", err.text);
  json_array_foreach (all, i, v)
  {
    const char *id = json_string_value (json_object_get (v, "id"));
    const char *alg = json_string_value (json_object_get (v, "algorithm"));
    const char *expect = json_string_value (json_object_get (v, "expect"));
    size_t keklen = 0, ptlen = 0, ctlen = 0, outlen = 0;
    CLEANUP_FREE uint8_t *kek = harness_hex_field (v, "kek", &keklen);
    CLEANUP_FREE uint8_t *pt = harness_hex_field (v, "plaintext", &ptlen);
    CLEANUP_FREE uint8_t *ct = harness_hex_field (v, "ciphertext", &ctlen);
    CLEANUP_FREE uint8_t *out = NULL;
    CLEANUP_KEY struct cv_key *back = NULL;
    CK_OBJECT_HANDLE h;
    int r;

    if (strcmp (alg, "KWP") != 0)
      continue;
    h = import_kek (p, kek, keklen);
    harness_log_clear ();
    r = cv_p11_unwrap_bytes (p, mech, h, ct, ctlen, &back);
    if (strcmp (expect, "success") == 0) {
      CHECK (r == 0 && back->len == ptlen && memcmp (back->b, pt, ptlen) == 0,
             "%s: token unwrap differs from the vector (r=%d)", id, r);
      r = cv_p11_wrap_bytes (p, mech, h, pt, ptlen, &out, &outlen);
      CHECK (r == 0 && outlen == ctlen, "%s: token wrap failed (r=%d)", id, r);
      if (r == 0 && ptlen % 8 == 0)
        CHECK (memcmp (out, ct, ctlen) == 0, "%s: token wrap differs", id);
      nopen++;
    } else {
      CHECK (r == -EBADMSG || r == -EIO, "%s: a bad wrap unwrapped (r=%d)", id,
             r);
      CHECK (strstr (harness_logged (), "altered"), "%s: message: %s", id,
             harness_logged ());
      nfail++;
    }
    /* The provider's input sizes, against software RFC 5649. */
    for (size_t len = 64; len <= 96 && strcmp (expect, "success") == 0;
         len += 32) {
      uint8_t in[96], soft[104];
      size_t softlen = 0;
      CLEANUP_FREE uint8_t *tok = NULL;
      size_t toklen = 0;

      for (size_t k = 0; k < len; k++)
        in[k] = (uint8_t) (k * 7 + i);
      CHECK (cv_kwp_wrap (kek, keklen, in, len, soft, &softlen) == 0,
             "cv_kwp_wrap");
      CHECK (cv_p11_wrap_bytes (p, mech, h, in, len, &tok, &toklen) == 0
                 && toklen == softlen && memcmp (tok, soft, softlen) == 0,
             "%s: token wrap of %zu bytes is not RFC 5649", id, len);
      nsoft++;
    }
    p->f->C_DestroyObject (p->s, h);
  }
  CHECK (nopen == 22 && nfail == 5 && nsoft == 44,
         "ran %zu good and %zu bad KWP vectors, %zu software comparisons",
         nopen, nfail, nsoft);
}

/* URIs refused before any token is touched. */
static void
test_uris (void)
{
  static const struct {
    const char *uri, *msg;
  } bad[] = {
    { "pkcs11:token=a?pin-value=1234", "holds pin-value" },
    { "pkcs11:token=a;objekt=k", "does not know" },
    { "pkcs11:token=a;id=%zz", "not a valid PKCS#11 URI" },
  };
  P11KitUri *uri = NULL;

  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    harness_log_clear ();
    CHECK (cv_p11_uri_parse (bad[i].uri, "t", CV_LOG_ERROR, &uri) == -EINVAL,
           "%s accepted", bad[i].uri);
    CHECK (strstr (harness_logged (), bad[i].msg), "%s: message: %s",
           bad[i].uri, harness_logged ());
    CHECK (!strstr (harness_logged (), "1234"), "PIN in the message");
  }
  CHECK (cv_p11_uri_parse ("pkcs11:token=a;object=k?pin-source=/x", "t",
                           CV_LOG_ERROR, &uri)
             == 0,
         "a good URI was refused");
  p11_kit_uri_free (uri);
  CHECK (strcmp (cv_p11_rv_name (CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT") == 0
             && cv_p11_rv_errno (CKR_PIN_INCORRECT) == -EKEYREJECTED
             && cv_p11_rv_errno (CKR_WRAPPED_KEY_INVALID) == -EBADMSG
             && cv_p11_rv_errno (CKR_KEY_FUNCTION_NOT_PERMITTED) == -EACCES,
         "return code table");
}

/* Modules that are not PKCS#11 modules, and a missing PIN. */
static void
test_modules (struct cv_creds *c)
{
  static const struct {
    const char *path, *msg;
    int r;
  } bad[] = {
    { "/nonexistent/libpkcs11.so", "does not exist", -ELIBACC },
    { "/etc/hostname", "is not a PKCS#11 module", -ELIBBAD },
    { "libcrypto.so.3", "no C_GetFunctionList", -ELIBBAD },
  };
  struct cv_creds nc = *c;
  struct cv_p11 *p = NULL;

  for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
    nc.pkcs11_module = bad[i].path;
    harness_log_clear ();
    int r = cv_p11_open ("pkcs11:token=kwp-vectors", CV_P11_REF_GIVEN, &nc, "t",
                         CV_LOG_ERROR, CV_P11_LOGIN_REQUIRED, &p);
    CHECK (r == bad[i].r, "%s: r=%d", bad[i].path, r);
    CHECK (strstr (harness_logged (), bad[i].msg), "%s: message: %s",
           bad[i].path, harness_logged ());
  }
  nc = *c;
  nc.pin = NULL;
  harness_log_clear ();
  CHECK (cv_p11_open ("pkcs11:token=kwp-vectors", CV_P11_REF_GIVEN, &nc, "t",
                      CV_LOG_ERROR, CV_P11_LOGIN_REQUIRED, &p)
                 == -ENOKEY
             && harness_logged ()[0] == '\0',
         "no PIN: not -ENOKEY, or logged: %s", harness_logged ());
}

/* A URI that matches no token, and one that matches several: refused with
 * the tokens present named (and, under ASan, nothing leaked on the way). */
static void
test_choose_token (struct cv_creds *c)
{
  struct cv_p11 *p = NULL;
  int r;

  harness_log_clear ();
  r = cv_p11_open ("pkcs11:token=no-such-token", CV_P11_REF_GIVEN, c, "t",
                   CV_LOG_ERROR, CV_P11_LOGIN_REQUIRED, &p);
  CHECK (r == -ENODEV, "no token matches: r=%d", r);
  CHECK (strstr (harness_logged (), "no token matches the URI; tokens present: "
                                    "'kwp-vectors' (serial "),
         "no token matches: %s", harness_logged ());
  /* SoftHSM2 keeps a free slot with an uninitialised token: two match. */
  harness_log_clear ();
  r = cv_p11_open ("pkcs11:", CV_P11_REF_GIVEN, c, "t", CV_LOG_ERROR,
                   CV_P11_LOGIN_REQUIRED, &p);
  CHECK (r == -EINVAL, "two tokens match: r=%d", r);
  CHECK (strstr (harness_logged (), "the URI matches 2 tokens")
             && strstr (harness_logged (), "refusing to guess"),
         "two tokens match: %s", harness_logged ());
}

int
main (void)
{
  char dir[] = "/tmp/cv-test-keys-pkcs11-XXXXXX", conf[128], cmd[512];
  struct cv_creds c = { 0 };
  struct cv_p11 *p = NULL;
  const char *module = NULL;
  CK_MECHANISM_TYPE mech;
  FILE *f;
  int r;

  harness_init ();
  for (size_t i = 0; i < ARRAY_SIZE (modules) && !module; i++)
    if (access (modules[i], R_OK) == 0)
      module = modules[i];
  if (!module || system ("command -v softhsm2-util >/dev/null") != 0) {
    printf ("SKIP: SoftHSM2 is not installed\n");
    return 77;
  }
  test_uris ();
  if (!mkdtemp (dir))
    return 1;
  snprintf (conf, sizeof conf, "%s/softhsm2.conf", dir);
  f = fopen (conf, "w");
  if (!f)
    return 1;
  fprintf (f, "directories.tokendir = %s\nobjectstore.backend = file\n", dir);
  fclose (f);
  setenv ("SOFTHSM2_CONF", conf, 1);
  snprintf (cmd, sizeof cmd,
            "softhsm2-util --init-token --free --label kwp-vectors "
            "--so-pin 12345678 --pin " PIN " >/dev/null");
  CHECK (system (cmd) == 0, "softhsm2-util --init-token failed");
  c.pkcs11_module = module;
  CHECK (cv_key_from (PIN, strlen (PIN), &c.pin) == 0, "out of memory");

  test_modules (&c);
  test_choose_token (&c);
  r = cv_p11_open ("pkcs11:token=kwp-vectors", CV_P11_REF_GIVEN, &c, "kwp test",
                   CV_LOG_ERROR, CV_P11_LOGIN_REQUIRED, &p);
  CHECK (r == 0, "cv_p11_open: %d: %s", r, harness_logged ());
  if (r == 0) {
    mech = cv_p11_kwp_mech (p);
    CHECK (mech != 0, "SoftHSM2 offers no RFC 5649 mechanism");
    printf ("RFC 5649 mechanism on SoftHSM2: %s\n", cv_p11_mech_name (mech));
    if (mech)
      test_vectors (p, mech);
    cv_p11_close (p);
  }
  cv_key_free (c.pin);
  harness_rm_rf (dir);
  return harness_done ("test-keys-pkcs11");
}

/* Provider "pkcs11": the KEK is a key on a PKCS#11 token (HSM, CloudHSM,
 * smart card, SoftHSM2) named by an RFC 7512 URI; it never leaves the token.
 * Two mechanisms (doc/pkcs11.md says why and what the wrap holds):
 *   "aes-kwp"          an AES secret key: RFC 5649 key wrap on the token of
 *                      DEK || SHA-256(binding); unwrap checks the hash
 *   "rsa-oaep-sha256"  an RSA key pair: RSA-OAEP, SHA-256, MGF1-SHA256,
 *                      label = binding; enrolment needs only the public key
 *                      (from the token, or a PEM file: x-public-key=FILE)
 * Wrap members besides the common ones: "mech", "p11_mech" (aes-kwp: the
 * PKCS#11 mechanism used), "blob" (b64), "token_label", "token_serial",
 * "object_label", "object_id" (hex), and "kcv" (hex CKA_CHECK_VALUE of the AES
 * key, if the token gives one) or "modulus_sha256" (hex, RSA). */
#define OPENSSL_SUPPRESS_DEPRECATED /* RSA_padding_check_PKCS1_OAEP_mgf1 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/prim.h"
#include "crypto/secmem.h"
#include "keys/keys.h"
#include "keys/pkcs11-token.h"
#include "keys/providers.h"

#define MECH_KWP "aes-kwp"
#define MECH_OAEP "rsa-oaep-sha256"
#define DEK_MAX 1024
#define HASH_LEN 32
#define RSA_MIN_BITS 2048
#define PUBKEY_ATTR "x-public-key"

/* RFC 5649 output length for len bytes. */
static size_t
kwp_len (size_t len)
{
  return (len + 7) / 8 * 8 + 8;
}

/* Set w[key] to the string s. */
static int
set_str (json_t *w, const char *key, const char *s)
{
  return json_object_set_new (w, key, json_string (s)) < 0 ? -ENOMEM : 0;
}

/* Set w[key] to the base64 (hex if hex) of len bytes at b. */
static int
set_bytes (json_t *w, const char *key, const uint8_t *b, size_t len, int hex)
{
  CLEANUP_FREE char *s = NULL;
  int r = hex ? cv_hex_encode (b, len, &s) : cv_b64_encode (b, len, &s);

  return r < 0 ? r : set_str (w, key, s);
}

/* SHA-256 hex of a big-endian modulus, leading zero bytes ignored. */
static int
modulus_fp (const uint8_t *n, size_t len, char **hex)
{
  uint8_t h[HASH_LEN];
  int r;

  while (len > 0 && *n == 0)
    n++, len--;
  if ((r = cv_sha256 (n, len, h)) < 0)
    return r;
  return cv_hex_encode (h, sizeof h, hex);
}

/* The record of what the key is: token and object as found (or as the URI
 * names them when the token is not involved). */
static int
set_where (json_t *w, const char *token_label, const char *token_serial,
           const char *obj_label, const char *obj_id)
{
  int r = 0;

  if (token_label && *token_label)
    r = set_str (w, "token_label", token_label);
  if (r == 0 && token_serial && *token_serial)
    r = set_str (w, "token_serial", token_serial);
  if (r == 0 && obj_label && *obj_label)
    r = set_str (w, "object_label", obj_label);
  if (r == 0 && obj_id && *obj_id)
    r = set_str (w, "object_id", obj_id);
  return r;
}

/* Say which key objects the URI matched when it is not exactly one usable
 * key: none (list the keys the token shows) or several (list them). */
static int
report_match (struct cv_p11 *p, const struct cv_p11_obj *objs, size_t n,
              const char *what)
{
  char list[1024];

  if (n == 0) {
    /* What is there, to help fix the URI: every key the session can see. */
    struct cv_p11_obj all[CV_P11_MAX_OBJS];
    size_t nall = 0;
    P11KitUri *save = p->uri;

    p->uri = p11_kit_uri_new ();
    if (p->uri && cv_p11_find_keys (p, all, &nall) == 0)
      cv_p11_obj_list (all, nall, list, sizeof list);
    else
      snprintf (list, sizeof list, "(cannot list)");
    if (p->uri)
      p11_kit_uri_free (p->uri);
    p->uri = save;
    cv_log (p->level,
            "%s: object not found: no %s on token '%s' matches the URI%s; "
            "keys on the token: %s",
            p->label, what, p->token_label,
            p->logged_in ? "" : " (not logged in: private keys are hidden)",
            list);
    return -ENOENT;
  }
  cv_p11_obj_list (objs, n, list, sizeof list);
  cv_log (p->level,
          "%s: the URI is ambiguous: %zu keys on token '%s' match it (%s); "
          "refusing to guess: add id= or a unique object= to the URI",
          p->label, n, p->token_label, list);
  return -EINVAL;
}

/* An RSA public key from big-endian modulus and exponent. */
static int
rsa_from_ne (const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
             EVP_PKEY **out)
{
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new ();
  BIGNUM *bn = BN_bin2bn (n, (int) nlen, NULL);
  BIGNUM *be = BN_bin2bn (e, (int) elen, NULL);
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  int r = -EIO;

  *out = NULL;
  if (bld && bn && be && OSSL_PARAM_BLD_push_BN (bld, OSSL_PKEY_PARAM_RSA_N, bn)
      && OSSL_PARAM_BLD_push_BN (bld, OSSL_PKEY_PARAM_RSA_E, be)
      && (params = OSSL_PARAM_BLD_to_param (bld))
      && (ctx = EVP_PKEY_CTX_new_from_name (NULL, "RSA", NULL))
      && EVP_PKEY_fromdata_init (ctx) > 0
      && EVP_PKEY_fromdata (ctx, out, EVP_PKEY_PUBLIC_KEY, params) > 0)
    r = 0;
  EVP_PKEY_CTX_free (ctx);
  OSSL_PARAM_free (params);
  BN_free (bn);
  BN_free (be);
  OSSL_PARAM_BLD_free (bld);
  if (r < 0)
    cv_err ("cannot build an RSA public key from the token's modulus and "
            "exponent");
  return r;
}

/* OAEP (SHA-256, MGF1-SHA256, label = binding) of dek under pk into w's
 * "blob", and the key's fingerprint into "modulus_sha256". */
static int
oaep_seal (EVP_PKEY *pk, const struct cv_key *dek, const char *binding,
           const char *label, json_t *w)
{
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey (NULL, pk, NULL);
  size_t lablen = strlen (binding), outlen = 0;
  CLEANUP_FREE uint8_t *out = NULL, *n = NULL;
  CLEANUP_FREE char *fp = NULL;
  unsigned char *lab = OPENSSL_memdup (binding, lablen);
  BIGNUM *bn = NULL;
  int bits = EVP_PKEY_get_bits (pk), nlen, r = -EIO;

  if (!EVP_PKEY_is_a (pk, "RSA") || bits < RSA_MIN_BITS) {
    cv_err ("%s: the public key is not an RSA key of at least %d bits", label,
            RSA_MIN_BITS);
    EVP_PKEY_CTX_free (ctx);
    OPENSSL_free (lab);
    return -EINVAL;
  }
  if (ctx && lab && EVP_PKEY_encrypt_init (ctx) > 0
      && EVP_PKEY_CTX_set_rsa_padding (ctx, RSA_PKCS1_OAEP_PADDING) > 0
      && EVP_PKEY_CTX_set_rsa_oaep_md (ctx, EVP_sha256 ()) > 0
      && EVP_PKEY_CTX_set_rsa_mgf1_md (ctx, EVP_sha256 ()) > 0
      && EVP_PKEY_CTX_set0_rsa_oaep_label (ctx, lab, (int) lablen) > 0) {
    lab = NULL; /* owned by ctx now */
    if (EVP_PKEY_encrypt (ctx, NULL, &outlen, dek->b, dek->len) > 0
        && (out = malloc (outlen))
        && EVP_PKEY_encrypt (ctx, out, &outlen, dek->b, dek->len) > 0)
      r = 0;
  }
  OPENSSL_free (lab);
  EVP_PKEY_CTX_free (ctx);
  if (r < 0) {
    cv_err ("%s: RSA-OAEP encryption failed", label);
    return r;
  }
  if (EVP_PKEY_get_bn_param (pk, OSSL_PKEY_PARAM_RSA_N, &bn) <= 0
      || (nlen = BN_num_bytes (bn)) <= 0 || !(n = malloc ((size_t) nlen))) {
    BN_free (bn);
    return -ENOMEM;
  }
  BN_bn2bin (bn, n);
  BN_free (bn);
  if ((r = modulus_fp (n, (size_t) nlen, &fp)) < 0)
    return r;
  if ((r = set_str (w, "mech", MECH_OAEP)) < 0
      || (r = set_bytes (w, "blob", out, outlen, 0)) < 0
      || (r = set_str (w, "modulus_sha256", fp)) < 0)
    return r;
  return 0;
}

/* Enrol an RSA wrap from a PEM public key file: the token is not involved.
 * The stored reference is the URI without x-public-key. */
static int
wrap_from_pem (P11KitUri *uri, const char *pem, const struct cv_key *dek,
               const char *binding, const char *label, json_t *w)
{
  BIO *bio = BIO_new_file (pem, "r");
  EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY (bio, NULL, NULL, NULL) : NULL;
  CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info (uri);
  CK_ATTRIBUTE *la = p11_kit_uri_get_attribute (uri, CKA_LABEL);
  CK_ATTRIBUTE *ia = p11_kit_uri_get_attribute (uri, CKA_ID);
  CLEANUP_FREE char *id = NULL, *olabel = NULL;
  char tlabel[33], tserial[17];
  int r;

  BIO_free (bio);
  if (!pk) {
    cv_err ("%s: cannot read an RSA public key (PEM, \"BEGIN PUBLIC KEY\") "
            "from %s=%s",
            label, PUBKEY_ATTR, pem);
    return -EINVAL;
  }
  if (!la && !ia) {
    cv_err ("%s: the URI must name the private key on the token (object= "
            "or id=) when the public key comes from %s=",
            label, PUBKEY_ATTR);
    EVP_PKEY_free (pk);
    return -EINVAL;
  }
  r = oaep_seal (pk, dek, binding, label, w);
  EVP_PKEY_free (pk);
  if (r < 0)
    return r;
  cv_p11_text (tlabel, ti->label, sizeof ti->label);
  cv_p11_text (tserial, ti->serialNumber, sizeof ti->serialNumber);
  if (la && !(olabel = strndup (la->pValue, la->ulValueLen)))
    return -ENOMEM;
  if (ia && (r = cv_hex_encode (ia->pValue, ia->ulValueLen, &id)) < 0)
    return r;
  return set_where (w, tlabel, tserial, olabel, id);
}

/* The reference to store: the URI without what served this enrolment only
 * (pin-source, x-public-key), which unlock would ignore or must not use. */
static int
store_ref (P11KitUri *uri, json_t *w)
{
  CLEANUP_FREE char *ref = NULL;

  if (!p11_kit_uri_get_pin_source (uri)
      && !p11_kit_uri_get_vendor_query (uri, PUBKEY_ATTR))
    return 0; /* keep the URI as the operator wrote it */
  p11_kit_uri_set_pin_source (uri, NULL);
  p11_kit_uri_set_vendor_query (uri, PUBKEY_ATTR, NULL);
  if (p11_kit_uri_format (uri, P11_KIT_URI_FOR_ANY, &ref) != P11_KIT_URI_OK)
    return -ENOMEM;
  return set_str (w, "ref", ref);
}

/* AES: wrap DEK || SHA-256(binding) on the token, check that it unwraps. */
static int
wrap_aes (struct cv_p11 *p, const struct cv_p11_obj *o,
          const struct cv_key *dek, const char *binding, json_t *w)
{
  CK_MECHANISM_TYPE mech;
  CLEANUP_KEY struct cv_key *pt = NULL, *back = NULL;
  CLEANUP_FREE uint8_t *blob = NULL, *kcv = NULL;
  size_t bloblen = 0, kcvlen = 0;
  int r;

  if (!(mech = cv_p11_kwp_mech (p))) {
    cv_err ("%s: token '%s' offers no AES key wrap with padding (RFC 5649: "
            "CKM_AES_KEY_WRAP_KWP or CKM_AES_KEY_WRAP_PAD); use an RSA key "
            "pair on it instead",
            p->label, p->token_label);
    return -EOPNOTSUPP;
  }
  if ((r = cv_p11_check_use (p, o, CKA_WRAP, mech)) < 0
      || (r = cv_p11_check_use (p, o, CKA_UNWRAP, mech)) < 0)
    return r;
  if (dek->len > DEK_MAX)
    return -EINVAL;
  if ((r = cv_key_new (dek->len + HASH_LEN, &pt)) < 0)
    return r;
  memcpy (pt->b, dek->b, dek->len);
  if ((r = cv_sha256 (binding, strlen (binding), pt->b + dek->len)) < 0
      || (r
          = cv_p11_wrap_bytes (p, mech, o->h, pt->b, pt->len, &blob, &bloblen))
             < 0)
    return r;
  if (bloblen != kwp_len (pt->len)) {
    cv_err ("%s: token '%s' wrapped %zu bytes into %zu with %s, not the %zu "
            "of RFC 5649: its mechanism is another padding; refusing",
            p->label, p->token_label, pt->len, bloblen, cv_p11_mech_name (mech),
            kwp_len (pt->len));
    return -EOPNOTSUPP;
  }
  /* A wrap that does not open is worse than none: check it now. */
  if ((r = cv_p11_unwrap_bytes (p, mech, o->h, blob, bloblen, &back)) < 0)
    return r;
  if (back->len != pt->len || CRYPTO_memcmp (back->b, pt->b, pt->len) != 0) {
    cv_err ("%s: token '%s' does not unwrap what it wrapped; refusing",
            p->label, p->token_label);
    return -EIO;
  }
  if ((r = set_str (w, "mech", MECH_KWP)) < 0
      || (r = set_str (w, "p11_mech", cv_p11_mech_name (mech))) < 0
      || (r = set_bytes (w, "blob", blob, bloblen, 0)) < 0)
    return r;
  if (cv_p11_get_bytes (p, o->h, CKA_CHECK_VALUE, &kcv, &kcvlen) == 0
      && kcvlen > 0 && (r = set_bytes (w, "kcv", kcv, kcvlen, 1)) < 0)
    return r;
  return 0;
}

/* RSA from the token: the public key object (or the private key's public
 * attributes), encrypted in software. */
static int
wrap_rsa (struct cv_p11 *p, const struct cv_p11_obj *pub,
          const struct cv_p11_obj *priv, const struct cv_key *dek,
          const char *binding, json_t *w)
{
  const struct cv_p11_obj *o = pub ? pub : priv;
  CLEANUP_FREE uint8_t *n = NULL, *e = NULL, *n2 = NULL;
  size_t nlen = 0, elen = 0, n2len = 0;
  EVP_PKEY *pk = NULL;
  int r;

  if (priv
      && (r = cv_p11_check_use (p, priv, CKA_DECRYPT, CKM_RSA_PKCS_OAEP)) < 0)
    return r;
  if (cv_p11_get_bytes (p, o->h, CKA_MODULUS, &n, &nlen) < 0
      || cv_p11_get_bytes (p, o->h, CKA_PUBLIC_EXPONENT, &e, &elen) < 0) {
    cv_err ("%s: token '%s' does not give the RSA key's modulus and exponent",
            p->label, p->token_label);
    return -EIO;
  }
  if (pub && priv
      && (cv_p11_get_bytes (p, priv->h, CKA_MODULUS, &n2, &n2len) < 0
          || n2len != nlen || memcmp (n, n2, nlen) != 0)) {
    const struct cv_p11_obj both[2] = { *pub, *priv };
    return report_match (p, both, 2, "RSA key");
  }
  if ((r = rsa_from_ne (n, nlen, e, elen, &pk)) < 0)
    return r;
  r = oaep_seal (pk, dek, binding, p->label, w);
  EVP_PKEY_free (pk);
  return r;
}

/* Wrap dek under the token key the URI ref names. */
static int
p11_wrap (const char *ref, const struct cv_creds *c, const struct cv_key *dek,
          const char *binding, json_t *w)
{
  char label[CV_WRAP_LABEL_MAX];
  struct cv_p11_obj objs[CV_P11_MAX_OBJS];
  const struct cv_p11_obj *aes = NULL, *pub = NULL, *priv = NULL;
  struct cv_p11 *p = NULL;
  P11KitUri *uri = NULL;
  const char *pem;
  size_t n = 0, naes = 0, npub = 0, npriv = 0;
  int r;

  cv_wrap_label (w, label, sizeof label);
  if ((r = cv_p11_uri_parse (ref, label, CV_LOG_ERROR, &uri)) < 0)
    return r;
  pem = p11_kit_uri_get_vendor_query (uri, PUBKEY_ATTR);
  if (pem) {
    r = wrap_from_pem (uri, pem, dek, binding, label, w);
    goto out;
  }
  if ((r = cv_p11_open (ref, CV_P11_REF_GIVEN, c, label, CV_LOG_ERROR,
                        CV_P11_LOGIN_IF_PIN, &p))
      < 0)
    goto out;
  if ((r = cv_p11_find_keys (p, objs, &n)) < 0)
    goto out;
  /* One key: an AES secret key, or one RSA key pair (its public and private
   * objects, either may be missing). Anything else is ambiguous. */
  for (size_t i = 0; i < n; i++) {
    if (objs[i].cls == CKO_SECRET_KEY && objs[i].type == CKK_AES)
      aes = &objs[i], naes++;
    else if (objs[i].cls == CKO_PUBLIC_KEY && objs[i].type == CKK_RSA)
      pub = &objs[i], npub++;
    else if (objs[i].cls == CKO_PRIVATE_KEY && objs[i].type == CKK_RSA)
      priv = &objs[i], npriv++;
  }
  if (naes + npub + npriv == 0 && !p->logged_in) {
    r = -ENOKEY; /* a secret or private key is invisible without login */
    goto out;
  }
  if (naes + (npub || npriv) != 1 || npub > 1 || npriv > 1) {
    r = report_match (p, objs, naes + npub + npriv ? n : 0, "AES or RSA key");
    goto out;
  }
  if (aes)
    r = wrap_aes (p, aes, dek, binding, w);
  else
    r = wrap_rsa (p, pub, priv, dek, binding, w);
  if (r == 0) {
    const struct cv_p11_obj *o = aes ? aes : priv ? priv : pub;
    r = set_where (w, p->token_label, p->token_serial, o->label, o->id);
  }
out:
  cv_p11_close (p);
  if (r == 0)
    r = store_ref (uri, w);
  p11_kit_uri_free (uri);
  return r;
}

/* The one key of class cls and type on the token the URI names. */
static int
find_one (struct cv_p11 *p, CK_OBJECT_CLASS cls, CK_KEY_TYPE type,
          const char *what, struct cv_p11_obj *out)
{
  struct cv_p11_obj objs[CV_P11_MAX_OBJS], match[CV_P11_MAX_OBJS];
  size_t n = 0, m = 0;
  int r = cv_p11_find_keys (p, objs, &n);

  if (r < 0)
    return r;
  for (size_t i = 0; i < n; i++)
    if (objs[i].cls == cls && objs[i].type == type)
      match[m++] = objs[i];
  if (m != 1)
    return report_match (p, match, m, what);
  *out = match[0];
  return 0;
}

/* Compare the wrap's recorded key fingerprint (member key) with the one of
 * the key found: -EKEYREJECTED if they differ. */
static int
check_fp (struct cv_p11 *p, const json_t *w, const char *key, const char *have,
          const struct cv_p11_obj *o)
{
  const char *want = json_string_value (json_object_get (w, key));
  char name[160];

  if (!want || !have || strcmp (want, have) == 0)
    return 0;
  cv_warn ("%s: the %s on token '%s' is not the key this wrap was made with "
           "(its %s differs); the URI now names another key",
           p->label, cv_p11_obj_name (o, name, sizeof name), p->token_label,
           key);
  return -EKEYREJECTED;
}

/* AES: unwrap on the token, check the binding hash, keep the DEK. */
static int
unwrap_aes (struct cv_p11 *p, const json_t *w, const uint8_t *blob,
            size_t bloblen, const char *binding, struct cv_key **dek)
{
  const char *mname = json_string_value (json_object_get (w, "p11_mech"));
  CK_MECHANISM_TYPE mech;
  struct cv_p11_obj o;
  CLEANUP_KEY struct cv_key *pt = NULL;
  CLEANUP_FREE uint8_t *kcv = NULL;
  CLEANUP_FREE char *kcvhex = NULL;
  uint8_t h[HASH_LEN];
  size_t kcvlen = 0;
  int r;

  if (!mname || !(mech = cv_p11_kwp_mech_by_name (mname))) {
    cv_warn ("%s: \"p11_mech\" is not CKM_AES_KEY_WRAP_KWP or "
             "CKM_AES_KEY_WRAP_PAD; the wrap is malformed",
             p->label);
    return -EINVAL;
  }
  if ((r = find_one (p, CKO_SECRET_KEY, CKK_AES, "AES secret key", &o)) < 0
      || (r = cv_p11_check_use (p, &o, CKA_UNWRAP, mech)) < 0)
    return r;
  if (cv_p11_get_bytes (p, o.h, CKA_CHECK_VALUE, &kcv, &kcvlen) == 0
      && kcvlen > 0 && cv_hex_encode (kcv, kcvlen, &kcvhex) == 0
      && (r = check_fp (p, w, "kcv", kcvhex, &o)) < 0)
    return r;
  if ((r = cv_p11_unwrap_bytes (p, mech, o.h, blob, bloblen, &pt)) < 0)
    return r;
  if (pt->len <= HASH_LEN || pt->len - HASH_LEN > DEK_MAX) {
    cv_warn ("%s: the unwrapped key has %zu bytes, not a DEK and a hash; "
             "the wrap is malformed",
             p->label, pt->len);
    return -EBADMSG;
  }
  if ((r = cv_sha256 (binding, strlen (binding), h)) < 0)
    return r;
  if (CRYPTO_memcmp (pt->b + pt->len - HASH_LEN, h, HASH_LEN) != 0) {
    cv_warn ("%s: the wrap unwrapped under the token key but was made for "
             "another volume (its binding differs): copied from another "
             "volume; refusing it",
             p->label);
    return -EBADMSG;
  }
  return cv_key_from (pt->b, pt->len - HASH_LEN, dek);
}

/* RSA-OAEP when the token cannot: raw RSA on the token (CKM_RSA_X_509), the
 * OAEP check in software (OpenSSL's constant-time decoding). */
static int
oaep_soft (struct cv_p11 *p, const struct cv_p11_obj *o, const uint8_t *ct,
           size_t ctlen, size_t modlen, const char *binding,
           struct cv_key **dek)
{
  CK_MECHANISM m = { CKM_RSA_X_509, NULL, 0 };
  CLEANUP_KEY struct cv_key *raw = NULL, *em = NULL, *out = NULL;
  CK_RV rv;
  int r, n;

  if (!cv_p11_token_has_mech (p, CKM_RSA_X_509, CKF_DECRYPT)) {
    cv_warn ("%s: token '%s' does RSA-OAEP neither with SHA-256 and a label "
             "nor raw RSA (CKM_RSA_X_509); this wrap cannot be opened on it",
             p->label, p->token_label);
    return -EOPNOTSUPP;
  }
  if ((r = cv_p11_check_use (p, o, CKA_DECRYPT, CKM_RSA_X_509)) < 0)
    return r;
  cv_debug ("%s: token '%s' refuses OAEP with SHA-256 and a label; using "
            "CKM_RSA_X_509 and checking OAEP in software",
            p->label, p->token_label);
  r = cv_p11_decrypt (p, &m, o->h, ct, ctlen, &raw, &rv);
  if (r < 0) {
    cv_warn ("%s: token '%s' could not decrypt with CKM_RSA_X_509 (%s)",
             p->label, p->token_label, cv_p11_rv_name (rv));
    return r;
  }
  if (raw->len > modlen) {
    cv_warn ("%s: token '%s' returned %zu bytes for a %zu-byte RSA key",
             p->label, p->token_label, raw->len, modlen);
    return -EIO;
  }
  if ((r = cv_key_new (modlen, &em)) < 0 || (r = cv_key_new (modlen, &out)) < 0)
    return r;
  memcpy (em->b + modlen - raw->len, raw->b, raw->len);
  n = RSA_padding_check_PKCS1_OAEP_mgf1 (
      out->b, (int) out->len, em->b, (int) modlen, (int) modlen,
      (const unsigned char *) binding, (int) strlen (binding), EVP_sha256 (),
      EVP_sha256 ());
  if (n <= 0) {
    cv_warn ("%s: the wrap does not decrypt under the RSA key on token '%s' "
             "(OAEP check failed): it was altered, or made for another "
             "volume",
             p->label, p->token_label);
    return -EBADMSG;
  }
  return cv_key_from (out->b, (size_t) n, dek);
}

/* RSA: C_Decrypt with OAEP on the token (or raw RSA and OAEP in software
 * when the token refuses OAEP-SHA256 with a label). */
static int
unwrap_rsa (struct cv_p11 *p, const json_t *w, const uint8_t *blob,
            size_t bloblen, const char *binding, struct cv_key **dek)
{
  CK_RSA_PKCS_OAEP_PARAMS op = {
    .hashAlg = CKM_SHA256,
    .mgf = CKG_MGF1_SHA256,
    .source = CKZ_DATA_SPECIFIED,
    .pSourceData = (void *) binding,
    .ulSourceDataLen = strlen (binding),
  };
  CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &op, sizeof op };
  struct cv_p11_obj o;
  CLEANUP_FREE uint8_t *n = NULL;
  CLEANUP_FREE char *fp = NULL;
  size_t nlen = 0, modlen;
  CK_RV rv;
  int r;

  if ((r = find_one (p, CKO_PRIVATE_KEY, CKK_RSA, "RSA private key", &o)) < 0)
    return r;
  /* Only CKA_DECRYPT here: CKA_ALLOWED_MECHANISMS depends on the path. */
  if (cv_p11_get_bool (p, o.h, CKA_DECRYPT) == 0)
    return cv_p11_check_use (p, &o, CKA_DECRYPT, CKM_RSA_PKCS_OAEP);
  if (cv_p11_get_bytes (p, o.h, CKA_MODULUS, &n, &nlen) < 0) {
    cv_warn ("%s: token '%s' does not give the RSA key's modulus", p->label,
             p->token_label);
    return -EIO;
  }
  if ((r = modulus_fp (n, nlen, &fp)) < 0
      || (r = check_fp (p, w, "modulus_sha256", fp, &o)) < 0)
    return r;
  modlen = nlen;
  while (modlen > 0 && n[nlen - modlen] == 0)
    modlen--;
  if (bloblen != modlen) {
    cv_warn ("%s: the blob is %zu bytes, not the %zu of the RSA key; the "
             "wrap is malformed",
             p->label, bloblen, modlen);
    return -EBADMSG;
  }
  r = cv_p11_decrypt (p, &m, o.h, blob, bloblen, dek, &rv);
  if (r == 0)
    return 0;
  switch (rv) {
  case CKR_MECHANISM_PARAM_INVALID:
  case CKR_ARGUMENTS_BAD:
  case CKR_MECHANISM_INVALID:
    return oaep_soft (p, &o, blob, bloblen, modlen, binding, dek);
  case CKR_ENCRYPTED_DATA_INVALID:
  case CKR_ENCRYPTED_DATA_LEN_RANGE:
    cv_warn ("%s: the wrap does not decrypt under the RSA key on token '%s' "
             "(%s): it was altered, or made for another volume",
             p->label, p->token_label, cv_p11_rv_name (rv));
    return -EBADMSG;
  default:
    cv_warn ("%s: token '%s' could not decrypt with CKM_RSA_PKCS_OAEP (%s)",
             p->label, p->token_label, cv_p11_rv_name (rv));
    return r;
  }
}

/* Unwrap w on the token its URI names. */
static int
p11_unwrap (const json_t *w, const struct cv_creds *c, const char *binding,
            struct cv_key **dek)
{
  char label[CV_WRAP_LABEL_MAX];
  CLEANUP_KEY struct cv_key *k = NULL;
  CLEANUP_FREE uint8_t *blob = NULL;
  struct cv_p11 *p = NULL;
  const char *ref, *mech;
  size_t bloblen = 0;
  int r;

  cv_wrap_label (w, label, sizeof label);
  if (!(ref = cv_wrap_get_string (w, "ref", &r))
      || !(mech = cv_wrap_get_string (w, "mech", &r)))
    return r;
  if (strcmp (mech, MECH_KWP) != 0 && strcmp (mech, MECH_OAEP) != 0) {
    cv_warn ("%s: mechanism \"%.32s\" is not supported (aes-kwp or "
             "rsa-oaep-sha256)",
             label, mech);
    return -EPROTONOSUPPORT;
  }
  if ((r = cv_wrap_get_b64 (w, "blob", 1, 4096, &blob, &bloblen)) < 0)
    return r;
  r = cv_p11_open (ref, CV_P11_REF_STORED, c, label, CV_LOG_WARN,
                   CV_P11_LOGIN_REQUIRED, &p);
  if (r < 0)
    return r;
  if (strcmp (mech, MECH_KWP) == 0)
    r = unwrap_aes (p, w, blob, bloblen, binding, &k);
  else
    r = unwrap_rsa (p, w, blob, bloblen, binding, &k);
  cv_p11_close (p);
  if (r < 0)
    return r;
  *dek = STEAL (k);
  return 0;
}

void
cv_pkcs11_cleanup (void)
{
  cv_p11_forget ();
}

const struct cv_provider cv_provider_pkcs11 = {
  .type = "pkcs11",
  .wrap = p11_wrap,
  .unwrap = p11_unwrap,
};

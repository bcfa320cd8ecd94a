/* PKCS#11 plumbing for the pkcs11 provider: load a module named by an RFC
 * 7512 URI (parsed with p11-kit), pick the one token the URI names, log in
 * once, find key objects, and wrap, unwrap or decrypt bytes under a token key.
 * Every call that fails logs why (naming the wrap, never the PIN) at the
 * level the caller chose and returns -errno as keys.h describes.
 * Internal to lib/keys: pkcs11.c and the unit tests use it. */
#ifndef CV_KEYS_PKCS11_TOKEN_H
#define CV_KEYS_PKCS11_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "common/log.h"

struct cv_creds;
struct cv_key;

/* PKCS#11 3.0 names RFC 5649 CKM_AES_KEY_WRAP_KWP; p11-kit 0.24 predates it. */
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x210bUL
#endif

/* One operation's hold on a token: the module loaded and initialised, the
 * token chosen, a session open, logged in when a PIN was given. Nothing of it
 * outlives cv_p11_close. */
struct cv_p11 {
  const char *label;       /* "wrap N (pkcs11 URI)" for messages; not owned */
  enum cv_log_level level; /* CV_LOG_ERROR when adding, CV_LOG_WARN unlocking */
  P11KitUri *uri;
  void *dl;
  CK_FUNCTION_LIST *f;
  bool finalize; /* we initialised the module, so we finalise it */
  CK_SLOT_ID slot;
  CK_TOKEN_INFO token;
  char token_label[33], token_serial[17]; /* trimmed of padding */
  CK_SESSION_HANDLE s;
  bool session, logged_in;
};

enum cv_p11_login {
  CV_P11_LOGIN_IF_PIN,   /* public objects are enough without a PIN */
  CV_P11_LOGIN_REQUIRED, /* -ENOKEY (not logged) when there is no PIN */
};

/* A key object found on the token. */
struct cv_p11_obj {
  CK_OBJECT_HANDLE h;
  CK_OBJECT_CLASS cls;
  CK_KEY_TYPE type;
  char label[65]; /* CKA_LABEL, control characters replaced, may be "" */
  char id[65];    /* CKA_ID in hex (first 32 bytes), may be "" */
};

#define CV_P11_MAX_OBJS 16

/* Parse ref with p11-kit into *uri (caller frees with p11_kit_uri_free).
 * Refuses a URI p11-kit rejects, one with attributes it does not know (a typo
 * would widen the match) and one holding pin-value (a stored reference is
 * kept in clear). Returns 0 or -EINVAL (logged at level with label). */
int cv_p11_uri_parse (const char *ref, const char *label,
                      enum cv_log_level level, P11KitUri **uri);

/* Where a URI comes from. A stored one was read from a volume header, which
 * is not authenticated before unlock: its pin-source is ignored (the header
 * must not choose which file is sent to the token as a PIN) and its
 * module-path is loaded only if neither the module nor its directory can be
 * written by anyone but root or us. */
enum cv_p11_ref { CV_P11_REF_GIVEN, CV_P11_REF_STORED };

/* True if the credentials, or the pin-source of a URI given by the operator,
 * can provide a PIN. */
bool cv_p11_have_pin (const struct cv_creds *c, P11KitUri *uri,
                      enum cv_p11_ref from);

/* Load the module (c->pkcs11_module, else the URI's module-path), initialise
 * it with OS locking, choose the single token matching the URI, open a
 * session and log in with the PIN (c->pin, else the given URI's pin-source),
 * once: a PIN the token refused is never retried in this process. *out is
 * freed with cv_p11_close. Returns 0, -ENOKEY (no PIN and login is required;
 * not logged), -EKEYREJECTED (CKR_PIN_INCORRECT), -EACCES (PIN locked or at
 * its final try; stored module-path not trusted), -ENODEV (no token matches:
 * the message lists those present), -EINVAL (several tokens match, no module
 * given), -ENOENT / -ELIBBAD (module missing / not a PKCS#11 module), -EIO. */
int cv_p11_open (const char *ref, enum cv_p11_ref from,
                 const struct cv_creds *c, const char *label,
                 enum cv_log_level level, enum cv_p11_login login,
                 struct cv_p11 **out);

/* Log out, close the session, finalise and unload the module, free p. NULL
 * is allowed. */
void cv_p11_close (struct cv_p11 *p);

/* The key objects (secret, private and public keys) matching the URI's
 * object attributes, at most CV_P11_MAX_OBJS into objs; *n gets the number
 * found. Returns 0 or -errno (logged). */
int cv_p11_find_keys (struct cv_p11 *p, struct cv_p11_obj *objs, size_t *n);

/* Copy a blank-padded PKCS#11 string field of n bytes into buf (n + 1 bytes)
 * without the padding and with control characters replaced. */
void cv_p11_text (char *buf, const unsigned char *field, size_t n);

/* "label 'x' id 01" for messages, into buf. */
const char *cv_p11_obj_name (const struct cv_p11_obj *o, char *buf, size_t len);

/* Append the objects to a message in buf: "label 'a' id 01, label 'b' id 02".
 */
void cv_p11_obj_list (const struct cv_p11_obj *objs, size_t n, char *buf,
                      size_t len);

/* A boolean attribute of h: 1, 0, or -1 when the token does not give it. */
int cv_p11_get_bool (struct cv_p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE a);

/* A byte-string attribute of h into a new buffer (*out, caller frees).
 * Returns 0, -ENOENT when the token does not give it (not logged), -ENOMEM. */
int cv_p11_get_bytes (struct cv_p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE a,
                      uint8_t **out, size_t *len);

/* True if the token lists mech with all of flags (CKF_WRAP...). */
bool cv_p11_token_has_mech (struct cv_p11 *p, CK_MECHANISM_TYPE mech,
                            CK_FLAGS flags);

/* The mechanism doing RFC 5649 (AES key wrap with padding) on this token, or
 * 0 if it has none: CKM_AES_KEY_WRAP_KWP, else CKM_AES_KEY_WRAP_PAD. SoftHSM2
 * (up to 2.6 at least) implements RFC 5649 under the PKCS#11 v2.40 number
 * _PAD, which other tokens use for PKCS#7 padding + RFC 3394: the caller
 * checks the wrapped length before trusting _PAD. */
CK_MECHANISM_TYPE cv_p11_kwp_mech (struct cv_p11 *p);
/* The RFC 5649 mechanism called name ("CKM_AES_KEY_WRAP_KWP"...), or 0. */
CK_MECHANISM_TYPE cv_p11_kwp_mech_by_name (const char *name);

/* 0 if key h may be used with mech for its use (CKA_WRAP, CKA_UNWRAP,
 * CKA_DECRYPT... given as attr) and its CKA_ALLOWED_MECHANISMS, if any,
 * include mech; otherwise -EACCES, logged naming the key and the attribute. */
int cv_p11_check_use (struct cv_p11 *p, const struct cv_p11_obj *o,
                      CK_ATTRIBUTE_TYPE attr, CK_MECHANISM_TYPE mech);

/* Wrap len bytes under the token key kek with mech (C_WrapKey): the bytes go
 * to the token as a session object (CKA_TOKEN false, sensitive, extractable
 * only for this wrap), destroyed before return. *out is malloc'd. */
int cv_p11_wrap_bytes (struct cv_p11 *p, CK_MECHANISM_TYPE mech,
                       CK_OBJECT_HANDLE kek, const uint8_t *pt, size_t len,
                       uint8_t **out, size_t *outlen);

/* Unwrap in (C_UnwrapKey with mech under kek) into a new cv_key: the token
 * makes a session object (CKA_TOKEN false), its value is read and the object
 * destroyed before return. -EBADMSG (logged) when the token finds the wrap
 * does not authenticate. */
int cv_p11_unwrap_bytes (struct cv_p11 *p, CK_MECHANISM_TYPE mech,
                         CK_OBJECT_HANDLE kek, const uint8_t *in, size_t len,
                         struct cv_key **pt);

/* C_Decrypt in with mechanism m under key into a new cv_key. On failure
 * returns -errno and *rv the token's code, and logs nothing: the caller knows
 * what a refusal means. */
int cv_p11_decrypt (struct cv_p11 *p, CK_MECHANISM *m, CK_OBJECT_HANDLE key,
                    const uint8_t *in, size_t len, struct cv_key **pt,
                    CK_RV *rv);

/* "CKR_PIN_INCORRECT" or "CKR_0x..." (into a static buffer for unknown
 * codes: only for immediate use in a message). */
const char *cv_p11_rv_name (CK_RV rv);
/* "CKM_AES_KEY_WRAP_PAD", or NULL for a mechanism this file does not name. */
const char *cv_p11_mech_name (CK_MECHANISM_TYPE m);
/* The -errno for a token's return code. */
int cv_p11_rv_errno (CK_RV rv);

/* Forget the tokens that refused the PIN (cv_keys_cleanup). */
void cv_p11_forget (void);

#endif

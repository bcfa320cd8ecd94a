/* PKCS#11 modules, tokens, sessions, login and key objects for the pkcs11
 * provider. A module is loaded, initialised, used and unloaded within one
 * operation: nothing of the token is kept (nbdkit forks after unlock). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/encode.h"
#include "common/fdio.h"
#include "common/log.h"
#include "common/text.h"
#include "crypto/secmem.h"
#include "keys/keys.h"
#include "keys/pkcs11-token.h"

#define PIN_MAX 256
#define REJECTED_MAX 8

/* Tokens (manufacturer, model, serial, label) that refused the PIN in this
 * process: a second C_Login with the same PIN would only count towards
 * locking the token. */
static char rejected[REJECTED_MAX][32 + 16 + 16 + 32 + 1];
static size_t nrejected;

static const struct {
  CK_RV rv;
  const char *name;
} rv_names[] = {
  { CKR_OK, "CKR_OK" },
  { CKR_CANCEL, "CKR_CANCEL" },
  { CKR_HOST_MEMORY, "CKR_HOST_MEMORY" },
  { CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID" },
  { CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR" },
  { CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED" },
  { CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD" },
  { CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE" },
  { CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID" },
  { CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID" },
  { CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED" },
  { CKR_DATA_INVALID, "CKR_DATA_INVALID" },
  { CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE" },
  { CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR" },
  { CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY" },
  { CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED" },
  { CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID" },
  { CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE" },
  { CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED" },
  { CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID" },
  { CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE" },
  { CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT" },
  { CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED" },
  { CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE" },
  { CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE" },
  { CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID" },
  { CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID" },
  { CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID" },
  { CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE" },
  { CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT" },
  { CKR_PIN_INVALID, "CKR_PIN_INVALID" },
  { CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE" },
  { CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED" },
  { CKR_PIN_LOCKED, "CKR_PIN_LOCKED" },
  { CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED" },
  { CKR_SESSION_COUNT, "CKR_SESSION_COUNT" },
  { CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID" },
  { CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE" },
  { CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT" },
  { CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT" },
  { CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED" },
  { CKR_UNWRAPPING_KEY_HANDLE_INVALID, "CKR_UNWRAPPING_KEY_HANDLE_INVALID" },
  { CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT" },
  { CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN" },
  { CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN" },
  { CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED" },
  { CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID" },
  { CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID" },
  { CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE" },
  { CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID" },
  { CKR_WRAPPING_KEY_SIZE_RANGE, "CKR_WRAPPING_KEY_SIZE_RANGE" },
  { CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT" },
  { CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL" },
  { CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED" },
  { CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED" },
};

const char *
cv_p11_rv_name (CK_RV rv)
{
  static __thread char buf[32];

  for (size_t i = 0; i < ARRAY_SIZE (rv_names); i++)
    if (rv_names[i].rv == rv)
      return rv_names[i].name;
  snprintf (buf, sizeof buf, "CKR_0x%lx", (unsigned long) rv);
  return buf;
}

const char *
cv_p11_mech_name (CK_MECHANISM_TYPE m)
{
  switch (m) {
  case CKM_AES_KEY_WRAP:
    return "CKM_AES_KEY_WRAP";
  case CKM_AES_KEY_WRAP_PAD:
    return "CKM_AES_KEY_WRAP_PAD";
  case CKM_AES_KEY_WRAP_KWP:
    return "CKM_AES_KEY_WRAP_KWP";
  case CKM_RSA_PKCS_OAEP:
    return "CKM_RSA_PKCS_OAEP";
  case CKM_RSA_X_509:
    return "CKM_RSA_X_509";
  default:
    return NULL;
  }
}

int
cv_p11_rv_errno (CK_RV rv)
{
  switch (rv) {
  case CKR_OK:
    return 0;
  case CKR_PIN_INCORRECT:
  case CKR_PIN_INVALID:
  case CKR_PIN_LEN_RANGE:
    return -EKEYREJECTED;
  case CKR_PIN_LOCKED:
  case CKR_PIN_EXPIRED:
  case CKR_USER_NOT_LOGGED_IN:
  case CKR_USER_PIN_NOT_INITIALIZED:
  case CKR_KEY_FUNCTION_NOT_PERMITTED:
  case CKR_ACTION_PROHIBITED:
  case CKR_KEY_UNEXTRACTABLE:
  case CKR_KEY_NOT_WRAPPABLE:
    return -EACCES;
  case CKR_WRAPPED_KEY_INVALID:
  case CKR_WRAPPED_KEY_LEN_RANGE:
  case CKR_ENCRYPTED_DATA_INVALID:
  case CKR_ENCRYPTED_DATA_LEN_RANGE:
    return -EBADMSG;
  case CKR_MECHANISM_INVALID:
  case CKR_MECHANISM_PARAM_INVALID:
  case CKR_FUNCTION_NOT_SUPPORTED:
    return -EOPNOTSUPP;
  case CKR_TOKEN_NOT_PRESENT:
  case CKR_DEVICE_REMOVED:
    return -ENODEV;
  case CKR_HOST_MEMORY:
  case CKR_DEVICE_MEMORY:
    return -ENOMEM;
  default:
    return -EIO;
  }
}

void
cv_p11_forget (void)
{
  nrejected = 0;
  memset (rejected, 0, sizeof rejected);
}

void
cv_p11_text (char *buf, const unsigned char *field, size_t n)
{
  const char *s = (const char *) field, *e = s + n;
  char *o = buf;

  cv_trim (&s, &e);
  for (; s < e; s++)
    *o++ = (unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s;
  *o = '\0';
}

int
cv_p11_uri_parse (const char *ref, const char *label, enum cv_log_level level,
                  P11KitUri **out)
{
  P11KitUri *uri = p11_kit_uri_new ();
  int r;

  if (!uri)
    return -ENOMEM;
  r = p11_kit_uri_parse (ref, P11_KIT_URI_FOR_ANY, uri);
  if (r != P11_KIT_URI_OK) {
    cv_log (level, "%s: not a valid PKCS#11 URI (RFC 7512): %s", label,
            p11_kit_uri_message (r));
    p11_kit_uri_free (uri);
    return -EINVAL;
  }
  if (p11_kit_uri_any_unrecognized (uri)) {
    cv_log (level,
            "%s: the PKCS#11 URI has an attribute p11-kit does not know "
            "(a typo would match more keys than meant); use token=, serial=, "
            "object=, id=, type= and module-path=",
            label);
    p11_kit_uri_free (uri);
    return -EINVAL;
  }
  if (p11_kit_uri_get_pin_value (uri)) {
    cv_log (level,
            "%s: the PKCS#11 URI holds pin-value: a wrap's URI is stored in "
            "the volume header in clear; give the PIN with pin=+FILE or "
            "--pin-file, or pin-source=FILE in the URI",
            label);
    p11_kit_uri_free (uri);
    return -EINVAL;
  }
  *out = uri;
  return 0;
}

/* The pin-source path of the URI: "file:PATH" or a plain PATH, or NULL. */
static const char *
pin_source_path (P11KitUri *uri)
{
  const char *s = p11_kit_uri_get_pin_source (uri);

  if (s && strncmp (s, "file:", 5) == 0)
    s += 5;
  return s && *s ? s : NULL;
}

bool
cv_p11_have_pin (const struct cv_creds *c, P11KitUri *uri, enum cv_p11_ref from)
{
  return (c && c->pin) || (from == CV_P11_REF_GIVEN && pin_source_path (uri));
}

/* 0 if path (a file or directory) can be written only by root or us. */
static int
owner_only (const char *path)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return -errno;
  if ((st.st_uid != 0 && st.st_uid != geteuid ()) || (st.st_mode & 022))
    return -EACCES;
  return 0;
}

/* A module path read from a volume header is loaded only if an attacker who
 * can alter the header could not also have put the library there. */
static int
check_stored_module (struct cv_p11 *p, const char *path)
{
  CLEANUP_FREE char *real = realpath (path, NULL);
  char *slash;
  int r;

  if (!real) {
    r = -errno;
    cv_log (p->level, "%s: PKCS#11 module %s %s", p->label, path,
            r == -ENOENT ? "does not exist" : strerrordesc_np (-r));
    return r;
  }
  r = owner_only (real);
  slash = strrchr (real, '/');
  if (r == 0 && slash && slash != real) {
    *slash = '\0';
    r = owner_only (real);
    *slash = '/';
  }
  if (r < 0) {
    cv_log (p->level,
            "%s: refusing to load module-path %s from the volume header: it "
            "or its directory can be written by others than root; give the "
            "module with pkcs11-module= (--pkcs11-module)",
            p->label, real);
    return -EACCES;
  }
  return 0;
}

/* Read the PIN from the pin-source file path (one trailing newline
 * stripped). */
static int
read_pin_source (struct cv_p11 *p, const char *path, struct cv_key **pin)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  CLEANUP_KEY struct cv_key *buf = NULL;
  struct stat st;
  size_t len = 0;
  int r;

  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode)) {
    r = fd < 0 ? -errno : -EINVAL;
    cv_log (p->level, "%s: cannot read the PIN from pin-source %s: %s",
            p->label, path,
            r == -EINVAL ? "not a regular file" : strerrordesc_np (-r));
    return -ENOKEY;
  }
  if ((r = cv_key_new (PIN_MAX + 1, &buf)) < 0)
    return r;
  r = cv_read_all (fd, buf->b, buf->len, &len);
  if (r < 0 || len > PIN_MAX) {
    cv_log (p->level, "%s: pin-source %s: %s", p->label, path,
            r < 0 ? strerrordesc_np (-r) : "longer than a PIN can be");
    return -ENOKEY;
  }
  if (len > 0 && buf->b[len - 1] == '\n')
    len--;
  if (len == 0) {
    cv_log (p->level, "%s: pin-source %s is empty", p->label, path);
    return -ENOKEY;
  }
  return cv_key_from (buf->b, len, pin);
}

/* dlopen the module and get its function list. */
static int
load_module (struct cv_p11 *p, const char *path)
{
  CK_RV (*get) (CK_FUNCTION_LIST_PTR_PTR);
  CK_RV rv;

  p->dl = dlopen (path, RTLD_NOW | RTLD_LOCAL);
  if (!p->dl) {
    const char *e = dlerror ();
    if (access (path, F_OK) < 0 && strchr (path, '/')) {
      cv_log (p->level, "%s: PKCS#11 module %s does not exist", p->label, path);
      return -ELIBACC;
    }
    cv_log (p->level,
            "%s: %s is not a PKCS#11 module: it cannot be loaded (%s); "
            "give the vendor's module (e.g. "
            "/usr/lib/softhsm/libsofthsm2.so) with module-path= or "
            "pkcs11-module=",
            p->label, path, e ? e : "dlopen failed");
    return -ELIBBAD;
  }
  *(void **) &get = dlsym (p->dl, "C_GetFunctionList");
  if (!get) {
    cv_log (p->level,
            "%s: %s is not a PKCS#11 module (it has no C_GetFunctionList); "
            "give the vendor's module with module-path= or pkcs11-module=",
            p->label, path);
    return -ELIBBAD;
  }
  rv = get (&p->f);
  if (rv != CKR_OK || !p->f || p->f->version.major < 2) {
    cv_log (p->level,
            "%s: %s is not a usable PKCS#11 module (C_GetFunctionList: %s)",
            p->label, path, cv_p11_rv_name (rv));
    p->f = NULL;
    return -ELIBBAD;
  }
  return 0;
}

/* Identity of the chosen token for the rejected-PIN list. */
static void
token_key (const struct cv_p11 *p, char *buf, size_t len)
{
  snprintf (buf, len, "%.32s%.16s%.16s%.32s", p->token.manufacturerID,
            p->token.model, p->token.serialNumber, p->token.label);
}

/* Choose the one token that matches the URI; list the tokens present when
 * none or several do. */
static int
choose_token (struct cv_p11 *p)
{
  CK_SLOT_ID want = p11_kit_uri_get_slot_id (p->uri);
  CLEANUP_FREE CK_SLOT_ID *slots = NULL;
  CLEANUP_FREE char *present = NULL, *matching = NULL;
  size_t plen = 0, mlen = 0, nmatch = 0;
  CK_ULONG n = 0;
  CK_INFO info;
  CK_RV rv;
  FILE *pf, *mf;

  rv = p->f->C_GetInfo (&info);
  if (rv == CKR_OK && !p11_kit_uri_match_module_info (p->uri, &info)) {
    cv_log (p->level,
            "%s: the module loaded does not match the URI's library-* "
            "attributes",
            p->label);
    return -ENODEV;
  }
  rv = p->f->C_GetSlotList (CK_TRUE, NULL, &n);
  if (rv == CKR_OK && n > 0) {
    slots = calloc (n, sizeof *slots);
    if (!slots)
      return -ENOMEM;
    rv = p->f->C_GetSlotList (CK_TRUE, slots, &n);
  }
  if (rv != CKR_OK) {
    cv_log (p->level, "%s: cannot list the module's slots (%s)", p->label,
            cv_p11_rv_name (rv));
    return cv_p11_rv_errno (rv);
  }
  pf = open_memstream (&present, &plen);
  mf = open_memstream (&matching, &mlen);
  if (!pf || !mf) {
    if (pf)
      fclose (pf);
    if (mf)
      fclose (mf);
    return -ENOMEM;
  }
  for (CK_ULONG i = 0; i < n; i++) {
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    char lbl[33], serial[17];

    if (p->f->C_GetSlotInfo (slots[i], &si) != CKR_OK
        || p->f->C_GetTokenInfo (slots[i], &ti) != CKR_OK)
      continue;
    cv_p11_text (lbl, ti.label, sizeof ti.label);
    cv_p11_text (serial, ti.serialNumber, sizeof ti.serialNumber);
    if (ti.flags & CKF_TOKEN_INITIALIZED)
      fprintf (pf, "%s'%s' (serial %s)", ftell (pf) ? ", " : "", lbl, serial);
    else
      fprintf (pf, "%san uninitialised token in slot %lu",
               ftell (pf) ? ", " : "", (unsigned long) slots[i]);
    if ((want != (CK_SLOT_ID) -1 && want != slots[i])
        || !p11_kit_uri_match_slot_info (p->uri, &si)
        || !p11_kit_uri_match_token_info (p->uri, &ti))
      continue;
    fprintf (mf, "%s'%s' (serial %s)", ftell (mf) ? ", " : "", lbl, serial);
    if (nmatch++ == 0) {
      p->slot = slots[i];
      p->token = ti;
      memcpy (p->token_label, lbl, sizeof lbl);
      memcpy (p->token_serial, serial, sizeof serial);
    }
  }
  /* Both closed, whatever the first says: each holds memory. */
  bool lost = fclose (pf) != 0;
  if (fclose (mf) != 0 || lost)
    return -ENOMEM;
  if (nmatch == 0) {
    cv_log (p->level,
            "%s: token not present: no token matches the URI; tokens "
            "present: %s",
            p->label, plen ? present : "none");
    return -ENODEV;
  }
  if (nmatch > 1) {
    cv_log (p->level,
            "%s: the URI matches %zu tokens (%s): refusing to guess; add "
            "token= or serial= to the URI",
            p->label, nmatch, matching);
    return -EINVAL;
  }
  return 0;
}

/* Log in once with the PIN (credentials first, then pin-source). */
static int
login (struct cv_p11 *p, const struct cv_creds *c)
{
  CLEANUP_KEY struct cv_key *fpin = NULL;
  const struct cv_key *pin = c ? c->pin : NULL;
  char tk[sizeof rejected[0]];
  CK_RV rv;
  int r;

  token_key (p, tk, sizeof tk);
  for (size_t i = 0; i < nrejected; i++)
    if (strcmp (rejected[i], tk) == 0) {
      cv_log (p->level,
              "%s: token '%s' already refused this PIN (CKR_PIN_INCORRECT); "
              "not trying it again, as each try counts towards locking the "
              "token",
              p->label, p->token_label);
      return -EKEYREJECTED;
    }
  if (p->token.flags & CKF_USER_PIN_LOCKED) {
    cv_log (p->level,
            "%s: the user PIN of token '%s' is locked (CKR_PIN_LOCKED); the "
            "security officer must reset it",
            p->label, p->token_label);
    return -EACCES;
  }
  if (p->token.flags & CKF_USER_PIN_FINAL_TRY) {
    cv_log (p->level,
            "%s: token '%s' locks its user PIN after one more wrong try; "
            "cryptvol does not risk it: log in once by hand to reset the "
            "counter",
            p->label, p->token_label);
    return -EACCES;
  }
  if (!pin) { /* only a given URI gets here without a PIN */
    const char *path = pin_source_path (p->uri);
    if ((r = read_pin_source (p, path, &fpin)) < 0)
      return r;
    pin = fpin;
  }
  rv = p->f->C_Login (p->s, CKU_USER, (CK_UTF8CHAR_PTR) pin->b, pin->len);
  if (rv == CKR_USER_ALREADY_LOGGED_IN)
    return 0;
  if (rv == CKR_PIN_INCORRECT) {
    if (nrejected < REJECTED_MAX)
      memcpy (rejected[nrejected++], tk, sizeof tk);
    cv_log (p->level,
            "%s: wrong PIN for token '%s' (CKR_PIN_INCORRECT); not retried",
            p->label, p->token_label);
    return -EKEYREJECTED;
  }
  if (rv != CKR_OK) {
    cv_log (p->level, "%s: cannot log in to token '%s' (%s)", p->label,
            p->token_label, cv_p11_rv_name (rv));
    return cv_p11_rv_errno (rv);
  }
  p->logged_in = true;
  return 0;
}

int
cv_p11_open (const char *ref, enum cv_p11_ref from, const struct cv_creds *c,
             const char *label, enum cv_log_level level, enum cv_p11_login want,
             struct cv_p11 **out)
{
  struct cv_p11 *p = calloc (1, sizeof *p);
  CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
  const char *module;
  CK_RV rv;
  int r;

  if (!p)
    return -ENOMEM;
  p->label = label;
  p->level = level;
  if ((r = cv_p11_uri_parse (ref, label, level, &p->uri)) < 0)
    goto fail;
  if (want == CV_P11_LOGIN_REQUIRED && !cv_p11_have_pin (c, p->uri, from)) {
    r = -ENOKEY;
    goto fail;
  }
  module = c && c->pkcs11_module ? c->pkcs11_module
                                 : p11_kit_uri_get_module_path (p->uri);
  if (!module) {
    if (p11_kit_uri_get_module_name (p->uri))
      cv_log (level,
              "%s: module-name= is not supported; give the module's path "
              "with module-path= in the URI or pkcs11-module=",
              label);
    else
      cv_log (level,
              "%s: no PKCS#11 module: give module-path= in the URI or the "
              "pkcs11-module= parameter (--pkcs11-module)",
              label);
    r = -EINVAL;
    goto fail;
  }
  if (from == CV_P11_REF_STORED && !(c && c->pkcs11_module)
      && (r = check_stored_module (p, module)) < 0)
    goto fail;
  if ((r = load_module (p, module)) < 0)
    goto fail;
  rv = p->f->C_Initialize (&args);
  if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    cv_log (level, "%s: PKCS#11 module %s failed to initialise (%s)", label,
            module, cv_p11_rv_name (rv));
    r = cv_p11_rv_errno (rv);
    goto fail;
  }
  p->finalize = rv == CKR_OK;
  if ((r = choose_token (p)) < 0)
    goto fail;
  rv = p->f->C_OpenSession (p->slot, CKF_SERIAL_SESSION, NULL, NULL, &p->s);
  if (rv != CKR_OK) {
    cv_log (level, "%s: cannot open a session on token '%s' (%s)", label,
            p->token_label, cv_p11_rv_name (rv));
    r = cv_p11_rv_errno (rv);
    goto fail;
  }
  p->session = true;
  if (cv_p11_have_pin (c, p->uri, from) && (r = login (p, c)) < 0)
    goto fail;
  *out = p;
  return 0;

fail:
  cv_p11_close (p);
  return r;
}

void
cv_p11_close (struct cv_p11 *p)
{
  if (!p)
    return;
  if (p->logged_in)
    p->f->C_Logout (p->s);
  if (p->session)
    p->f->C_CloseSession (p->s);
  if (p->finalize)
    p->f->C_Finalize (NULL);
  if (p->dl)
    dlclose (p->dl);
  if (p->uri)
    p11_kit_uri_free (p->uri);
  cv_wipe (p, sizeof *p);
  free (p);
}

/* Fill o's class, key type, label and id from the token. */
static void
describe_obj (struct cv_p11 *p, struct cv_p11_obj *o)
{
  unsigned char lbl[64], id[32];
  CK_ATTRIBUTE a[] = {
    { CKA_CLASS, &o->cls, sizeof o->cls },
    { CKA_KEY_TYPE, &o->type, sizeof o->type },
    { CKA_LABEL, lbl, sizeof lbl },
    { CKA_ID, id, sizeof id },
  };
  CLEANUP_FREE uint8_t *full = NULL;
  CLEANUP_FREE char *hex = NULL;
  size_t len;

  o->cls = (CK_OBJECT_CLASS) -1;
  o->type = (CK_KEY_TYPE) -1;
  /* Attributes the token cannot give (or that are too long) come back as
   * (CK_ULONG) -1: read them one by one. */
  for (size_t i = 0; i < ARRAY_SIZE (a); i++)
    if (p->f->C_GetAttributeValue (p->s, o->h, &a[i], 1) != CKR_OK)
      a[i].ulValueLen = (CK_ULONG) -1;
  if (a[2].ulValueLen != (CK_ULONG) -1)
    cv_p11_text (o->label, lbl, a[2].ulValueLen);
  else if (cv_p11_get_bytes (p, o->h, CKA_LABEL, &full, &len) == 0)
    cv_p11_text (o->label, full, len > 64 ? 64 : len);
  if (a[3].ulValueLen != (CK_ULONG) -1
      && cv_hex_encode (id, a[3].ulValueLen, &hex) == 0)
    snprintf (o->id, sizeof o->id, "%s", hex);
}

/* Order objects by label, then id, so that messages listing them are stable.
 */
static int
obj_cmp (const void *a, const void *b)
{
  const struct cv_p11_obj *x = a, *y = b;
  int c = strcmp (x->label, y->label);

  return c ? c : strcmp (x->id, y->id);
}

int
cv_p11_find_keys (struct cv_p11 *p, struct cv_p11_obj *objs, size_t *n)
{
  CK_ULONG nattr = 0, got = 0;
  CK_ATTRIBUTE *attrs = p11_kit_uri_get_attributes (p->uri, &nattr);
  CK_OBJECT_HANDLE h[CV_P11_MAX_OBJS * 4];
  CK_RV rv;

  *n = 0;
  rv = p->f->C_FindObjectsInit (p->s, attrs, nattr);
  if (rv == CKR_OK) {
    rv = p->f->C_FindObjects (p->s, h, ARRAY_SIZE (h), &got);
    p->f->C_FindObjectsFinal (p->s);
  }
  if (rv != CKR_OK) {
    cv_log (p->level, "%s: cannot search token '%s' (%s)", p->label,
            p->token_label, cv_p11_rv_name (rv));
    return cv_p11_rv_errno (rv);
  }
  for (CK_ULONG i = 0; i < got && *n < CV_P11_MAX_OBJS; i++) {
    struct cv_p11_obj o = { .h = h[i] };
    describe_obj (p, &o);
    if (o.cls == CKO_SECRET_KEY || o.cls == CKO_PRIVATE_KEY
        || o.cls == CKO_PUBLIC_KEY)
      objs[(*n)++] = o;
  }
  qsort (objs, *n, sizeof *objs, obj_cmp);
  return 0;
}

const char *
cv_p11_obj_name (const struct cv_p11_obj *o, char *buf, size_t len)
{
  const char *cls = o->cls == CKO_SECRET_KEY    ? "secret key"
                    : o->cls == CKO_PRIVATE_KEY ? "private key"
                                                : "public key";

  snprintf (buf, len, "%s label '%s' id %s", cls, o->label,
            o->id[0] ? o->id : "(none)");
  return buf;
}

void
cv_p11_obj_list (const struct cv_p11_obj *objs, size_t n, char *buf, size_t len)
{
  size_t used = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < n && used + 1 < len; i++) {
    char one[160];
    used += snprintf (buf + used, len - used, "%s%s", i ? ", " : "",
                      cv_p11_obj_name (&objs[i], one, sizeof one));
  }
  if (n == 0)
    snprintf (buf, len, "none");
}

int
cv_p11_get_bool (struct cv_p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
  CK_BBOOL v = CK_FALSE;
  CK_ATTRIBUTE a = { type, &v, sizeof v };

  if (p->f->C_GetAttributeValue (p->s, h, &a, 1) != CKR_OK
      || a.ulValueLen != sizeof v)
    return -1;
  return v == CK_TRUE;
}

int
cv_p11_get_bytes (struct cv_p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                  uint8_t **out, size_t *len)
{
  CK_ATTRIBUTE a = { type, NULL, 0 };

  if (p->f->C_GetAttributeValue (p->s, h, &a, 1) != CKR_OK
      || a.ulValueLen == (CK_ULONG) -1 || a.ulValueLen > 65536)
    return -ENOENT;
  a.pValue = malloc (a.ulValueLen ? a.ulValueLen : 1);
  if (!a.pValue)
    return -ENOMEM;
  if (p->f->C_GetAttributeValue (p->s, h, &a, 1) != CKR_OK) {
    free (a.pValue);
    return -ENOENT;
  }
  *out = a.pValue;
  *len = a.ulValueLen;
  return 0;
}

bool
cv_p11_token_has_mech (struct cv_p11 *p, CK_MECHANISM_TYPE mech, CK_FLAGS flags)
{
  CK_MECHANISM_INFO mi;

  return p->f->C_GetMechanismInfo (p->slot, mech, &mi) == CKR_OK
         && (mi.flags & flags) == flags;
}

static const CK_MECHANISM_TYPE kwp_mechs[]
    = { CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD };

CK_MECHANISM_TYPE
cv_p11_kwp_mech (struct cv_p11 *p)
{
  for (size_t i = 0; i < ARRAY_SIZE (kwp_mechs); i++)
    if (cv_p11_token_has_mech (p, kwp_mechs[i], CKF_WRAP | CKF_UNWRAP))
      return kwp_mechs[i];
  return 0;
}

CK_MECHANISM_TYPE
cv_p11_kwp_mech_by_name (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (kwp_mechs); i++)
    if (strcmp (name, cv_p11_mech_name (kwp_mechs[i])) == 0)
      return kwp_mechs[i];
  return 0;
}

/* The name of a usage attribute, for messages. */
static const char *
attr_name (CK_ATTRIBUTE_TYPE a)
{
  switch (a) {
  case CKA_WRAP:
    return "CKA_WRAP";
  case CKA_UNWRAP:
    return "CKA_UNWRAP";
  case CKA_DECRYPT:
    return "CKA_DECRYPT";
  case CKA_ENCRYPT:
    return "CKA_ENCRYPT";
  default:
    return "a usage attribute";
  }
}

int
cv_p11_check_use (struct cv_p11 *p, const struct cv_p11_obj *o,
                  CK_ATTRIBUTE_TYPE attr, CK_MECHANISM_TYPE mech)
{
  CLEANUP_FREE uint8_t *allowed = NULL;
  char name[160];
  size_t len = 0;

  if (cv_p11_get_bool (p, o->h, attr) == 0) {
    cv_log (p->level,
            "%s: the %s on token '%s' does not allow this use (%s is false; "
            "the token would answer CKR_KEY_FUNCTION_NOT_PERMITTED); use a "
            "key made for key wrapping",
            p->label, cv_p11_obj_name (o, name, sizeof name), p->token_label,
            attr_name (attr));
    return -EACCES;
  }
  if (cv_p11_get_bytes (p, o->h, CKA_ALLOWED_MECHANISMS, &allowed, &len) == 0
      && len >= sizeof (CK_MECHANISM_TYPE)) {
    CK_MECHANISM_TYPE m;
    for (size_t i = 0; i + sizeof m <= len; i += sizeof m) {
      memcpy (&m, allowed + i, sizeof m);
      if (m == mech)
        return 0;
    }
    cv_log (p->level,
            "%s: the %s on token '%s' does not allow %s (not in its "
            "CKA_ALLOWED_MECHANISMS)",
            p->label, cv_p11_obj_name (o, name, sizeof name), p->token_label,
            cv_p11_mech_name (mech) ? cv_p11_mech_name (mech) : "it");
    return -EACCES;
  }
  return 0;
}

int
cv_p11_wrap_bytes (struct cv_p11 *p, CK_MECHANISM_TYPE mech,
                   CK_OBJECT_HANDLE kek, const uint8_t *pt, size_t len,
                   uint8_t **out, size_t *outlen)
{
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
  CK_ATTRIBUTE tmpl[] = {
    { CKA_CLASS, &cls, sizeof cls },     { CKA_KEY_TYPE, &type, sizeof type },
    { CKA_TOKEN, &no, sizeof no },       { CKA_PRIVATE, &yes, sizeof yes },
    { CKA_SENSITIVE, &yes, sizeof yes }, { CKA_EXTRACTABLE, &yes, sizeof yes },
    { CKA_VALUE, (void *) pt, len },
  };
  CK_MECHANISM m = { mech, NULL, 0 };
  CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
  CLEANUP_FREE uint8_t *buf = NULL;
  CK_ULONG n = 0;
  const char *mname = cv_p11_mech_name (mech);
  CK_RV rv;

  /* Logged in, the session object is private: no other session sees it. */
  if (!p->logged_in)
    tmpl[3].pValue = &no;
  rv = p->f->C_CreateObject (p->s, tmpl, ARRAY_SIZE (tmpl), &obj);
  if (rv != CKR_OK) {
    cv_log (p->level,
            "%s: token '%s' refused the key to wrap as a session object (%s)",
            p->label, p->token_label, cv_p11_rv_name (rv));
    return cv_p11_rv_errno (rv);
  }
  rv = p->f->C_WrapKey (p->s, &m, kek, obj, NULL, &n);
  if (rv == CKR_OK && (buf = malloc (n ? n : 1)) == NULL)
    rv = CKR_HOST_MEMORY;
  if (rv == CKR_OK)
    rv = p->f->C_WrapKey (p->s, &m, kek, obj, buf, &n);
  p->f->C_DestroyObject (p->s, obj);
  if (rv != CKR_OK) {
    cv_log (p->level, "%s: token '%s' could not wrap with %s (%s)", p->label,
            p->token_label, mname ? mname : "the mechanism",
            cv_p11_rv_name (rv));
    return cv_p11_rv_errno (rv);
  }
  *out = STEAL (buf);
  *outlen = n;
  return 0;
}

int
cv_p11_unwrap_bytes (struct cv_p11 *p, CK_MECHANISM_TYPE mech,
                     CK_OBJECT_HANDLE kek, const uint8_t *in, size_t len,
                     struct cv_key **pt)
{
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
  CK_ATTRIBUTE tmpl[] = {
    { CKA_CLASS, &cls, sizeof cls },   { CKA_KEY_TYPE, &type, sizeof type },
    { CKA_TOKEN, &no, sizeof no },     { CKA_PRIVATE, &yes, sizeof yes },
    { CKA_SENSITIVE, &no, sizeof no }, { CKA_EXTRACTABLE, &yes, sizeof yes },
  };
  CK_MECHANISM m = { mech, NULL, 0 };
  CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
  CLEANUP_KEY struct cv_key *k = NULL;
  CK_ATTRIBUTE val = { CKA_VALUE, NULL, 0 };
  const char *mname = cv_p11_mech_name (mech);
  CK_RV rv;
  int r;

  rv = p->f->C_UnwrapKey (p->s, &m, kek, (CK_BYTE_PTR) in, len, tmpl,
                          ARRAY_SIZE (tmpl), &obj);
  if (rv != CKR_OK) {
    r = cv_p11_rv_errno (rv);
    if (r == -EBADMSG)
      cv_log (p->level,
              "%s: the wrap does not authenticate under the key on token "
              "'%s' (%s): it was altered, or made with another key",
              p->label, p->token_label, cv_p11_rv_name (rv));
    else if (rv == CKR_GENERAL_ERROR)
      cv_log (p->level,
              "%s: token '%s' could not unwrap (CKR_GENERAL_ERROR, which "
              "SoftHSM2 answers when a wrap does not authenticate): the wrap "
              "was altered or made with another key, or the token failed",
              p->label, p->token_label);
    else
      cv_log (p->level, "%s: token '%s' could not unwrap with %s (%s)",
              p->label, p->token_label, mname ? mname : "the mechanism",
              cv_p11_rv_name (rv));
    return r;
  }
  /* The value goes straight into secure memory; the object is destroyed
   * whatever happens. */
  rv = p->f->C_GetAttributeValue (p->s, obj, &val, 1);
  if (rv == CKR_OK && (val.ulValueLen == 0 || val.ulValueLen > 4096))
    rv = CKR_WRAPPED_KEY_LEN_RANGE;
  if (rv == CKR_OK && (r = cv_key_new (val.ulValueLen, &k)) < 0)
    rv = CKR_HOST_MEMORY;
  if (rv == CKR_OK) {
    val.pValue = k->b;
    rv = p->f->C_GetAttributeValue (p->s, obj, &val, 1);
  }
  p->f->C_DestroyObject (p->s, obj);
  if (rv != CKR_OK || val.ulValueLen != k->len) {
    cv_log (p->level,
            "%s: token '%s' unwrapped the key but does not give its value "
            "(%s)",
            p->label, p->token_label, cv_p11_rv_name (rv));
    return rv == CKR_OK ? -EIO : cv_p11_rv_errno (rv);
  }
  *pt = STEAL (k);
  return 0;
}

int
cv_p11_decrypt (struct cv_p11 *p, CK_MECHANISM *m, CK_OBJECT_HANDLE key,
                const uint8_t *in, size_t len, struct cv_key **pt, CK_RV *rv)
{
  CLEANUP_KEY struct cv_key *k = NULL;
  CK_ULONG n = 0;
  int r;

  *rv = p->f->C_DecryptInit (p->s, m, key);
  if (*rv != CKR_OK)
    return cv_p11_rv_errno (*rv);
  /* The output is never longer than the input for RSA. An operation left
   * active by a failure here ends with the session, in cv_p11_close. */
  if ((r = cv_key_new (len, &k)) < 0)
    return r;
  n = len;
  *rv = p->f->C_Decrypt (p->s, (CK_BYTE_PTR) in, len, k->b, &n);
  if (*rv == CKR_OK && n == 0)
    *rv = CKR_ENCRYPTED_DATA_INVALID;
  if (*rv != CKR_OK)
    return cv_p11_rv_errno (*rv);
  if (n < k->len) {
    struct cv_key *shorter = NULL;
    if ((r = cv_key_from (k->b, n, &shorter)) < 0)
      return r;
    cv_key_free (k);
    k = shorter;
  }
  *pt = STEAL (k);
  return 0;
}

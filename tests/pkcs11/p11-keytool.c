/* Test helper for tests/pkcs11/make-token.sh and the pkcs11 tests: what
 * pkcs11-tool cannot do on SoftHSM2 (its defaults turn every usage on).
 *
 *   p11-keytool MODULE TOKEN PINFILE genaes LABEL IDHEX [ATTR=0|1]...
 *       generate an AES-256 token key (sensitive, not extractable unless
 *       extractable=1) with the usage attributes given
 *   p11-keytool MODULE TOKEN PINFILE set CLASS LABEL ATTR=0|1...
 *       change usage attributes of the key(s) of that class and label
 *   p11-keytool MODULE TOKEN PINFILE show LABEL
 *       print "CLASS LABEL sensitive=N extractable=N never_extractable=N"
 *       for each key with that label
 *
 * CLASS is secret, private or public; ATTR is wrap, unwrap, encrypt,
 * decrypt, extractable. The PIN is read from PINFILE. Built by make-token.sh
 * with cc; not part of cryptvol. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST *f;
static CK_SESSION_HANDLE s;

static void
die (const char *what, CK_RV rv)
{
  fprintf (stderr, "p11-keytool: %s failed (0x%lx)\n", what,
           (unsigned long) rv);
  exit (1);
}

/* Open a logged-in R/W session on the token labelled label. */
static void
open_token (const char *module, const char *label, const char *pinfile)
{
  CK_RV (*get) (CK_FUNCTION_LIST_PTR_PTR);
  CK_SLOT_ID slots[64];
  CK_ULONG n = 64;
  char pin[256];
  FILE *pf = fopen (pinfile, "r");
  void *dl = dlopen (module, RTLD_NOW);

  if (!dl || !pf || !fgets (pin, sizeof pin, pf)) {
    fprintf (stderr, "p11-keytool: cannot load %s or read %s\n", module,
             pinfile);
    exit (1);
  }
  fclose (pf);
  pin[strcspn (pin, "\n")] = '\0';
  *(void **) &get = dlsym (dl, "C_GetFunctionList");
  if (!get || get (&f) != CKR_OK || f->C_Initialize (NULL) != CKR_OK
      || f->C_GetSlotList (CK_TRUE, slots, &n) != CKR_OK)
    die ("initialisation", 0);
  for (CK_ULONG i = 0; i < n; i++) {
    CK_TOKEN_INFO ti;
    size_t len = strlen (label);
    if (f->C_GetTokenInfo (slots[i], &ti) != CKR_OK || len > 32
        || memcmp (ti.label, label, len) != 0
        || (len < 32 && ti.label[len] != ' '))
      continue;
    CK_RV rv = f->C_OpenSession (slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                 NULL, NULL, &s);
    if (rv != CKR_OK)
      die ("C_OpenSession", rv);
    rv = f->C_Login (s, CKU_USER, (CK_UTF8CHAR_PTR) pin, strlen (pin));
    if (rv != CKR_OK)
      die ("C_Login", rv);
    return;
  }
  fprintf (stderr, "p11-keytool: no token '%s'\n", label);
  exit (1);
}

static CK_ATTRIBUTE_TYPE
attr_type (const char *name)
{
  static const struct {
    const char *name;
    CK_ATTRIBUTE_TYPE type;
  } t[] = { { "wrap", CKA_WRAP },
            { "unwrap", CKA_UNWRAP },
            { "encrypt", CKA_ENCRYPT },
            { "decrypt", CKA_DECRYPT },
            { "extractable", CKA_EXTRACTABLE } };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp (t[i].name, name) == 0)
      return t[i].type;
  fprintf (stderr, "p11-keytool: unknown attribute %s\n", name);
  exit (1);
}

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

/* Parse "ATTR=0|1" arguments into a[], return how many. */
static CK_ULONG
parse_attrs (char **argv, int argc, CK_ATTRIBUTE *a)
{
  for (int i = 0; i < argc; i++) {
    char name[32];
    int v;
    if (sscanf (argv[i], "%31[a-z]=%d", name, &v) != 2)
      die ("attribute syntax", 0);
    a[i] = (CK_ATTRIBUTE){ attr_type (name), v ? &yes : &no, sizeof yes };
  }
  return (CK_ULONG) argc;
}

static CK_OBJECT_CLASS
parse_class (const char *c)
{
  return strcmp (c, "secret") == 0    ? CKO_SECRET_KEY
         : strcmp (c, "private") == 0 ? CKO_PRIVATE_KEY
                                      : CKO_PUBLIC_KEY;
}

/* Find up to max objects with the label (and class, if cls != -1). */
static CK_ULONG
find (const char *label, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *h, CK_ULONG max)
{
  CK_ATTRIBUTE t[] = { { CKA_LABEL, (void *) label, strlen (label) },
                       { CKA_CLASS, &cls, sizeof cls } };
  CK_ULONG n = 0;

  if (f->C_FindObjectsInit (s, t, cls == (CK_OBJECT_CLASS) -1 ? 1 : 2) != CKR_OK
      || f->C_FindObjects (s, h, max, &n) != CKR_OK)
    die ("search", 0);
  f->C_FindObjectsFinal (s);
  return n;
}

int
main (int argc, char **argv)
{
  if (argc < 5) {
    fprintf (stderr, "usage: see the comment at the top of p11-keytool.c\n");
    return 1;
  }
  open_token (argv[1], argv[2], argv[3]);
  if (strcmp (argv[4], "genaes") == 0 && argc >= 7) {
    CK_MECHANISM m = { CKM_AES_KEY_GEN, NULL, 0 };
    CK_ULONG len = 32;
    unsigned char id[32];
    size_t idlen = strlen (argv[6]) / 2;
    CK_ATTRIBUTE t[16] = {
      { CKA_TOKEN, &yes, sizeof yes },
      { CKA_PRIVATE, &yes, sizeof yes },
      { CKA_SENSITIVE, &yes, sizeof yes },
      { CKA_EXTRACTABLE, &no, sizeof no },
      { CKA_VALUE_LEN, &len, sizeof len },
      { CKA_LABEL, argv[5], strlen (argv[5]) },
      { CKA_ID, id, idlen },
    };
    CK_OBJECT_HANDLE h;
    CK_RV rv;
    for (size_t i = 0; i < idlen && i < sizeof id; i++)
      sscanf (argv[6] + 2 * i, "%2hhx", &id[i]);
    CK_ULONG n = 7 + parse_attrs (argv + 7, argc - 7, t + 7);
    rv = f->C_GenerateKey (s, &m, t, n, &h);
    if (rv != CKR_OK)
      die ("C_GenerateKey", rv);
  } else if (strcmp (argv[4], "set") == 0 && argc >= 8) {
    CK_OBJECT_HANDLE h[16];
    CK_ATTRIBUTE t[8];
    CK_ULONG nt = parse_attrs (argv + 7, argc - 7, t);
    CK_ULONG n = find (argv[6], parse_class (argv[5]), h, 16);
    if (n == 0)
      die ("finding the key", 0);
    for (CK_ULONG i = 0; i < n; i++) {
      CK_RV rv = f->C_SetAttributeValue (s, h[i], t, nt);
      if (rv != CKR_OK)
        die ("C_SetAttributeValue", rv);
    }
  } else if (strcmp (argv[4], "show") == 0 && argc == 6) {
    CK_OBJECT_HANDLE h[16];
    CK_ULONG n = find (argv[5], (CK_OBJECT_CLASS) -1, h, 16);
    for (CK_ULONG i = 0; i < n; i++) {
      CK_OBJECT_CLASS cls = 0;
      CK_BBOOL sens = 0, ext = 0, never = 0;
      CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof cls },
                           { CKA_SENSITIVE, &sens, sizeof sens },
                           { CKA_EXTRACTABLE, &ext, sizeof ext },
                           { CKA_NEVER_EXTRACTABLE, &never, sizeof never } };
      f->C_GetAttributeValue (s, h[i], t, 4);
      printf ("%s %s sensitive=%d extractable=%d never_extractable=%d\n",
              cls == CKO_SECRET_KEY    ? "secret"
              : cls == CKO_PRIVATE_KEY ? "private"
                                       : "public",
              argv[5], sens, ext, never);
    }
  } else {
    fprintf (stderr, "p11-keytool: bad command\n");
    return 1;
  }
  f->C_Logout (s);
  f->C_CloseSession (s);
  f->C_Finalize (NULL);
  return 0;
}

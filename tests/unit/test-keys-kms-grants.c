/* KMS grants without a KMS: the principals a grant may name, the CreateGrant
 * request (operations, the volume's constraint, the name AWS accepts), the
 * reading of ListGrants pages (which grants are the volume's, paging,
 * answers that are not KMS's), grant tokens added to exactly the calls that
 * take them, and the checks of tokens and grant ids as a user gives them. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "harness.h"
#include "keys/keys.h"
#include "keys/kms-grants.h"
#include "keys/kms.h"

#define UUID "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
#define OTHER "11111111-2222-3333-4444-555555555555"

static void
check_principals (void)
{
  static const char *const good[] = {
    "arn:aws:iam::111122223333:role/cryptvol-serve",
    "arn:aws:iam::111122223333:role/service-role/storage/host-7",
    "arn:aws:iam::111122223333:user/alice@example.com",
    "arn:aws:iam::111122223333:root",
    "arn:aws:sts::111122223333:assumed-role/cryptvol-serve/i-0abc",
    "arn:aws-cn:iam::111122223333:role/r",
    "arn:aws-us-gov:iam::111122223333:role/r",
  };
  static const char *const bad[] = {
    "cryptvol-serve",
    "role/cryptvol-serve",
    "arn:aws:kms:us-east-1:111122223333:key/1234",
    "arn:aws:iam::11112222333:role/r",           /* 11 digits */
    "arn:aws:iam::111122223333:role/",           /* no name */
    "arn:aws:iam::111122223333:role/r/",         /* path without a name */
    "arn:aws:iam::111122223333:group/g",         /* groups cannot be grantees */
    "arn:aws:iam:us-east-1:111122223333:role/r", /* IAM has no region */
    "arn:aws:sts::111122223333:assumed-role/r",  /* no session */
    "arn:aws:sts::111122223333:root",
    "arn:aws:iam::111122223333:role/a b",
    "arn:AWS:iam::111122223333:role/r",
    "",
  };

  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    CHECK (cv_kms_principal_check ("--grantee", good[i]) == 0, "accepts %s",
           good[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    harness_log_clear ();
    CHECK (cv_kms_principal_check ("--grantee", bad[i]) == -EINVAL,
           "refuses \"%s\"", bad[i]);
    CHECK (strstr (harness_logged (), "--grantee: \"")
               && strstr (harness_logged (), "is not an AWS principal ARN; "
                                             "give arn:aws:iam::ACCOUNT:role/"),
           "the message names the option and the forms: %s", harness_logged ());
  }
}

/* True if s matches the extended regex re. */
static bool
matches (const char *s, const char *re)
{
  regex_t r;
  bool m = regcomp (&r, re, REG_EXTENDED | REG_NOSUB) == 0
           && regexec (&r, s, 0, NULL, 0) == 0;
  regfree (&r);
  return m;
}

static void
check_request (void)
{
  struct cv_kms_grant_spec s = {
    .grantee = "arn:aws:iam::111122223333:role/cryptvol-serve",
  };
  json_auto_t *req = NULL, *want = NULL, *req2 = NULL;
  CLEANUP_FREE char *text = NULL;

  CHECK (cv_kms_grant_request ("arn:aws:kms:us-east-1:111122223333:key/k1",
                               UUID, &s, &req)
             == 0,
         "a request");
  want = json_pack ("{s:s, s:s, s:[s], s:{s:{s:s}}, s:s}", "KeyId",
                    "arn:aws:kms:us-east-1:111122223333:key/k1",
                    "GranteePrincipal", s.grantee, "Operations", "Decrypt",
                    "Constraints", "EncryptionContextSubset", "cryptvol:volume",
                    UUID, "Name", "cryptvol-" UUID);
  text = json_dumps (req, JSON_SORT_KEYS | JSON_COMPACT);
  CHECK (json_equal (req, want),
         "Decrypt only, the volume's context, the "
         "volume's name, no retiring principal: %s",
         text);
  /* AWS's pattern for grant names. */
  CHECK (matches (json_string_value (json_object_get (req, "Name")),
                  "^[a-zA-Z0-9:/_-]{1,256}$"),
         "the name is one AWS accepts");

  s.reencrypt = true;
  s.retiring = "arn:aws:iam::111122223333:role/cryptvol-admin";
  CHECK (cv_kms_grant_request ("k1", UUID, &s, &req2) == 0, "reencrypt");
  json_t *ops = json_object_get (req2, "Operations");
  CHECK (json_array_size (ops) == 2
             && strcmp (json_string_value (json_array_get (ops, 1)),
                        "ReEncryptFrom")
                    == 0,
         "--reencrypt adds ReEncryptFrom");
  CHECK (
      strcmp (json_string_value (json_object_get (req2, "RetiringPrincipal")),
              s.retiring)
          == 0,
      "the retiring principal is sent");

  json_t *none = NULL;
  harness_log_clear ();
  CHECK (cv_kms_grant_request ("k1", "not-a-uuid", &s, &none) == -EINVAL
             && !none,
         "a bad uuid is refused");
  s.retiring = "admin";
  harness_log_clear ();
  CHECK (cv_kms_grant_request ("k1", UUID, &s, &none) == -EINVAL && !none,
         "a bad retiring principal is refused");
  CHECK (strstr (harness_logged (), "--retiring-principal: \"admin\""),
         "named: %s", harness_logged ());
}

/* A ListGrants answer from its JSON text. */
static json_t *
answer (const char *text)
{
  json_error_t e;
  json_t *j = json_loads (text, 0, &e);
  if (!j)
    fprintf (stderr, "bad test JSON: %s\n", e.text);
  return j;
}

#define GRANT(id, cons)                                                        \
  "{\"GrantId\": \"" id                                                        \
  "\", \"Name\": \"n\", \"Operations\": [\"Decrypt\"]" cons "}"
#define EQUALS(u)                                                              \
  ", \"Constraints\": {\"EncryptionContextEquals\": "                          \
  "{\"cryptvol:volume\": \"" u "\"}}"
#define SUBSET(u)                                                              \
  ", \"Constraints\": {\"EncryptionContextSubset\": "                          \
  "{\"cryptvol:volume\": \"" u "\", \"x\": \"y\"}}"

static void
check_pages (void)
{
  json_auto_t *page1
      = answer ("{\"Grants\": [" GRANT ("g1", EQUALS (UUID)) "," GRANT (
          "g2",
          EQUALS (
              OTHER)) "," GRANT ("g3",
                                 "") "," GRANT ("g4",
                                                SUBSET (
                                                    UUID)) "], \"Truncated\": "
                                                           "true, "
                                                           "\"NextMarker\": "
                                                           "\"m2\"}");
  json_auto_t *page2 = answer (
      "{\"Grants\": [" GRANT ("g5", EQUALS (UUID)) "], \"Truncated\": "
                                                   "false}");
  json_auto_t *mine = json_array (), *all = json_array ();
  CLEANUP_FREE char *next = NULL;
  char *last = (char *) "x";

  CHECK (cv_kms_grant_volume (
             json_array_get (json_object_get (page1, "Grants"), 2))
             == NULL,
         "a grant without constraints names no volume");
  CHECK (cv_kms_grants_page (page1, UUID, mine, &next) == 0 && next
             && strcmp (next, "m2") == 0,
         "page 1 says where page 2 starts");
  CHECK (cv_kms_grants_page (page2, UUID, mine, &last) == 0 && last == NULL,
         "page 2 is the last");
  CHECK (json_array_size (mine) == 3, "the volume's grants: %zu",
         json_array_size (mine));
  const char *ids[] = { "g1", "g4", "g5" };
  for (size_t i = 0; i < 3; i++)
    CHECK (strcmp (json_string_value (
                       json_object_get (json_array_get (mine, i), "GrantId")),
                   ids[i])
               == 0,
           "grant %zu is %s", i, ids[i]);
  free (next);
  next = NULL;
  CHECK (cv_kms_grants_page (page1, NULL, all, &next) == 0
             && json_array_size (all) == 4,
         "--all: every grant on the key");

  static const char *const broken[] = {
    "{}",
    "{\"Grants\": {}}",
    "{\"Grants\": [], \"Truncated\": true}",
    "{\"Grants\": [], \"Truncated\": \"no\"}",
    "{\"Grants\": [{\"Name\": \"no id\"}]}",
    "{\"Grants\": [7]}",
  };
  for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
    json_auto_t *b = answer (broken[i]), *out = json_array ();
    char *n = NULL;
    harness_log_clear ();
    CHECK (cv_kms_grants_page (b, UUID, out, &n) == -EPROTO && !n,
           "not a ListGrants answer: %s", broken[i]);
    CHECK (strstr (harness_logged (), "is the endpoint AWS KMS?"), "said: %s",
           harness_logged ());
  }
}

static void
check_tokens (void)
{
  static const char *const take[]
      = { "Decrypt",   "Encrypt",     "GenerateDataKey",
          "ReEncrypt", "DescribeKey", "CreateGrant" };
  static const char *const others[]
      = { "ListGrants", "RevokeGrant", "RetireGrant" };
  struct cv_creds c = { .kms_grant_token = "AQpAM2RhZTk" };

  for (size_t i = 0; i < sizeof take / sizeof take[0]; i++) {
    json_auto_t *req = json_pack ("{s:s}", "KeyId", "k");
    CHECK (cv_kms_add_grant_token (take[i], &c, req) == 0, "%s", take[i]);
    json_t *t = json_object_get (req, "GrantTokens");
    CHECK (json_array_size (t) == 1
               && strcmp (json_string_value (json_array_get (t, 0)),
                          c.kms_grant_token)
                      == 0,
           "%s carries the grant token", take[i]);
  }
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    json_auto_t *req = json_pack ("{s:s}", "KeyId", "k");
    CHECK (cv_kms_add_grant_token (others[i], &c, req) == 0
               && !json_object_get (req, "GrantTokens"),
           "%s takes no grant tokens", others[i]);
  }
  struct cv_creds none = { 0 };
  json_auto_t *req = json_pack ("{s:s}", "KeyId", "k");
  CHECK (cv_kms_add_grant_token ("Decrypt", &none, req) == 0
             && cv_kms_add_grant_token ("Decrypt", NULL, req) == 0
             && !json_object_get (req, "GrantTokens"),
         "no token given: none sent");

  /* A token copied with the credentials (the key watch's copy). */
  struct cv_creds *copy = NULL;
  CHECK (cv_creds_copy (&c, &copy) == 0 && copy->kms_grant_token
             && copy->kms_grant_token != c.kms_grant_token
             && strcmp (copy->kms_grant_token, c.kms_grant_token) == 0,
         "the key watch's copy of the credentials keeps the grant token");
  cv_creds_free (copy);

  char big[CV_KMS_GRANT_TOKEN_MAX + 2];
  memset (big, 'A', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  harness_log_clear ();
  CHECK (cv_kms_grant_token_check ("kms-grant-token=", "AQpAM2RhZTk=") == 0,
         "a token");
  CHECK (cv_kms_grant_token_check ("kms-grant-token=", "") == -EINVAL, "empty");
  CHECK (cv_kms_grant_token_check ("kms-grant-token=", "two words") == -EINVAL,
         "a space");
  CHECK (cv_kms_grant_token_check ("kms-grant-token=", big) == -EINVAL,
         "too long");
  CHECK (!strstr (harness_logged (), "two words"),
         "a token is never in a message: %s", harness_logged ());

  CHECK (cv_kms_grant_id_check ("0a1b2c3d4e5f") == 0, "a grant id");
  CHECK (cv_kms_grant_id_check ("0a1b;rm") == -EINVAL, "not a grant id");
  CHECK (cv_kms_grant_id_check ("") == -EINVAL, "an empty grant id");
}

int
main (void)
{
  harness_init ();
  check_principals ();
  check_request ();
  check_pages ();
  check_tokens ();
  return harness_done ("test-keys-kms-grants");
}

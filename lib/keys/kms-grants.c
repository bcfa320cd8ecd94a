/* KMS grants on a volume's key: the requests of CreateGrant, ListGrants,
 * RevokeGrant and RetireGrant, and the reading of their answers. The calls
 * go through kms.c (cv_kms_target_open, cv_kms_op), which words their
 * failures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "format/header.h"
#include "keys/keys.h"
#include "keys/kms-grants.h"
#include "keys/kms.h"

#define CTX_KEY "cryptvol:volume"
#define PAGE_LIMIT 100 /* ListGrants Limit: AWS's maximum */
#define PRINCIPAL_FORMS                                                        \
  "arn:aws:iam::ACCOUNT:role/NAME, arn:aws:iam::ACCOUNT:user/NAME, "           \
  "arn:aws:iam::ACCOUNT:root or "                                              \
  "arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION"

/* True if the n bytes at s are all in set. */
static bool
all_in (const char *s, size_t n, const char *set)
{
  return strspn (s, set) >= n;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define ALNUM LOWER "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define NAME_CHARS ALNUM "+=,.@_-"

/* The kind of principal res names ("user/", "role/", "assumed-role/"),
 * or NULL: which kinds go with the service iam or sts. */
static const char *
principal_kind (bool sts, const char *res)
{
  static const char *const iam[] = { "user/", "role/" };

  if (sts)
    return strncmp (res, "assumed-role/", 13) == 0 ? "assumed-role/" : NULL;
  for (size_t i = 0; i < 2; i++)
    if (strncmp (res, iam[i], strlen (iam[i])) == 0)
      return iam[i];
  return NULL;
}

int
cv_kms_principal_check (const char *what, const char *arn)
{
  const char *p = arn + 4, *kind;

  /* arn:PARTITION:(iam|sts)::ACCOUNT:RESOURCE */
  if (strlen (arn) > 2048 || strncmp (arn, "arn:", 4) != 0)
    goto bad;
  size_t plen = strcspn (p, ":");
  if (plen == 0 || !all_in (p, plen, LOWER "-"))
    goto bad;
  p += plen;
  bool sts = strncmp (p, ":sts::", 6) == 0;
  if (!sts && strncmp (p, ":iam::", 6) != 0)
    goto bad;
  p += 6;
  if (strspn (p, "0123456789") != 12 || p[12] != ':')
    goto bad;
  p += 13;
  if (!sts && strcmp (p, "root") == 0)
    return 0;
  if (!(kind = principal_kind (sts, p)))
    goto bad;
  /* An IAM path and name (a role's name, then a session name). */
  const char *name = p + strlen (kind);
  size_t n = strlen (name);
  if (n == 0 || name[0] == '/' || name[n - 1] == '/'
      || !all_in (name, n, NAME_CHARS "/") || (sts && !strchr (name, '/')))
    goto bad;
  return 0;
bad:
  cv_err ("%s: \"%.200s\" is not an AWS principal ARN; give %s", what, arn,
          PRINCIPAL_FORMS);
  return -EINVAL;
}

int
cv_kms_grant_token_check (const char *what, const char *token)
{
  size_t n = strlen (token), i;

  for (i = 0; i < n; i++)
    if (token[i] < 0x21 || token[i] > 0x7e)
      break;
  if (n == 0 || n > CV_KMS_GRANT_TOKEN_MAX || i < n) {
    cv_err ("%s: not a KMS grant token (1 to %d printable characters, as "
            "cryptvol-keymgr grant prints it)",
            what, CV_KMS_GRANT_TOKEN_MAX);
    return -EINVAL;
  }
  return 0;
}

int
cv_kms_grant_id_check (const char *id)
{
  size_t n = strlen (id);

  if (n == 0 || n > 128 || !all_in (id, n, ALNUM)) {
    cv_err ("\"%.200s\" is not a KMS grant id (letters and digits, as "
            "cryptvol-keymgr grants lists them)",
            id);
    return -EINVAL;
  }
  return 0;
}

/* Check that uuid is a volume uuid (36 characters, hex and dashes). */
static int
uuid_check (const char *uuid)
{
  if (strlen (uuid) != CV_UUID_LEN
      || !all_in (uuid, CV_UUID_LEN, "0123456789abcdefABCDEF-")) {
    cv_err ("kms grant: \"%.80s\" is not a volume uuid", uuid);
    return -EINVAL;
  }
  return 0;
}

int
cv_kms_grant_request (const char *key_id, const char *uuid,
                      const struct cv_kms_grant_spec *s, json_t **req)
{
  char name[sizeof "cryptvol-" + CV_UUID_LEN];
  int r;

  if ((r = uuid_check (uuid)) < 0
      || (r = cv_kms_principal_check ("--grantee", s->grantee)) < 0
      || (s->retiring
          && (r = cv_kms_principal_check ("--retiring-principal", s->retiring))
                 < 0))
    return r;
  snprintf (name, sizeof name, "cryptvol-%s", uuid);
  json_auto_t *j = json_pack (
      "{s:s, s:s, s:[s], s:{s:{s:s}}, s:s}", "KeyId", key_id,
      "GranteePrincipal", s->grantee, "Operations", "Decrypt", "Constraints",
      "EncryptionContextSubset", CTX_KEY, uuid, "Name", name);
  if (!j)
    return -ENOMEM;
  if (s->reencrypt
      && json_array_append_new (json_object_get (j, "Operations"),
                                json_string ("ReEncryptFrom"))
             < 0)
    return -ENOMEM;
  if (s->retiring
      && json_object_set_new (j, "RetiringPrincipal", json_string (s->retiring))
             < 0)
    return -ENOMEM;
  *req = STEAL (j);
  return 0;
}

const char *
cv_kms_grant_volume (const json_t *grant)
{
  const json_t *con = json_object_get (grant, "Constraints");
  const char *v = json_string_value (json_object_get (
      json_object_get (con, "EncryptionContextEquals"), CTX_KEY));

  return v ? v
           : json_string_value (json_object_get (
               json_object_get (con, "EncryptionContextSubset"), CTX_KEY));
}

int
cv_kms_grants_page (const json_t *resp, const char *uuid, json_t *out,
                    char **next)
{
  const json_t *grants = json_object_get (resp, "Grants"), *g;
  const json_t *trunc = json_object_get (resp, "Truncated");
  const char *marker = json_string_value (json_object_get (resp, "NextMarker"));
  size_t i;

  *next = NULL;
  if (!json_is_array (grants) || (trunc && !json_is_boolean (trunc))
      || (json_is_true (trunc) && (!marker || !*marker))) {
    cv_err ("kms ListGrants: the answer has no Grants list, or says it is "
            "truncated without a NextMarker; is the endpoint AWS KMS?");
    return -EPROTO;
  }
  json_array_foreach (grants, i, g)
  {
    if (!json_is_object (g)
        || !json_string_value (json_object_get (g, "GrantId"))) {
      cv_err ("kms ListGrants: grant %zu of the answer has no GrantId; is "
              "the endpoint AWS KMS?",
              i);
      return -EPROTO;
    }
    const char *v = cv_kms_grant_volume (g);
    if (uuid && (!v || strcmp (v, uuid) != 0))
      continue;
    if (json_array_append (out, (json_t *) g) < 0)
      return -ENOMEM;
  }
  if (json_is_true (trunc) && !(*next = strdup (marker)))
    return -ENOMEM;
  return 0;
}

int
cv_kms_grant_create (const char *key_arn, const char *label, const char *uuid,
                     const struct cv_creds *c,
                     const struct cv_kms_grant_spec *s, char **grant_id,
                     char **token)
{
  json_auto_t *req = NULL, *resp = NULL;
  struct cv_kms_target t;
  int r;

  if ((r = cv_kms_target_open (key_arn, c, &t)) < 0)
    return r;
  if ((r = cv_kms_grant_request (t.key_id, uuid, s, &req)) == 0)
    r = cv_kms_op ("CreateGrant", label, t.key_id, &t, c, req, &resp);
  if (r == 0) {
    const char *id = cv_kms_answer_string (resp, "GrantId", "CreateGrant", &r);
    const char *tok
        = cv_kms_answer_string (resp, "GrantToken", "CreateGrant", &r);
    if (r == 0 && (!(*grant_id = strdup (id)) || !(*token = strdup (tok)))) {
      free (*grant_id);
      r = -ENOMEM;
    }
  }
  cv_kms_target_free (&t);
  return r;
}

int
cv_kms_grants_list (const char *key_arn, const char *label, const char *uuid,
                    const struct cv_creds *c, json_t **out)
{
  json_auto_t *all = json_array ();
  CLEANUP_FREE char *marker = NULL;
  struct cv_kms_target t;
  int r;

  if (!all)
    return -ENOMEM;
  if ((r = cv_kms_target_open (key_arn, c, &t)) < 0)
    return r;
  while (r == 0) {
    json_auto_t *req = NULL, *resp = NULL;
    char *next = NULL;
    req = json_pack ("{s:s, s:i}", "KeyId", t.key_id, "Limit", PAGE_LIMIT);
    if (req && marker
        && json_object_set_new (req, "Marker", json_string (marker)) < 0)
      r = -ENOMEM;
    if (r == 0)
      r = req ? cv_kms_op ("ListGrants", label, t.key_id, &t, c, req, &resp)
              : -ENOMEM;
    if (r == 0)
      r = cv_kms_grants_page (resp, uuid, all, &next);
    if (r == 0 && next && marker && strcmp (next, marker) == 0) {
      cv_err ("kms ListGrants for %s: the answer for marker %.80s gives the "
              "same marker for the next page; is the endpoint AWS KMS?",
              label, marker);
      r = -EPROTO;
    }
    free (marker);
    marker = next;
    if (!marker)
      break;
  }
  cv_kms_target_free (&t);
  if (r == 0)
    *out = STEAL (all);
  return r;
}

int
cv_kms_grant_revoke (const char *key_arn, const char *label,
                     const struct cv_creds *c, const char *grant_id)
{
  json_auto_t *req = NULL, *resp = NULL;
  struct cv_kms_target t;
  int r;

  if ((r = cv_kms_grant_id_check (grant_id)) < 0
      || (r = cv_kms_target_open (key_arn, c, &t)) < 0)
    return r;
  req = json_pack ("{s:s, s:s}", "KeyId", t.key_id, "GrantId", grant_id);
  r = req ? cv_kms_op ("RevokeGrant", label, t.key_id, &t, c, req, &resp)
          : -ENOMEM;
  cv_kms_target_free (&t);
  return r;
}

int
cv_kms_grant_retire (const char *key_arn, const char *label,
                     const struct cv_creds *c, const char *grant_id,
                     const char *token)
{
  json_auto_t *req = NULL, *resp = NULL;
  struct cv_kms_target t;
  int r;

  if ((token && (r = cv_kms_grant_token_check ("--grant-token", token)) < 0)
      || (!token && (r = cv_kms_grant_id_check (grant_id)) < 0)
      || (r = cv_kms_target_open (key_arn, c, &t)) < 0)
    return r;
  req = token
            ? json_pack ("{s:s}", "GrantToken", token)
            : json_pack ("{s:s, s:s}", "KeyId", t.key_id, "GrantId", grant_id);
  r = req ? cv_kms_op ("RetireGrant", label, t.key_id, &t, c, req, &resp)
          : -ENOMEM;
  cv_kms_target_free (&t);
  return r;
}

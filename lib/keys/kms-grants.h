/* KMS grants on the key of a volume's kms wrap (kms-grants.c), as EBS uses
 * them: one grantee principal (a storage host's role) may Decrypt (and
 * ReEncryptFrom) with that key only under the volume's encryption context
 * (constraint EncryptionContextSubset {"cryptvol:volume": UUID}: the
 * context also holds the wrap's own pair, "cryptvol:wrap"); the grant
 * is named "cryptvol-UUID". A revoked or retired grant cuts off that one
 * volume for that principal without touching the key. doc/kms.md, section
 * Grants, is the operator's side; cryptvol-keymgr grant, grants,
 * revoke-grant and retire-grant drive these.
 *
 * Every function returns 0 or -errno and logs what failed, on which key,
 * and what to do (the KMS errors as kms.c words them). */
#ifndef CV_KMS_GRANTS_H
#define CV_KMS_GRANTS_H

#include <stdbool.h>

#include <jansson.h>

struct cv_creds;

#define CV_KMS_GRANT_TOKEN_MAX 8192 /* AWS: GrantTokenType, 1..8192 */

/* What a new grant allows. */
struct cv_kms_grant_spec {
  const char *grantee;  /* the grantee principal's ARN */
  const char *retiring; /* a retiring principal's ARN, or NULL */
  bool reencrypt;       /* ReEncryptFrom besides Decrypt */
};

/* Check that arn is an AWS principal ARN a grant can name: an IAM user,
 * role or account root (arn:PARTITION:iam::ACCOUNT:user/..., role/...,
 * root) or an assumed-role session (arn:PARTITION:sts::ACCOUNT:
 * assumed-role/ROLE/SESSION). what names the option for the message.
 * Returns 0 or -EINVAL (logged with the forms accepted). */
int cv_kms_principal_check (const char *what, const char *arn);

/* Check a grant token as read (1..CV_KMS_GRANT_TOKEN_MAX printable ASCII
 * characters). what names where it came from. 0 or -EINVAL (logged, without
 * the token). */
int cv_kms_grant_token_check (const char *what, const char *token);

/* Check a grant id as given on a command line (1..128 letters and digits).
 * 0 or -EINVAL (logged). */
int cv_kms_grant_id_check (const char *id);

/* The CreateGrant request for key_id and the volume uuid: GranteePrincipal,
 * Operations ["Decrypt"(, "ReEncryptFrom")], Constraints
 * {"EncryptionContextSubset": {"cryptvol:volume": uuid}}, Name
 * "cryptvol-UUID", RetiringPrincipal when given. *req: caller decrefs.
 * Returns 0, -EINVAL (a principal or uuid that is not one; logged) or
 * -ENOMEM. */
int cv_kms_grant_request (const char *key_id, const char *uuid,
                          const struct cv_kms_grant_spec *s, json_t **req);

/* The volume uuid a grant object (as ListGrants gives it) is constrained
 * to (EncryptionContextEquals, else EncryptionContextSubset, member
 * "cryptvol:volume"), or NULL. Points into grant. */
const char *cv_kms_grant_volume (const json_t *grant);

/* Append to out (an array) the grants of one ListGrants answer whose
 * constraints name uuid, or all of them when uuid is NULL; *next gets the
 * next page's marker (malloc'd) or NULL after the last page. Returns 0,
 * -EPROTO (not a ListGrants answer; logged) or -ENOMEM. */
int cv_kms_grants_page (const json_t *resp, const char *uuid, json_t *out,
                        char **next);

/* CreateGrant on key_arn for the volume uuid (label: what the call is for,
 * in messages). *grant_id and *token are malloc'd. */
int cv_kms_grant_create (const char *key_arn, const char *label,
                         const char *uuid, const struct cv_creds *c,
                         const struct cv_kms_grant_spec *s, char **grant_id,
                         char **token);

/* ListGrants on key_arn, every page: the grants that name the volume uuid,
 * or all when uuid is NULL, as a new array of KMS's grant objects (*out,
 * caller decrefs). */
int cv_kms_grants_list (const char *key_arn, const char *label,
                        const char *uuid, const struct cv_creds *c,
                        json_t **out);

/* RevokeGrant grant_id on key_arn. */
int cv_kms_grant_revoke (const char *key_arn, const char *label,
                         const struct cv_creds *c, const char *grant_id);

/* RetireGrant: by token (grant_id NULL; key_arn says only the region and
 * endpoint of the call), or by key_arn and grant_id (token NULL). */
int cv_kms_grant_retire (const char *key_arn, const char *label,
                         const struct cv_creds *c, const char *grant_id,
                         const char *token);

#endif

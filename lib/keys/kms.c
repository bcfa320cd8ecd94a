/* Provider "kms": the DEK wrapped by a customer's AWS KMS key (bring your
 * own key), bound to the volume and to the wrap's own metadata by the
 * encryption context {"cryptvol:volume": "<uuid>", "cryptvol:wrap":
 * "v1:<digest of the wrap's id, type, ref, created, region>"}. Operations:
 * Encrypt (wrap an existing DEK), GenerateDataKey (a new DEK and its wrap in
 * one call), Decrypt (always naming the key), ReEncrypt (rewrap without the
 * DEK leaving KMS), DescribeKey (key state). doc/kms.md is the operator's
 * side.
 *
 * Wrap members: "ref" (as given), "key_arn" (as KMS returned it), "region",
 * "ctx" (the encryption context, for operators and the AWS CLI), "blob"
 * (base64 CiphertextBlob). Unlock always rebuilds the context from the
 * volume's own UUID and the wrap's own metadata, never from the stored
 * "ctx", so a wrap copied from another volume, or whose metadata was edited,
 * is refused by KMS (InvalidCiphertextException). Wraps made before the
 * "cryptvol:wrap" pair existed have the one-pair context (see wrap_ctx). */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/encode.h"
#include "common/log.h"
#include "crypto/secmem.h"
#include "crypto/xts.h"
#include "format/header.h"
#include "keys/aws.h"
#include "keys/keys.h"
#include "keys/kms.h"
#include "keys/providers.h"

#define CTX_KEY "cryptvol:volume"
#define CTX_WRAP "cryptvol:wrap"
#define WRAP_DIGEST_TAG "v1:"
#define WRAP_DIGEST_LEN (sizeof WRAP_DIGEST_TAG - 1 + 32) /* without NUL */
#define WRAP_ALTERED                                                           \
  "the wrap's metadata (id, type, ref, created, region) does not match what "  \
  "it was wrapped with, or its blob was altered, or it was copied from "       \
  "another volume; restore the header from a backup or unlock with another "   \
  "wrap"
#define REF_FORMS                                                              \
  "a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), an alias ARN, alias/NAME "   \
  "or a key id (the last two with kms-region= or AWS_REGION)"

/* --- key references ----------------------------------------------------- */

/* True if the n bytes at s are all in set. */
static bool
all_in (const char *s, size_t n, const char *set)
{
  return strspn (s, set) >= n;
}

#define ID_CHARS                                                               \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
#define ALIAS_CHARS ID_CHARS ":/_"

/* Check a key id or alias/NAME and store it in out->id. */
static int
set_id (const char *ref, const char *id, struct cv_kms_ref *out)
{
  size_t n = strlen (id);

  if (n == 0 || n >= sizeof out->id)
    goto bad;
  if (strncmp (id, "alias/", 6) == 0) {
    if (n == 6 || !all_in (id, n, ALIAS_CHARS))
      goto bad;
    out->alias = true;
  } else {
    if (!all_in (id, n, ID_CHARS))
      goto bad;
    out->mrk = strncmp (id, "mrk-", 4) == 0;
  }
  memcpy (out->id, id, n + 1);
  return 0;
bad:
  cv_err ("kms: \"%.200s\" is not a KMS key reference: give %s", ref,
          REF_FORMS);
  return -EINVAL;
}

int
cv_kms_ref_parse (const char *ref, struct cv_kms_ref *out)
{
  *out = (struct cv_kms_ref){ 0 };
  if (strncmp (ref, "arn:", 4) != 0)
    return set_id (ref, ref, out);

  /* arn:PARTITION:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME */
  const char *f[6];
  size_t len[6];
  const char *p = ref;
  for (int i = 0; i < 6; i++) {
    const char *colon = i < 5 ? strchr (p, ':') : p + strlen (p);
    if (!colon)
      goto bad;
    f[i] = p;
    len[i] = (size_t) (colon - p);
    p = colon + 1;
  }
  if (len[1] == 0 || len[1] >= sizeof out->partition
      || !all_in (f[1], len[1], "abcdefghijklmnopqrstuvwxyz-") || len[2] != 3
      || memcmp (f[2], "kms", 3) != 0 || len[3] == 0
      || len[3] >= sizeof out->region
      || !all_in (f[3], len[3], "abcdefghijklmnopqrstuvwxyz0123456789-")
      || len[4] != 12 || !all_in (f[4], 12, "0123456789"))
    goto bad;
  out->arn = true;
  memcpy (out->partition, f[1], len[1]);
  memcpy (out->region, f[3], len[3]);
  memcpy (out->account, f[4], len[4]);
  if (strncmp (f[5], "key/", 4) == 0 && strncmp (f[5] + 4, "alias/", 6) != 0)
    return set_id (ref, f[5] + 4, out);
  if (strncmp (f[5], "alias/", 6) == 0)
    return set_id (ref, f[5], out);
bad:
  cv_err ("kms: \"%.200s\" is not a KMS key ARN or alias ARN (want "
          "arn:aws:kms:REGION:ACCOUNT:key/ID or ...:alias/NAME)",
          ref);
  return -EINVAL;
}

int
cv_kms_ref_region (const struct cv_kms_ref *r, const struct cv_creds *c,
                   const char *ref, char *region, size_t len)
{
  const char *want = c ? c->kms_region : NULL;
  const char *from = "kms-region";
  char fallback[64];

  if (r->arn && (!r->mrk || !want)) {
    if (want && strcmp (want, r->region) != 0)
      cv_debug ("kms: %s is a single-Region key in %s: kms-region=%s does "
                "not apply to it",
                ref, r->region, want);
    want = r->region;
    from = "the ARN";
  }
  if (!want) {
    const struct cv_aws_ctx *ctx;
    int rc = cv_aws_process_ctx (&ctx);
    if (rc < 0)
      return rc;
    rc = cv_aws_default_region (ctx, fallback, sizeof fallback, &from);
    if (rc == -ENOENT) {
      cv_err ("kms: no AWS region for key %.200s: give kms-region= (plugin) "
              "or --kms-region (keymgr), set AWS_REGION, give the profile a "
              "region, or use the key ARN",
              ref);
      return -EINVAL;
    }
    if (rc < 0)
      return rc;
    want = fallback;
  }
  if (strlen (want) >= len || strlen (want) >= 32
      || !all_in (want, strlen (want),
                  "abcdefghijklmnopqrstuvwxyz0123456789-")) {
    cv_err ("kms: region \"%.40s\" (from %s) is not an AWS region name", want,
            from);
    return -EINVAL;
  }
  strcpy (region, want);
  return 0;
}

int
cv_kms_ref_key_id (const char *ref, const struct cv_kms_ref *r,
                   const char *region, char **out)
{
  if (r->arn && r->mrk && !r->alias && strcmp (r->region, region) != 0) {
    if (asprintf (out, "arn:%s:kms:%s:%s:key/%s", r->partition, region,
                  r->account, r->id)
        < 0)
      return -ENOMEM;
    return 0;
  }
  return (*out = strdup (ref)) ? 0 : -ENOMEM;
}

/* --- where a call goes --------------------------------------------------- */

void
cv_kms_target_free (struct cv_kms_target *t)
{
  free (t->key_id);
  free (t->url);
  free (t->host);
  cv_aws_creds_free (&t->cr);
}

int
cv_kms_target_open (const char *ref, const struct cv_creds *c,
                    struct cv_kms_target *t)
{
  const struct cv_aws_ctx *ctx;
  const char *from;
  struct cv_kms_ref r;
  int rc;

  *t = (struct cv_kms_target){ 0 };
  if ((rc = cv_aws_process_ctx (&ctx)) < 0
      || (rc = cv_kms_ref_parse (ref, &r)) < 0
      || (rc = cv_kms_ref_region (&r, c, ref, t->region, sizeof t->region)) < 0
      || (rc = cv_kms_ref_key_id (ref, &r, t->region, &t->key_id)) < 0
      || (rc = cv_aws_endpoint (ctx, "KMS", "kms", c ? c->kms_endpoint : NULL,
                                t->region, &t->url, &t->host, &from))
             < 0
      || (rc = cv_aws_retry_settings (ctx, &t->retry)) < 0
      || (rc = cv_aws_creds_load (&t->cr)) < 0) {
    cv_kms_target_free (t);
    return rc;
  }
  return 0;
}

/* --- errors ------------------------------------------------------------- */

/* What a KMS error type means for a wrap and what the operator can do. */
static const struct kms_error {
  const char *type;
  int err;
  bool credentials; /* about the caller, not the key */
  const char *what; /* "key ARN <what>" */
  const char *todo;
} kms_errors[] = {
  { "DisabledException", -EKEYREVOKED, false, "is disabled",
    "enable it (aws kms enable-key), or unlock with another wrap" },
  { "KMSInvalidStateException", -EKEYREVOKED, false,
    "is pending deletion or otherwise not usable",
    "if it is pending deletion, cancel that (aws kms cancel-key-deletion) "
    "and enable it; or unlock with another wrap" },
  { "NotFoundException", -ENOENT, false, "was not found",
    "check the key and its region; a deleted key cannot be used again: "
    "unlock with another wrap; for a multi-Region key give kms-region= (and "
    "kms-endpoint=) of a region that holds a replica" },
  { "AccessDeniedException", -EACCES, false,
    "may not be used with these credentials", NULL /* denied_todo */ },
  { "InvalidCiphertextException", -EBADMSG, false,
    "refused the wrap for this volume's encryption context",
    "the wrap was altered or copied from another volume; restore the header "
    "from a backup or unlock with another wrap" },
  { "IncorrectKeyException", -EKEYREJECTED, false,
    "is not the key this wrap was made with",
    "the wrap's key_arn does not match its blob (the header was edited)" },
  { "InvalidKeyUsageException", -EINVAL, false,
    "cannot encrypt and decrypt (not a symmetric ENCRYPT_DECRYPT key)",
    "use a symmetric encryption key" },
  { "KeyUnavailableException", -EAGAIN, false, "is unavailable",
    "try again later, or unlock with another wrap" },
  { "InvalidSignatureException", -EKEYEXPIRED, true, NULL,
    "check the secret access key, the system clock, and that kms-region= "
    "matches the region of kms-endpoint=" },
  { "UnrecognizedClientException", -EKEYEXPIRED, true, NULL,
    "check the access key id and the session token" },
  { "IncompleteSignatureException", -EKEYEXPIRED, true, NULL,
    "check the credentials" },
  { "MissingAuthenticationTokenException", -EKEYEXPIRED, true, NULL,
    "check the credentials" },
  { "ExpiredTokenException", -EKEYEXPIRED, true, NULL,
    "refresh the temporary credentials" },
  { "InvalidGrantIdException", -ENOENT, false, "has no grant with that id",
    "list the volume's grants with cryptvol-keymgr grants VOLUME" },
  { "InvalidGrantTokenException", -EINVAL, false, "refused the grant token",
    "give the token cryptvol-keymgr grant printed for this key "
    "(kms-grant-token=, --kms-grant-token), or none" },
  { "InvalidArnException", -EINVAL, false, "refused an ARN in the request",
    "check the grantee and retiring principal ARNs" },
  { "LimitExceededException", -ENOSPC, false, "has too many grants",
    "retire or revoke the grants no longer used (cryptvol-keymgr grants "
    "VOLUME --all)" },
};

/* What to do about AccessDeniedException from op: a policy statement to
 * add, or for the operations a grant allows, a grant to make. buf holds it. */
static const char *
denied_todo (const char *op, char *buf, size_t len)
{
  const char *action = strcmp (op, "ReEncrypt") == 0
                           ? "kms:ReEncryptFrom (old key) and "
                             "kms:ReEncryptTo (new key)"
                           : NULL;

  if (strstr (op, "Grant"))
    snprintf (buf, len,
              "the key policy does not allow kms:%s for this caller: add "
              "the statement of the Grants section of doc/kms.md",
              op);
  else
    snprintf (buf, len,
              "the key policy does not allow kms:%s for this caller, or the "
              "grant that allowed it was revoked or retired (KMS does not "
              "say which), or a new grant has not propagated yet: allow it "
              "in the key policy with the kms:EncryptionContext:" CTX_KEY
              " condition (a kms:EncryptionContextKeys condition must also "
              "list " CTX_WRAP "; doc/kms.md), make a new grant "
              "(cryptvol-keymgr grant; grants made before cryptvol:wrap "
              "existed are EncryptionContextEquals and do not open newer "
              "wraps), or give a new grant's token (kms-grant-token=)",
              action ? action : op);
  return buf;
}

/* The provider's view of a failed call: log it once and return -errno.
 * label says what the call was for ("wrap 0 (kms alias/x)"), key is the key
 * it named; bad_ctx_todo, when not NULL, is what to do about
 * InvalidCiphertextException instead of the table's advice. */
static int
call_failed (const char *op, const char *label, const char *key,
             const struct cv_kms_target *t, const struct cv_kms_result *res,
             const char *bad_ctx_todo)
{
  char extra[64] = "";

  if (res->attempts > 1)
    snprintf (extra, sizeof extra, ", %d attempts%s", res->attempts,
              res->quota_exhausted ? ", retry quota exhausted" : "");
  if (res->status == 0) { /* no answer */
    bool tls = res->curl_code == CURLE_PEER_FAILED_VERIFICATION
               || res->curl_code == CURLE_SSL_CACERT_BADFILE;
    if (tls) {
      cv_err ("kms %s for %s: the TLS certificate of %s is not trusted (%s); "
              "give its CA with ca-bundle= (plugin), --ca-bundle (keymgr) or "
              "AWS_CA_BUNDLE (verification is never turned off)",
              op, label, t->url, res->message);
      return -ECONNREFUSED;
    }
    cv_err ("kms %s for %s: cannot reach AWS KMS at %s (region %s): %s%s; "
            "check the network, kms-endpoint= and kms-region=, or unlock "
            "with another wrap",
            op, label, t->url, t->region, res->message, extra);
    return res->curl_code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                                                      : -ECONNREFUSED;
  }
  const char *rid = res->request_id[0] ? res->request_id : "none";
  const char *sep = res->message[0] ? ": " : "";
  char todo[1024];
  for (size_t i = 0; i < ARRAY_SIZE (kms_errors); i++) {
    const struct kms_error *k = &kms_errors[i];
    if (strcmp (k->type, res->type) != 0)
      continue;
    const char *what_to_do
        = k->todo ? k->todo : denied_todo (op, todo, sizeof todo);
    if (k->err == -EBADMSG && bad_ctx_todo)
      what_to_do = bad_ctx_todo;
    const char *what = k->what;
    /* RevokeGrant and RetireGrant say NotFound of the grant, not the key. */
    if (k->err == -ENOENT && strstr (op, "Grant") && strcmp (op, "ListGrants")
        && strcmp (op, "CreateGrant")) {
      what = "has no such grant (it was revoked or retired already)";
      what_to_do = "list the volume's grants with cryptvol-keymgr grants "
                   "VOLUME";
    }
    if (k->credentials)
      cv_err ("kms %s for %s: AWS did not accept the credentials from %s "
              "(%s%s%s; request id %s%s); %s",
              op, label, t->cr.source, res->type, sep, res->message, rid, extra,
              what_to_do);
    else
      cv_err ("kms %s for %s: key %s %s (%s%s%s; request id %s%s); %s", op,
              label, key, what, res->type, sep, res->message, rid, extra,
              what_to_do);
    return k->err;
  }
  if (res->status >= 500 || res->status == 429 || strstr (res->type, "Throttl")
      || strstr (res->type, "Internal") || strstr (res->type, "Timeout")) {
    cv_err ("kms %s for %s: AWS KMS failed for key %s (%s%s%s; HTTP %ld, "
            "request id %s%s); it is unavailable or throttling: try again "
            "later, or unlock with another wrap",
            op, label, key, res->type, sep, res->message, res->status, rid,
            extra);
    return -EAGAIN;
  }
  if (res->status >= 200 && res->status < 300) {
    cv_err ("kms %s for %s: unexpected answer from %s: %s", op, label, t->url,
            res->message);
    return -EPROTO;
  }
  cv_err ("kms %s for %s: key %s: %s%s%s (HTTP %ld, request id %s%s)", op,
          label, key, res->type, sep, res->message, res->status, rid, extra);
  return strcmp (res->type, "ValidationException") == 0 ? -EINVAL : -EIO;
}

int
cv_kms_add_grant_token (const char *op, const struct cv_creds *c, json_t *req)
{
  static const char *const takes[]
      = { "Decrypt",   "Encrypt",     "GenerateDataKey",
          "ReEncrypt", "DescribeKey", "CreateGrant" };

  if (!c || !c->kms_grant_token)
    return 0;
  for (size_t i = 0; i < ARRAY_SIZE (takes); i++)
    if (strcmp (op, takes[i]) == 0)
      return json_object_set_new (req, "GrantTokens",
                                  json_pack ("[s]", c->kms_grant_token))
                     < 0
                 ? -ENOMEM
                 : 0;
  return 0;
}

/* cv_kms_op, with bad_ctx_todo as in call_failed. */
static int
kms_op (const char *op, const char *label, const char *key,
        const struct cv_kms_target *t, const struct cv_creds *c, json_t *req,
        json_t **resp, const char *bad_ctx_todo)
{
  struct cv_kms_result res;
  char *body;
  int r;

  cv_kms_json_wipe_init ();
  if ((r = cv_kms_add_grant_token (op, c, req)) < 0)
    return r;
  body = json_dumps (req, JSON_COMPACT);
  if (!body)
    return -ENOMEM;
  struct cv_kms_call call = {
    .op = op,
    .url = t->url,
    .host = t->host,
    .region = t->region,
    .ca_bundle = c ? c->ca_bundle : NULL,
    .creds = &t->cr,
    .body = body,
    .body_len = strlen (body),
    .max_attempts = t->retry.max_attempts,
    .adaptive = t->retry.mode == CV_AWS_RETRY_ADAPTIVE,
  };
  r = cv_kms_call (&call, &res);
  cv_wipe (body, call.body_len);
  free (body);
  if (r == -EIO)
    return call_failed (op, label, key, t, &res, bad_ctx_todo);
  if (r < 0)
    return r;
  *resp = STEAL (res.body);
  return 0;
}

int
cv_kms_op (const char *op, const char *label, const char *key,
           const struct cv_kms_target *t, const struct cv_creds *c, json_t *req,
           json_t **resp)
{
  return kms_op (op, label, key, t, c, req, resp, NULL);
}

/* --- wrap members -------------------------------------------------------- */

/* The "cryptvol:volume" value of binding ("cryptvol:v1:volume:<uuid>"):
 * the uuid, or NULL (logged). */
static const char *
binding_uuid (const char *binding)
{
  size_t n = strlen (CV_BINDING_PREFIX);

  if (!binding || strncmp (binding, CV_BINDING_PREFIX, n) != 0
      || strlen (binding + n) != CV_UUID_LEN) {
    cv_err ("kms: binding \"%.80s\" is not a cryptvol volume binding",
            binding ? binding : "");
    return NULL;
  }
  return binding + n;
}

int
cv_kms_wrap_digest (const json_t *w, char out[CV_KMS_WRAP_DIGEST_SIZE])
{
  static const char *const covered[]
      = { "id", "type", "ref", "created", "region" };
  static_assert (CV_KMS_WRAP_DIGEST_SIZE == WRAP_DIGEST_LEN + 1, "digest size");
  json_auto_t *meta = json_object ();
  CLEANUP_FREE char *text = NULL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen;

  if (!meta)
    return -ENOMEM;
  for (size_t i = 0; i < ARRAY_SIZE (covered); i++) {
    json_t *v = json_object_get (w, covered[i]);
    if (json_object_set (meta, covered[i], v ? v : json_null ()) < 0)
      return -ENOMEM;
  }
  text = json_dumps (meta, JSON_COMPACT | JSON_SORT_KEYS);
  if (!text)
    return -ENOMEM;
  if (!EVP_Digest (text, strlen (text), md, &mdlen, EVP_sha256 (), NULL))
    return -ENOMEM;
  strcpy (out, WRAP_DIGEST_TAG);
  for (size_t i = 0; i < 16; i++)
    snprintf (out + strlen (WRAP_DIGEST_TAG) + 2 * i, 3, "%02x", md[i]);
  return 0;
}

bool
cv_kms_wrap_self_bound (const json_t *w)
{
  return json_object_get (json_object_get (w, "ctx"), CTX_WRAP) != NULL;
}

/* The encryption context of wrap w of the volume binding, into *ctx (caller
 * decrefs): {"cryptvol:volume": uuid}, and when self_bound also
 * {"cryptvol:wrap": cv_kms_wrap_digest (w)}, computed from w's members as
 * they are now and never copied from w's "ctx".
 *
 * Every wrap made now is self-bound. Which context an existing wrap is
 * opened with follows its "ctx" (cv_kms_wrap_self_bound), which is not
 * authenticated here, and need not be: KMS authenticates the context a
 * blob was made with, so sending the other one makes KMS refuse the blob.
 * Stripping "cryptvol:wrap" from a self-bound wrap's "ctx" (a downgrade, to
 * hide an edit of its metadata) sends the one-pair context and is refused;
 * adding it to an old wrap sends a second pair that wrap was not made with
 * and is refused. Only wraps made before the pair existed go without it;
 * their metadata is authenticated by the volume MAC alone. */
static int
wrap_ctx (const char *binding, const json_t *w, bool self_bound, json_t **ctx)
{
  const char *uuid = binding_uuid (binding);
  char digest[CV_KMS_WRAP_DIGEST_SIZE];
  int r;

  if (!uuid)
    return -EINVAL;
  if (!self_bound)
    *ctx = json_pack ("{s:s}", CTX_KEY, uuid);
  else if ((r = cv_kms_wrap_digest (w, digest)) < 0)
    return r;
  else
    *ctx = json_pack ("{s:s, s:s}", CTX_KEY, uuid, CTX_WRAP, digest);
  return *ctx ? 0 : -ENOMEM;
}

/* What to do when KMS refuses the existing wrap w's context: for a
 * self-bound wrap its metadata is among the suspects. */
static const char *
bad_ctx_todo (const json_t *w)
{
  return cv_kms_wrap_self_bound (w) ? WRAP_ALTERED : NULL;
}

/* The context to open the existing wrap w with (wrap_ctx). For a
 * self-bound wrap whose stored digest differs from the one its metadata
 * gives now, the metadata (or "ctx") was edited: -EBADMSG (logged) without
 * asking KMS, which would refuse it too (or would accept it only if "ctx"
 * alone was edited). op names the call for the message. */
static int
existing_ctx (const char *op, const char *label, const char *binding,
              const json_t *w, json_t **ctx)
{
  bool self_bound = cv_kms_wrap_self_bound (w);
  int r = wrap_ctx (binding, w, self_bound, ctx);

  if (r < 0 || !self_bound)
    return r;
  const char *stored = json_string_value (
      json_object_get (json_object_get (w, "ctx"), CTX_WRAP));
  const char *now = json_string_value (json_object_get (*ctx, CTX_WRAP));
  if (!stored || strcmp (stored, now) != 0) {
    cv_err ("kms %s for %s: the wrap's metadata (id, type, ref, created, "
            "region) does not match what it was wrapped with (its ctx "
            "member's " CTX_WRAP "): the header was altered; restore it from "
            "a backup or unlock with another wrap",
            op, label);
    json_decref (*ctx);
    *ctx = NULL;
    return -EBADMSG;
  }
  return 0;
}

const char *
cv_kms_answer_string (const json_t *resp, const char *key, const char *op,
                      int *r)
{
  const char *s = json_string_value (json_object_get (resp, key));

  if (!s || !*s) {
    cv_err ("kms %s: the answer has no %s; is the endpoint AWS KMS?", op, key);
    *r = -EPROTO;
  }
  return s;
}

/* The context of the new wrap w (id, type, ref and created filled in by
 * cv_hdr_wrap_new) made in t's region, which is recorded in w first: every
 * member the digest covers is known before the call. The key ARN is not
 * covered: it comes from KMS's answer, and KMS checks the key itself. */
static int
new_wrap_ctx (const char *binding, const struct cv_kms_target *t, json_t *w,
              json_t **ctx)
{
  if (json_object_set_new (w, "region", json_string (t->region)) < 0)
    return -ENOMEM;
  return wrap_ctx (binding, w, true, ctx);
}

/* Record the answer of Encrypt, GenerateDataKey or ReEncrypt in w, and the
 * context ctx it was made with. */
static int
store_wrap (json_t *w, const json_t *resp, const char *op, const json_t *ctx)
{
  int r = 0;
  const char *blob = cv_kms_answer_string (resp, "CiphertextBlob", op, &r);
  const char *arn = cv_kms_answer_string (resp, "KeyId", op, &r);

  if (r < 0)
    return r;
  if (json_object_set_new (w, "key_arn", json_string (arn)) < 0
      || json_object_set_new (w, "ctx", json_deep_copy (ctx)) < 0
      || json_object_set_new (w, "blob", json_string (blob)) < 0)
    return -ENOMEM;
  return 0;
}

/* The plaintext of a KMS answer decoded into a new cv_key of want bytes. */
static int
answer_key (const json_t *resp, const char *op, size_t want,
            struct cv_key **out)
{
  CLEANUP_KEY struct cv_key *tmp = NULL;
  int r = 0;
  const char *b64 = cv_kms_answer_string (resp, "Plaintext", op, &r);
  size_t n = b64 ? strlen (b64) : 0;

  if (r < 0)
    return r;
  if (n % 4 || n > 8192) {
    cv_err ("kms %s: the answer's Plaintext is not base64", op);
    return -EPROTO;
  }
  if ((r = cv_key_new (n / 4 * 3 + 1, &tmp)) < 0) {
    cv_err ("kms %s: no memory for the key from KMS: %s", op,
            strerrordesc_np (-r));
    return r;
  }
  int len = EVP_DecodeBlock (tmp->b, (const unsigned char *) b64, (int) n);
  if (len >= 0 && n && b64[n - 1] == '=')
    len--;
  if (len >= 0 && n > 1 && b64[n - 2] == '=')
    len--;
  if (len < 0 || (size_t) len != want) {
    cv_err ("kms %s: the key from KMS is %d bytes, expected %zu", op, len,
            want);
    return -EPROTO;
  }
  return cv_key_from (tmp->b, want, out);
}

/* --- operations ---------------------------------------------------------- */

/* A label for messages about a new wrap of ref. */
static const char *
new_label (const char *ref, char *buf, size_t len)
{
  snprintf (buf, len, "a new wrap (kms %.200s)", ref ? ref : "?");
  return buf;
}

static int
kms_wrap (const char *ref, const struct cv_creds *c, const struct cv_key *dek,
          const char *binding, json_t *w)
{
  char label[CV_WRAP_LABEL_MAX];
  json_auto_t *ctx = NULL, *req = NULL, *resp = NULL;
  CLEANUP_FREE char *b64 = NULL;
  struct cv_kms_target t;
  int r;

  if (!ref) {
    cv_err ("a kms wrap needs a key reference: %s", REF_FORMS);
    return -EINVAL;
  }
  if ((r = cv_kms_target_open (ref, c, &t)) < 0)
    return r;
  if ((r = new_wrap_ctx (binding, &t, w, &ctx)) == 0
      && (r = cv_b64_encode (dek->b, dek->len, &b64)) == 0) {
    req = json_pack ("{s:s, s:s, s:O}", "KeyId", t.key_id, "Plaintext", b64,
                     "EncryptionContext", ctx);
    cv_wipe (b64, strlen (b64));
    r = req ? cv_kms_op ("Encrypt", new_label (ref, label, sizeof label), ref,
                         &t, c, req, &resp)
            : -ENOMEM;
  }
  if (r == 0)
    r = store_wrap (w, resp, "Encrypt", ctx);
  cv_kms_target_free (&t);
  return r;
}

static int
kms_generate (const char *ref, const struct cv_creds *c, size_t len,
              const char *binding, json_t *w, struct cv_key **dek)
{
  char label[CV_WRAP_LABEL_MAX];
  json_auto_t *ctx = NULL, *req = NULL, *resp = NULL;
  CLEANUP_KEY struct cv_key *k = NULL;
  struct cv_kms_target t;
  int r;

  if (!ref) {
    cv_err ("a kms wrap needs a key reference: %s", REF_FORMS);
    return -EINVAL;
  }
  if ((r = cv_kms_target_open (ref, c, &t)) < 0)
    return r;
  if ((r = new_wrap_ctx (binding, &t, w, &ctx)) == 0) {
    req = json_pack ("{s:s, s:I, s:O}", "KeyId", t.key_id, "NumberOfBytes",
                     (json_int_t) len, "EncryptionContext", ctx);
    r = req ? cv_kms_op ("GenerateDataKey",
                         new_label (ref, label, sizeof label), ref, &t, c, req,
                         &resp)
            : -ENOMEM;
  }
  if (r == 0 && (r = answer_key (resp, "GenerateDataKey", len, &k)) == 0)
    r = store_wrap (w, resp, "GenerateDataKey", ctx);
  cv_kms_target_free (&t);
  if (r == 0)
    *dek = STEAL (k);
  return r;
}

/* The stored key ARN and blob of w, or -EINVAL (logged). */
static int
wrap_members (const json_t *w, const char **arn, const char **blob)
{
  int r = 0;

  *arn = cv_wrap_get_string (w, "key_arn", &r);
  *blob = cv_wrap_get_string (w, "blob", &r);
  return r;
}

static int
kms_unwrap (const json_t *w, const struct cv_creds *c, const char *binding,
            struct cv_key **dek)
{
  char label[CV_WRAP_LABEL_MAX];
  json_auto_t *ctx = NULL, *req = NULL, *resp = NULL;
  const char *arn, *blob;
  struct cv_kms_target t;
  int r;

  cv_wrap_label (w, label, sizeof label);
  if ((r = wrap_members (w, &arn, &blob)) < 0
      || (r = existing_ctx ("Decrypt", label, binding, w, &ctx)) < 0
      || (r = cv_kms_target_open (arn, c, &t)) < 0)
    return r;
  req = json_pack ("{s:s, s:s, s:O}", "CiphertextBlob", blob, "KeyId", t.key_id,
                   "EncryptionContext", ctx);
  r = req ? kms_op ("Decrypt", label, t.key_id, &t, c, req, &resp,
                    bad_ctx_todo (w))
          : -ENOMEM;
  if (r == 0)
    r = answer_key (resp, "Decrypt", CV_DEK_LEN, dek);
  cv_kms_target_free (&t);
  return r;
}

/* ReEncrypt w to new_ref into nw: from w's own context (as kms_unwrap) to
 * nw's, built from nw's metadata (cv_hdr_wrap_new filled id, type, ref and
 * created; cv_wrap_verify passes an empty scratch object, filled here). */
static int
kms_rewrap (const json_t *w, const char *new_ref, const struct cv_creds *c,
            const char *binding, json_t *nw)
{
  char label[CV_WRAP_LABEL_MAX], region[32], created[32], key[700];
  json_auto_t *sctx = NULL, *dctx = NULL, *req = NULL, *resp = NULL;
  CLEANUP_FREE char *dest = NULL;
  const char *arn, *blob;
  struct cv_kms_ref nr;
  struct cv_kms_target t;
  int r;

  cv_wrap_label (w, label, sizeof label);
  if (!new_ref) {
    cv_err ("%s: rewrap needs the new key's reference: %s", label, REF_FORMS);
    return -EINVAL;
  }
  if ((r = wrap_members (w, &arn, &blob)) < 0
      || (r = existing_ctx ("ReEncrypt", label, binding, w, &sctx)) < 0
      || (r = cv_kms_ref_parse (new_ref, &nr)) < 0)
    return r;
  if ((r = cv_kms_target_open (arn, c, &t)) < 0)
    return r;
  /* ReEncrypt runs in one region: the new key must be there too. */
  r = cv_kms_ref_region (&nr, c, new_ref, region, sizeof region);
  if (r == 0 && strcmp (region, t.region) != 0) {
    cv_err ("%s: cannot rewrap to %.200s: ReEncrypt runs in one region, and "
            "the wrap's key is in %s, the new key in %s; add a wrap with the "
            "new key instead (it needs the DEK)",
            label, new_ref, t.region, region);
    r = -EINVAL;
  }
  if (r == 0)
    r = cv_kms_ref_key_id (new_ref, &nr, region, &dest);
  if (r == 0) {
    cv_now_rfc3339 (created);
    if ((!json_object_get (nw, "type")
         && json_object_set_new (nw, "type", json_string ("kms")) < 0)
        || json_object_set_new (nw, "ref", json_string (new_ref)) < 0
        || (!json_object_get (nw, "created")
            && json_object_set_new (nw, "created", json_string (created)) < 0))
      r = -ENOMEM;
  }
  if (r == 0)
    r = new_wrap_ctx (binding, &t, nw, &dctx);
  if (r == 0) {
    req = json_pack ("{s:s, s:s, s:O, s:s, s:O}", "CiphertextBlob", blob,
                     "SourceKeyId", t.key_id, "SourceEncryptionContext", sctx,
                     "DestinationKeyId", dest, "DestinationEncryptionContext",
                     dctx);
    snprintf (key, sizeof key, "%.300s (or the new key %.300s)", t.key_id,
              dest);
    r = req ? kms_op ("ReEncrypt", label, key, &t, c, req, &resp,
                      bad_ctx_todo (w))
            : -ENOMEM;
  }
  if (r == 0)
    r = store_wrap (nw, resp, "ReEncrypt", dctx);
  cv_kms_target_free (&t);
  return r;
}

/* The key's state in a DescribeKey answer about t's key, into *state. */
static int
describe_answer (const json_t *resp, const struct cv_kms_target *t,
                 char **state)
{
  char when[64] = "";
  json_t *md = json_object_get (resp, "KeyMetadata");
  const char *st = json_string_value (json_object_get (md, "KeyState"));
  const char *karn = json_string_value (json_object_get (md, "Arn"));
  const char *mr = json_string_value (json_object_get (
      json_object_get (md, "MultiRegionConfiguration"), "MultiRegionKeyType"));
  json_t *del = json_object_get (md, "DeletionDate");
  int r = 0;

  if (json_is_number (del)) {
    time_t d = (time_t) json_number_value (del);
    struct tm tm;
    gmtime_r (&d, &tm);
    strftime (when, sizeof when, ", deletion on %Y-%m-%dT%H:%M:%SZ", &tm);
  }
  if (!st)
    cv_kms_answer_string (md, "KeyState", "DescribeKey", &r);
  else if (asprintf (state, "%s%s%s%s (%s in %s)", st, when,
                     mr ? ", multi-Region " : "", mr ? mr : "",
                     karn ? karn : t->key_id, t->region)
           < 0)
    r = -ENOMEM;
  return r;
}

static int
kms_describe (const json_t *w, const struct cv_creds *c, char **state)
{
  char label[CV_WRAP_LABEL_MAX];
  json_auto_t *req = NULL, *resp = NULL;
  const char *arn, *blob;
  struct cv_kms_target t;
  int r;

  cv_wrap_label (w, label, sizeof label);
  if ((r = wrap_members (w, &arn, &blob)) < 0
      || (r = cv_kms_target_open (arn, c, &t)) < 0)
    return r;
  req = json_pack ("{s:s}", "KeyId", t.key_id);
  r = req ? cv_kms_op ("DescribeKey", label, t.key_id, &t, c, req, &resp)
          : -ENOMEM;
  if (r == 0)
    r = describe_answer (resp, &t, state);
  cv_kms_target_free (&t);
  return r;
}

const struct cv_provider cv_provider_kms = {
  .type = "kms",
  .wrap = kms_wrap,
  .unwrap = kms_unwrap,
  .generate = kms_generate,
  .rewrap = kms_rewrap,
  .describe = kms_describe,
};

/* For tests/fuzz/fuzz-kms.c: the provider's reading of an answer, about a
 * fixed key and volume (kms.h). */
int
cv_kms_answer_use (const char *op, int rc, const struct cv_kms_result *res,
                   json_t *w, struct cv_key **dek, char **state)
{
  static const char arn[] = "arn:aws:kms:eu-west-1:111122223333:key/"
                            "1234abcd-12ab-34cd-56ef-1234567890ab";
  struct cv_kms_target t = { .region = "eu-west-1",
                             .key_id = (char *) arn,
                             .url = "https://kms.eu-west-1.amazonaws.com/",
                             .host = "kms.eu-west-1.amazonaws.com",
                             .cr = { .source = "environment" } };
  json_auto_t *ctx = NULL;
  int r = 0;

  if (rc == -EIO)
    return call_failed (op, "wrap 1 (kms fuzz)", arn, &t, res,
                        bad_ctx_todo (w));
  if (rc < 0)
    return rc;
  if ((r = wrap_ctx (CV_BINDING_PREFIX "0b6e4d0a-6b0e-4b8e-9d0c-2f3f1c1d5e6a",
                     w, true, &ctx))
      < 0)
    return r;
  if (strcmp (op, "Decrypt") == 0 || strcmp (op, "GenerateDataKey") == 0)
    r = answer_key (res->body, op, CV_DEK_LEN, dek);
  if (r == 0
      && (strcmp (op, "Encrypt") == 0 || strcmp (op, "GenerateDataKey") == 0
          || strcmp (op, "ReEncrypt") == 0))
    r = store_wrap (w, res->body, op, ctx);
  if (r == 0 && strcmp (op, "DescribeKey") == 0)
    r = describe_answer (res->body, &t, state);
  return r;
}

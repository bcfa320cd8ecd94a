/* AWS identity as the AWS SDKs resolve it, for the KMS provider: the shared
 * config and credentials files, the default credential chain with its
 * sources (environment, web identity, profiles with assumed roles,
 * credential_process and SSO, container credentials, EC2 instance
 * metadata), credentials cached and refreshed ahead of expiry, and the
 * region, endpoint and retry conventions. doc/kms.md is the operator's side.
 *
 *   aws-config.c     the shared config and credentials files (INI, profiles,
 *                    sub-sections), parsed in locked memory
 *   aws-settings.c   region, endpoint (FIPS, dual-stack, endpoint URLs) and
 *                    retry mode from kms-*= options, the environment, the
 *                    profile
 *   aws-creds.c      credentials as values: from strings, JSON; copies
 *   aws-fetch.c      plain HTTP(S) requests of the credential sources
 *   aws-sts.c        STS AssumeRole, AssumeRoleWithWebIdentity,
 *                    GetCallerIdentity (Query protocol, XML answers)
 *   aws-imds.c       EC2 instance metadata (IMDSv2)
 *   aws-container.c  the container credentials endpoint (ECS, EKS Pod
 *                    Identity)
 *   aws-process.c    credential_process
 *   aws-sso.c        SSO profiles through the AWS CLI's token cache
 *   aws-chain.c      the chain, its order and report, the cache and refresh
 *
 * Every function returns 0 or -errno. A source that is not configured
 * returns -ENOKEY and says why in why[] (not logged: the chain lists every
 * source when none gives credentials). A source that is configured but
 * fails logs what failed and what to do, and returns another -errno. No
 * secret is ever logged. */
#ifndef CV_AWS_H
#define CV_AWS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "keys/kms.h"

#define CV_AWS_WHY_MAX 320

/* --- the shared config and credentials files (aws-config.c) ------------- */

struct cv_aws_config;

/* Read the config file (AWS_CONFIG_FILE, else ~/.aws/config) and the
 * credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials;
 * "~/" expanded in both). A missing file, or /dev/null, is an empty file.
 * Returns 0, -EINVAL (unreadable, not a regular file, over 1 MiB; logged
 * with the path), -ENOMEM. */
int cv_aws_config_load (struct cv_aws_config **out);
/* Parse the two texts (either may be NULL; lengths in bytes; the paths are
 * for messages). The texts are copied into locked memory. For tests and the
 * fuzz target. Returns 0 or -ENOMEM; a malformed line is skipped as the
 * SDKs do, with a debug message that names file and line, never the
 * value. */
int cv_aws_config_parse (const char *config, size_t config_len,
                         const char *config_path, const char *credentials,
                         size_t credentials_len, const char *credentials_path,
                         struct cv_aws_config **out);
void cv_aws_config_free (struct cv_aws_config *c);
/* Read the file at path into locked memory: *buf holds its *len bytes and a
 * NUL (buf->len is *len + 1). what names it in messages ("AWS config
 * file"). A character device such as /dev/null reads as empty. 0, -ENOENT
 * (no such file; not logged), -EINVAL (unreadable, not a regular file, over
 * max bytes; logged with what and the path), -ENOMEM. For every file of
 * credentials (token files, the SSO cache). */
int cv_aws_read_file (const char *path, const char *what, size_t max,
                      struct cv_key **buf, size_t *len);
/* The paths of the files, for messages ("" when none). */
const char *cv_aws_config_path (const struct cv_aws_config *c);
const char *cv_aws_credentials_path (const struct cv_aws_config *c);

/* Whether profile exists in either file: [default] or [profile NAME] in the
 * config file (also [NAME] there for "default" only, as the CLI), [NAME] in
 * the credentials file. */
bool cv_aws_profile_exists (const struct cv_aws_config *c, const char *profile);
/* The value of key in profile, or NULL. Where both files set a key, the
 * credentials file wins (as the CLI). Values are trimmed; a value that
 * continues on indented lines (a sub-section) is not returned here. The
 * string lives as long as c. */
const char *cv_aws_profile_get (const struct cv_aws_config *c,
                                const char *profile, const char *key);
/* Which file set key in profile ("the config file PATH", "the credentials
 * file PATH"), for messages; NULL if unset. */
const char *cv_aws_profile_where (const struct cv_aws_config *c,
                                  const char *profile, const char *key);
/* key of a section of another kind in the config file: kind "sso-session"
 * or "services", [KIND NAME]. NULL if unset. */
const char *cv_aws_section_get (const struct cv_aws_config *c, const char *kind,
                                const char *name, const char *key);
/* A nested setting: in [KIND NAME], "sub =" followed by indented
 * "key = value" lines (services sections: "kms =\n  endpoint_url = ...").
 * NULL if unset. */
const char *cv_aws_subsection_get (const struct cv_aws_config *c,
                                   const char *kind, const char *name,
                                   const char *sub, const char *key);

/* --- the process's AWS settings (aws-settings.c) ------------------------ */

/* What every AWS call of a process is configured by: the profile
 * (AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default") and the files. */
struct cv_aws_ctx {
  struct cv_aws_config *cfg;
  const char *profile; /* points into the environment, or "default" */
  bool profile_named;  /* AWS_PROFILE or AWS_DEFAULT_PROFILE set it */
};

/* Load ctx from the environment and the files. 0, -EINVAL (logged; also a
 * named profile that exists in neither file), -ENOMEM. */
int cv_aws_ctx_load (struct cv_aws_ctx *ctx);
void cv_aws_ctx_free (struct cv_aws_ctx *ctx);

/* A setting: the environment variable env (when env is not NULL and it is
 * set and not empty), else key of the profile. NULL if neither. */
const char *cv_aws_setting (const struct cv_aws_ctx *ctx, const char *env,
                            const char *key);
/* A boolean setting ("true"/"false", case-insensitive) as cv_aws_setting
 * finds it; def if unset; -EINVAL (logged: which variable or profile key)
 * for another value. */
int cv_aws_setting_bool (const struct cv_aws_ctx *ctx, const char *env,
                         const char *key, bool def, bool *out);

/* The region when nothing more specific gave one: AWS_REGION,
 * AWS_DEFAULT_REGION, the profile's region, then (unless instance metadata
 * is disabled) the instance's region from IMDS. *from says which ("AWS_REGION",
 * "profile NAME", "instance metadata"). 0, -ENOENT (none anywhere; not
 * logged), -EINVAL (not a region name; logged). */
int cv_aws_default_region (const struct cv_aws_ctx *ctx, char *region,
                           size_t len, const char **from);

/* The endpoint of service in region. service is the SDK service id in the
 * form of its environment variable ("KMS", "STS", "SSO"); its config key is
 * the lower case ("kms", "sts", "sso"), its host prefix the given prefix
 * ("kms", "sts", "portal.sso"). In order: override (kms-endpoint=), then,
 * unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or the profile's
 * ignore_configured_endpoint_urls is true, AWS_ENDPOINT_URL_<SERVICE>,
 * AWS_ENDPOINT_URL, the profile's services section, the profile's
 * endpoint_url; else the AWS endpoint with AWS_USE_FIPS_ENDPOINT /
 * use_fips_endpoint (PREFIX-fips.REGION...) and AWS_USE_DUALSTACK_ENDPOINT /
 * use_dualstack_endpoint (....api.aws). A configured URL must be https with
 * no path. *url and *host are malloc'd; *from names where it came from (a
 * static string or one in ctx). 0, -EINVAL (logged), -ENOMEM. */
int cv_aws_endpoint (const struct cv_aws_ctx *ctx, const char *service,
                     const char *prefix, const char *override,
                     const char *region, char **url, char **host,
                     const char **from);

/* Retry settings: AWS_RETRY_MODE / retry_mode ("standard", "adaptive",
 * "legacy": legacy is taken as standard, as the SDKs now do, with a debug
 * line) and AWS_MAX_ATTEMPTS / max_attempts (1..20; default 3). */
/* (struct cv_aws_retry is in kms.h, which holds it per KMS target.) */
/* 0 or -EINVAL (logged: the variable or profile key and what it takes). */
int cv_aws_retry_settings (const struct cv_aws_ctx *ctx,
                           struct cv_aws_retry *out);

/* --- plain requests of the credential sources (aws-fetch.c) ------------- */

struct cv_aws_fetch {
  const char *method;         /* "GET", "PUT", "POST" */
  const char *url;            /* http:// only where allow_http */
  bool allow_http;            /* IMDS and container endpoints */
  const char *const *headers; /* "Name: value" strings, NULL-terminated;
                                 may hold secrets (wiped by the caller) */
  const char *body;           /* body_len bytes, or NULL */
  size_t body_len;
  const char *ca_bundle; /* NULL: AWS_CA_BUNDLE, else the system's */
  long connect_timeout_ms, timeout_ms;
};
struct cv_aws_fetched {
  long status;         /* HTTP status, 0 when no answer came */
  int curl_code;       /* CURLE_OK when an answer came */
  char message[256];   /* curl's message when none came (sanitised) */
  char request_id[96]; /* x-amzn-RequestId, or "" */
  struct cv_key *body; /* the answer and a NUL (len counts the NUL),
                          in locked memory; NULL if none */
};
/* One attempt, no retries. 0 whenever an answer came (any status), -EIO
 * when none did (res->message says why; not logged), -ENOMEM, -EINVAL (a
 * URL not allowed: logged). Free with cv_aws_fetched_free. */
int cv_aws_fetch (const struct cv_aws_fetch *req, struct cv_aws_fetched *res);
void cv_aws_fetched_free (struct cv_aws_fetched *res);
/* req tried up to attempts times, pause_ms apart: again when nothing
 * answered or on HTTP 5xx (the fixed attempts of the instance metadata and
 * container sources, as the SDKs make them). A debug line per failed
 * attempt, what naming the source (never the URL: a container URI's path
 * is not for logs). Returns as cv_aws_fetch, for the last
 * attempt (res holds its answer). */
int cv_aws_fetch_tries (const struct cv_aws_fetch *req, int attempts,
                        long pause_ms, const char *what,
                        struct cv_aws_fetched *res);

/* --- credentials as values (aws-creds.c) -------------------------------- */

/* Fill c from strings: the secret and the token (when token_len is not 0)
 * are copied into locked memory; expires is left 0. 0 or -ENOMEM. */
int cv_aws_creds_set (struct cv_aws_creds *c, const char *akid, size_t akid_len,
                      const char *secret, size_t secret_len, const char *token,
                      size_t token_len, const char *source);

/* Fill out from a JSON credential document: the members AccessKeyId,
 * SecretAccessKey and Token or SessionToken, and Expiration (RFC 3339, or
 * absent for long-lived ones); names differ per source, so they are given
 * (NULL for an absent one); an integer Expiration is taken as milliseconds
 * since 1970 (the SSO portal). what names the answer in messages ("instance
 * metadata at URL"). source is copied into out->source. 0, -EPROTO
 * (a member missing or malformed; logged with what and where from: what,
 * never a value), -ENOMEM. */
struct cv_aws_json_names {
  const char *akid, *secret, *token, *expiration;
};
int cv_aws_creds_from_json (const json_t *j, const struct cv_aws_json_names *n,
                            const char *what, const char *source,
                            struct cv_aws_creds *out);
/* "2026-12-02T05:04:49Z" (fractions and offsets too) to a time_t. 0 or
 * -EINVAL. */
int cv_aws_parse_time (const char *s, time_t *out);
/* Deep copy (secrets into new locked memory). 0 or -ENOMEM. */
int cv_aws_creds_copy (const struct cv_aws_creds *from,
                       struct cv_aws_creds *to);

/* --- STS (aws-sts.c) ----------------------------------------------------- */

/* Where STS calls go: resolved by the chain from cv_aws_endpoint ("STS",
 * "sts"; the region is the default region, else us-east-1). */
struct cv_aws_sts {
  const char *url, *host, *region;
  const char *ca_bundle; /* or NULL */
  struct cv_aws_retry retry;
};

/* AssumeRole with the source credentials. external_id, session (default
 * "cryptvol-<time>") may be NULL; duration_s 0 means the default (3600).
 * out->source says "role ARN via SOURCE". 0, or -EACCES (AccessDenied:
 * trust policy, external id; logged with what to check), -EKEYEXPIRED (the
 * source credentials refused or expired), -EAGAIN / -ECONNREFUSED /
 * -ETIMEDOUT (STS unavailable), -EPROTO, -EINVAL (a validation error). */
int cv_aws_sts_assume_role (const struct cv_aws_sts *sts,
                            const struct cv_aws_creds *src,
                            const char *role_arn, const char *session,
                            const char *external_id, int duration_s,
                            const char *source, struct cv_aws_creds *out);
/* AssumeRoleWithWebIdentity with the token read from token_file (fresh on
 * every call: the token is rotated by the platform). Unsigned. -EKEYEXPIRED
 * for an expired token (ExpiredTokenException), -EACCES for a refused one
 * (InvalidIdentityToken, AccessDenied), others as above, -ENOENT (no token
 * file; logged). */
int cv_aws_sts_web_identity (const struct cv_aws_sts *sts, const char *role_arn,
                             const char *session, const char *token_file,
                             int duration_s, const char *source,
                             struct cv_aws_creds *out);
/* GetCallerIdentity: the ARN of the principal of c into *arn (malloc'd). */
int cv_aws_sts_caller_identity (const struct cv_aws_sts *sts,
                                const struct cv_aws_creds *c, char **arn);
/* Parse an STS answer (XML) of op ("AssumeRole",
 * "AssumeRoleWithWebIdentity", "GetCallerIdentity"): credentials into out
 * (when out is not NULL), the assumed role's or caller's ARN into *arn
 * (when arn is not NULL), or an error's Code and Message into code and msg
 * (sanitised). Returns 0, -EPROTO (not such an answer), -ENOMEM. For the
 * fuzz target too. */
int cv_aws_sts_parse (const char *xml, size_t len, const char *op,
                      const char *source, struct cv_aws_creds *out, char **arn,
                      char *code, size_t code_len, char *msg, size_t msg_len);

/* Read a token file fresh (web identity, container authorization) into
 * locked memory: the token without trailing white space, and a NUL (len
 * counts it). what starts the messages ("sts web identity"), todo ends
 * them. 0, -ENOENT (no such file), -EACCES (unreadable), -EINVAL (not a
 * regular file, empty, over max bytes), -ENOMEM; all but -ENOMEM logged. */
struct cv_key;
int cv_aws_read_token_file (const char *path, const char *what,
                            const char *todo, size_t max, struct cv_key **out);

/* --- EC2 instance metadata, IMDSv2 (aws-imds.c) ------------------------- */

/* endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT / ec2_metadata_service_endpoint
 * (http://169.254.169.254 by default; http or https, no path). The chain
 * checks AWS_EC2_METADATA_DISABLED first. A token (PUT /latest/api/token,
 * TTL 21600 s), then the role name and its credentials. IMDSv1 is never
 * used. 1 s timeouts, 2 attempts, as the SDKs. -ENOKEY when nothing answers
 * or no role is attached (why[] says which); -EPROTO and others logged. */
int cv_aws_imds_creds (const char *endpoint, struct cv_aws_creds *out,
                       char *why, size_t why_len);
/* The instance's region (placement/region). -ENOKEY (no answer) or 0. */
int cv_aws_imds_region (const char *endpoint, char *region, size_t len);

/* --- container credentials (aws-container.c) ---------------------------- */

/* AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on http://169.254.170.2) or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http only to a loopback
 * address, 169.254.170.2, 169.254.170.23 or fd00:ec2::23), with
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read fresh every time) or
 * AWS_CONTAINER_AUTHORIZATION_TOKEN as the Authorization header. -ENOKEY
 * when neither URI is set; -EINVAL for a host not allowed (logged). */
int cv_aws_container_creds (struct cv_aws_creds *out, char *why,
                            size_t why_len);

/* --- credential_process (aws-process.c) --------------------------------- */

/* Run cmd (split into words as the CLI does: quotes, no shell), read its
 * stdout (JSON: Version 1, AccessKeyId, SecretAccessKey, SessionToken,
 * Expiration), with stderr passed through, a 60 s limit, and a clean
 * environment but for what it inherits. -EIO (exit status or signal, or it
 * cannot be started; logged with the profile and the command's first word,
 * never its output), -EPROTO (bad output; logged), -ETIMEDOUT, -EINVAL (the
 * command cannot be split: an open quote; logged). The limit is
 * CV_AWS_PROCESS_TIMEOUT_MS when set (a test knob). */
int cv_aws_process_creds (const char *cmd, const char *profile,
                          struct cv_aws_creds *out);

/* --- SSO (aws-sso.c) ----------------------------------------------------- */

/* An SSO profile (sso_session with its [sso-session] section, or the legacy
 * sso_start_url in the profile) through the token the AWS CLI caches in
 * ~/.aws/sso/cache/SHA1.json after `aws sso login`: GetRoleCredentials on
 * the SSO portal (cv_aws_endpoint "SSO", "portal.sso", sso_region).
 * -EKEYEXPIRED with a message that says to run `aws sso login --profile P`
 * when no token is cached, it expired or the portal refuses it (401);
 * -EACCES when the portal refuses the role (403); -ENOKEY (not logged) for
 * a profile that is not an SSO profile; -EINVAL (an incomplete profile),
 * -EPROTO (a broken cache file or answer), -ECONNREFUSED / -ETIMEDOUT (no
 * answer), -EAGAIN (429, 5xx); all logged. */
int cv_aws_sso_creds (const struct cv_aws_ctx *ctx, const char *profile,
                      struct cv_aws_creds *out);

/* --- the chain (aws-chain.c) --------------------------------------------- */

/* The process's context, loaded on first use (cv_aws_ctx_load) and kept
 * until cv_aws_creds_reset. 0, or what cv_aws_ctx_load returned. */
int cv_aws_process_ctx (const struct cv_aws_ctx **out);

/* Who the process's credentials are: their ARN from STS GetCallerIdentity
 * (*arn, malloc'd), where they came from (*source, malloc'd) and when they
 * expire (0: never). 0, or the -errno of cv_aws_creds_load or of the call
 * (logged). */
int cv_aws_identity (char **arn, char **source, time_t *expires);

/* Resolve credentials once, without the cache: the SDKs' order (doc/kms.md),
 * from the first source that is configured. -ENOKEY when none is: every
 * source looked at and why it gave nothing is logged as one error. */
int cv_aws_chain_resolve (const struct cv_aws_ctx *ctx,
                          struct cv_aws_creds *out);

#endif

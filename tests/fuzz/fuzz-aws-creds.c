/* libFuzzer target: credential documents as the sources answer them
 * (credential_process, instance metadata, the container endpoint, the SSO
 * portal), parsed with cv_aws_creds_from_json under each source's member
 * names. Credentials that parse must have a key id, a secret of the length
 * given, a NUL-terminated token and the source's name; nothing may crash,
 * leak or read out of bounds. make fuzz builds it (build-fuzz/
 * fuzz-aws-creds); test-fuzz.sh runs it briefly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  return 0;
}

static void
one (const json_t *j, const struct cv_aws_json_names *n)
{
  struct cv_aws_creds c;

  if (cv_aws_creds_from_json (j, n, "fuzz", "fuzz source", &c) < 0)
    return;
  if (!c.access_key_id || !*c.access_key_id || !c.secret || !c.secret->len
      || strcmp (c.source, "fuzz source") != 0
      || (c.token && c.token->b[c.token->len - 1] != '\0'))
    abort ();
  cv_aws_creds_free (&c);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const struct cv_aws_json_names process
      = { "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" };
  static const struct cv_aws_json_names imds
      = { "AccessKeyId", "SecretAccessKey", "Token", "Expiration" };
  static const struct cv_aws_json_names sso
      = { "accessKeyId", "secretAccessKey", "sessionToken", "expiration" };
  json_t *j = json_loadb ((const char *) data, size, 0, NULL);
  time_t t;

  if (!j)
    return 0;
  one (j, &process);
  one (j, &imds);
  one (json_object_get (j, "roleCredentials"), &sso);
  if (json_is_string (j))
    cv_aws_parse_time (json_string_value (j), &t);
  json_decref (j);
  return 0;
}

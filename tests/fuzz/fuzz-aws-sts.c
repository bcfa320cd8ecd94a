/* libFuzzer target: the STS answer reader (cv_aws_sts_parse) on arbitrary
 * bytes, as the answer of each operation. It must return 0 or -EPROTO
 * (never crash, leak or read out of bounds); on 0, credentials are whole
 * (key id, secret, token) and their secret and token printable ASCII
 * without spaces, since they go into request headers. make fuzz builds it
 * (build-fuzz/fuzz-aws-sts); test-fuzz.sh runs it briefly. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "crypto/secmem.h"
#include "keys/aws.h"
#include "keys/kms.h"

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  return 0;
}

/* Printable ASCII without spaces: what may go into a header. */
static bool
printable (const uint8_t *b, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (b[i] <= 0x20 || b[i] >= 0x7f)
      return false;
  return len > 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const ops[]
      = { "AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity" };

  for (size_t i = 0; i < 3; i++) {
    struct cv_aws_creds c = { 0 };
    char *arn = NULL, code[96], msg[512];
    bool caller = i == 2;
    int r = cv_aws_sts_parse ((const char *) data, size, ops[i], "fuzz",
                              caller ? NULL : &c, &arn, code, sizeof code, msg,
                              sizeof msg);
    if (r != 0 && r != -EPROTO)
      abort ();
    if (r == 0 && !code[0]) {
      if (!arn || !printable ((const uint8_t *) arn, strlen (arn)))
        abort ();
      if (!caller
          && (!c.access_key_id || !c.secret || !c.token
              || !printable (c.secret->b, c.secret->len)
              || !printable (c.token->b, c.token->len - 1)
              || c.token->b[c.token->len - 1] != '\0'))
        abort ();
    }
    if (r != 0 && (c.access_key_id || arn))
      abort ();
    cv_aws_creds_free (&c);
    free (arn);
  }
  return 0;
}

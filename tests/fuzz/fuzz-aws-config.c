/* libFuzzer target: the AWS shared config and credentials file parser
 * (cv_aws_config_parse) on arbitrary bytes, the two files split at the
 * first NUL. Every lookup must return NULL or a value with no line break
 * and no blank at either end; the parser must not crash, leak or read out
 * of bounds. make fuzz builds it (build-fuzz/fuzz-aws-config);
 * test-fuzz.sh runs it briefly from its seed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "keys/aws.h"

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  cv_log_set_debug (true); /* format the messages of malformed lines too */
  return 0;
}

/* A value as the parser returns it: trimmed, one line. */
static void
check_value (const char *v)
{
  size_t n;

  if (!v)
    return;
  n = strlen (v);
  if (strpbrk (v, "\r\n")
      || (n && (strchr (" \t\v\f", v[0]) || strchr (" \t\v\f", v[n - 1]))))
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const names[]
      = { "default", "a", "b", "profile a", "a b" };
  static const char *const keys[]
      = { "region", "a", "b", "kms", "endpoint_url", "A" };
  const char *text = (const char *) data;
  const uint8_t *nul = memchr (data, 0, size);
  size_t clen = nul ? (size_t) (nul - data) : size;
  struct cv_aws_config *c = NULL;

  if (cv_aws_config_parse (text, clen, "config", nul ? text + clen + 1 : NULL,
                           nul ? size - clen - 1 : 0, "credentials", &c)
      < 0)
    return 0;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    bool exists = cv_aws_profile_exists (c, names[i]);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      const char *v = cv_aws_profile_get (c, names[i], keys[k]);
      check_value (v);
      if (v && (!exists || !cv_aws_profile_where (c, names[i], keys[k])))
        abort ();
      check_value (cv_aws_section_get (c, "services", names[i], keys[k]));
      check_value (cv_aws_section_get (c, "sso-session", names[i], keys[k]));
      check_value (
          cv_aws_subsection_get (c, "services", names[i], keys[k], "a"));
      check_value (cv_aws_subsection_get (c, "services", names[i], keys[k],
                                          "endpoint_url"));
    }
  }
  cv_aws_config_free (c);
  return 0;
}

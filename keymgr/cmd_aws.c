/* cryptvol-keymgr aws-identity: which AWS principal this host's
 * credentials are (STS GetCallerIdentity), where they came from in the
 * credential chain and when they expire: what a customer's key policy or
 * grant must name. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/cleanup.h"
#include "keymgr.h"
#include "keys/aws.h"

int
cmd_aws_identity (int argc, char **argv)
{
  static const char usage[]
      = "usage: cryptvol-keymgr aws-identity [--json]\n"
        "Shows the AWS principal of the credentials cryptvol finds (the AWS\n"
        "SDKs' chain: doc/kms.md, \"Credentials\"), their source and expiry.\n";
  CLEANUP_FREE char *arn = NULL, *source = NULL;
  struct common_opts co;
  char when[32] = "never (long-lived credentials)";
  time_t expires = 0;
  int rc = parse_args (argc, argv, NULL, NULL, NULL, &co, usage, 0);

  if (rc)
    return rc < 0 ? EXIT_OK : rc;
  rc = cv_aws_identity (&arn, &source, &expires);
  if (rc == 0) {
    if (expires) {
      struct tm tm;
      gmtime_r (&expires, &tm);
      strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    if (co.json) {
      json_t *j
          = json_pack ("{s:s, s:s, s:o}", "arn", arn, "source", source,
                       "expires", expires ? json_string (when) : json_null ());
      print_json (j);
      json_decref (j);
    } else
      printf ("principal: %s\ncredentials from: %s\nexpire: %s\n", arn, source,
              when);
  }
  common_free (&co);
  return exit_code (rc);
}

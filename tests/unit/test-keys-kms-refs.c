/* The KMS provider's inputs: key references and their regions
 * (multi-Region keys), and the digest of a wrap's metadata in its
 * encryption context. Endpoints: test-keys-aws-settings.c. The chain is
 * test-keys-aws-chain.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fdio.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/keys.h"
#include "keys/kms.h"

/* Parse ref and resolve its region and KeyId with creds c. */
static int
resolve (const char *ref, const char *kms_region, char *region, char **key_id)
{
  struct cv_creds c = { .kms_region = kms_region };
  struct cv_kms_ref r;
  int rc = cv_kms_ref_parse (ref, &r);

  if (rc == 0)
    rc = cv_kms_ref_region (&r, &c, ref, region, 32);
  if (rc == 0)
    rc = cv_kms_ref_key_id (ref, &r, region, key_id);
  return rc;
}

static void
check_refs (void)
{
  static const char arn[] = "arn:aws:kms:eu-west-1:111122223333:key/"
                            "1234abcd-12ab-34cd-56ef-1234567890ab";
  static const char mrk[] = "arn:aws:kms:us-east-1:111122223333:key/"
                            "mrk-1234abcd12ab34cd56ef1234567890ab";
  char region[32];
  CLEANUP_FREE char *id1 = NULL, *id2 = NULL, *id3 = NULL, *id4 = NULL,
                    *id5 = NULL, *id6 = NULL, *id7 = NULL;
  struct cv_kms_ref r;

  unsetenv ("AWS_REGION");
  unsetenv ("AWS_DEFAULT_REGION");
  CHECK (resolve (arn, NULL, region, &id1) == 0
             && strcmp (region, "eu-west-1") == 0 && strcmp (id1, arn) == 0,
         "key ARN: its region, as given");
  CHECK (resolve (arn, "us-west-2", region, &id2) == 0
             && strcmp (region, "eu-west-1") == 0,
         "a single-Region key ARN keeps its region whatever kms-region says");
  CHECK (resolve (mrk, "us-west-2", region, &id3) == 0
             && strcmp (region, "us-west-2") == 0
             && strcmp (id3, "arn:aws:kms:us-west-2:111122223333:key/"
                             "mrk-1234abcd12ab34cd56ef1234567890ab")
                    == 0,
         "multi-Region key: kms-region picks the replica: %s", id3 ? id3 : "");
  CHECK (cv_kms_ref_parse (mrk, &r) == 0 && r.mrk && r.arn && !r.alias,
         "mrk flags");
  harness_log_clear ();
  CHECK (resolve ("alias/vol-keys", NULL, region, &id4) == -EINVAL,
         "alias without a region");
  CHECK (strstr (harness_logged (), "kms-region"), "message says how: %s",
         harness_logged ());
  setenv ("AWS_DEFAULT_REGION", "ap-south-1", 1);
  CHECK (resolve ("alias/vol-keys", NULL, region, &id4) == 0
             && strcmp (region, "ap-south-1") == 0
             && strcmp (id4, "alias/vol-keys") == 0,
         "alias with AWS_DEFAULT_REGION");
  setenv ("AWS_REGION", "ca-central-1", 1);
  CHECK (resolve ("1234abcd-12ab-34cd-56ef-1234567890ab", NULL, region, &id5)
                 == 0
             && strcmp (region, "ca-central-1") == 0,
         "AWS_REGION before AWS_DEFAULT_REGION");
  CHECK (resolve ("alias/x", "sa-east-1", region, &id6) == 0
             && strcmp (region, "sa-east-1") == 0,
         "kms-region before the environment");
  CHECK (resolve ("arn:aws:kms:us-east-2:111122223333:alias/vol", NULL, region,
                  &id7)
                 == 0
             && strcmp (region, "us-east-2") == 0,
         "alias ARN: its region");
  CHECK (cv_kms_ref_parse ("arn:aws:kms:us-east-2:111122223333:alias/vol", &r)
                 == 0
             && r.alias,
         "alias ARN is an alias");
  unsetenv ("AWS_REGION");
  unsetenv ("AWS_DEFAULT_REGION");

  static const char *const bad[] = {
    "",
    "arn:aws:kms:us-east-1:1111:key/abc",          /* short account */
    "arn:aws:s3:us-east-1:111122223333:key/abc",   /* not kms */
    "arn:aws:kms:us-east-1:111122223333:user/abc", /* not key or alias */
    "arn:aws:kms:us-east-1:111122223333:key/alias/x",
    "alias/",
    "key with spaces",
    "arn:aws:kms:US-EAST-1:111122223333:key/abc", /* region case */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    harness_log_clear ();
    CHECK (cv_kms_ref_parse (bad[i], &r) == -EINVAL, "refused: \"%s\"", bad[i]);
    CHECK (strstr (harness_logged (), "kms:"), "refusal logged for \"%s\"",
           bad[i]);
  }
  struct cv_creds c = { .kms_region = "us-east-1\r\nX: y" };
  CHECK (cv_kms_ref_parse ("alias/x", &r) == 0
             && cv_kms_ref_region (&r, &c, "alias/x", region, sizeof region)
                    == -EINVAL,
         "a region with control characters is refused");
  harness_log_clear ();
}

/* cv_kms_wrap_digest against values computed with Python's json and
 * hashlib from doc/kms.md's definition: only id, type, ref, created and
 * region count, a missing one counts as null. */
static void
check_wrap_digest (void)
{
  char d[CV_KMS_WRAP_DIGEST_SIZE];
  json_auto_t *w = json_pack (
      "{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t) 3, "type",
      "kms", "ref", "alias/x", "created", "2026-01-02T03:04:05Z", "region",
      "eu-west-1", "key_arn", "arn:aws:kms:eu-west-1:111122223333:key/k",
      "verified", "2026-02-02T00:00:00Z");

  CHECK (cv_kms_wrap_digest (w, d) == 0
             && strcmp (d, "v1:2e0866503664e0d51f03f8a87370513c") == 0,
         "the digest of a wrap's metadata: %s", d);
  json_object_set_new (w, "key_arn", json_string ("other"));
  json_object_set_new (w, "blob", json_string ("AAAA"));
  CHECK (cv_kms_wrap_digest (w, d) == 0
             && strcmp (d, "v1:2e0866503664e0d51f03f8a87370513c") == 0,
         "key_arn, blob and verified are not covered: %s", d);
  json_object_del (w, "ref");
  CHECK (cv_kms_wrap_digest (w, d) == 0
             && strcmp (d, "v1:684f5e845da40bcf9a3c4d1b7910e80c") == 0,
         "a missing member counts as null: %s", d);
  CHECK (!cv_kms_wrap_self_bound (w), "no ctx: not self-bound");
  json_object_set_new (
      w, "ctx",
      json_pack ("{s:s, s:s}", "cryptvol:volume", "u", "cryptvol:wrap", d));
  CHECK (cv_kms_wrap_self_bound (w), "ctx with cryptvol:wrap: self-bound");
}

int
main (void)
{
  harness_init ();
  check_refs ();
  check_wrap_digest ();
  return harness_done ("test-keys-kms-refs");
}

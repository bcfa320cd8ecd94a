/* The STS answer reader (cv_aws_sts_parse) on answers shaped as AWS's API
 * reference shows them, on error answers, and on malformed and hostile XML;
 * and what the STS calls refuse before sending anything (durations, token
 * files). No secret may reach the log. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "crypto/secmem.h"
#include "harness.h"
#include "keys/aws.h"
#include "keys/kms.h"

#define AKID "ASIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
#define TOKEN                                                                  \
  "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW"        \
  "LWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGd"        \
  "QrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU"

static const char assume_role_xml[]
    = "<AssumeRoleResponse "
      "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
      "  <AssumeRoleResult>\n"
      "    <SourceIdentity>Alice</SourceIdentity>\n"
      "    <AssumedRoleUser>\n"
      "      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>\n"
      "      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>\n"
      "    </AssumedRoleUser>\n"
      "    <Credentials>\n"
      "      <AccessKeyId>" AKID "</AccessKeyId>\n"
      "      <SecretAccessKey>" SECRET "</SecretAccessKey>\n"
      "      <SessionToken>\n       " TOKEN "\n      </SessionToken>\n"
      "      <Expiration>2019-11-09T13:34:41Z</Expiration>\n"
      "    </Credentials>\n"
      "    <PackedPolicySize>6</PackedPolicySize>\n"
      "  </AssumeRoleResult>\n"
      "  <ResponseMetadata>\n"
      "    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
      "  </ResponseMetadata>\n"
      "</AssumeRoleResponse>\n";

static const char web_identity_xml[]
    = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<AssumeRoleWithWebIdentityResponse "
      "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
      "  <AssumeRoleWithWebIdentityResult>\n"
      "    "
      "<SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A"
      "</SubjectFromWebIdentityToken>\n"
      "    "
      "<Audience>client.5498841531868486423.1548@apps.example.com</Audience>\n"
      "    <AssumedRoleUser>\n"
      "      "
      "<Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/"
      "app1</Arn>\n"
      "      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>\n"
      "    </AssumedRoleUser>\n"
      "    <Credentials>\n"
      "      <SessionToken>" TOKEN "</SessionToken>\n"
      "      <SecretAccessKey>" SECRET "</SecretAccessKey>\n"
      "      <Expiration>2014-10-24T23:00:23.000Z</Expiration>\n"
      "      <AccessKeyId>" AKID "</AccessKeyId>\n"
      "    </Credentials>\n"
      "    <SourceIdentity>SourceIdentityValue</SourceIdentity>\n"
      "    <Provider>www.amazon.com</Provider>\n"
      "  </AssumeRoleWithWebIdentityResult>\n"
      "  <ResponseMetadata>\n"
      "    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>\n"
      "  </ResponseMetadata>\n"
      "</AssumeRoleWithWebIdentityResponse>\n";

static const char caller_xml[]
    = "<GetCallerIdentityResponse "
      "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
      "  <GetCallerIdentityResult>\n"
      "  <Arn>arn:aws:iam::123456789012:user/Alice</Arn>\n"
      "    <UserId>AKIAI44QH8DHBEXAMPLE</UserId>\n"
      "    <Account>123456789012</Account>\n"
      "  </GetCallerIdentityResult>\n"
      "  <ResponseMetadata>\n"
      "    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n"
      "  </ResponseMetadata>\n"
      "</GetCallerIdentityResponse>\n";

static const char error_xml[]
    = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
      "  <Error>\n"
      "    <Type>Sender</Type>\n"
      "    <Code>AccessDenied</Code>\n"
      "    <Message>User: arn:aws:iam::111122223333:user/test is not "
      "authorized to perform: sts:AssumeRole on resource: "
      "arn:aws:iam::111122223333:role/x &amp; &lt;more&gt; &quot;q&quot; "
      "&apos;a&apos; &#233;&#x41;</Message>\n"
      "  </Error>\n"
      "  <RequestId>4a2d8f5e-0000-4000-8000-000000000000</RequestId>\n"
      "</ErrorResponse>\n";

static bool
key_is (const struct cv_key *k, const char *s, bool nul)
{
  size_t n = strlen (s) + (nul ? 1 : 0);

  return k && k->len == n && memcmp (k->b, s, n) == 0;
}

/* Parse text as an answer of op; the return code. */
static int
parse (const char *text, size_t len, const char *op, struct cv_aws_creds *c,
       char **arn)
{
  char code[96], msg[512];

  return cv_aws_sts_parse (text, len, op, "test", c, arn, code, sizeof code,
                           msg, sizeof msg);
}

static void
check_answers (void)
{
  struct cv_aws_creds c = { 0 };
  char *arn = NULL, code[96], msg[512];

  CHECK (
      parse (assume_role_xml, strlen (assume_role_xml), "AssumeRole", &c, &arn)
          == 0,
      "AssumeRole answer");
  CHECK (c.access_key_id && strcmp (c.access_key_id, AKID) == 0, "key id %s",
         c.access_key_id);
  CHECK (key_is (c.secret, SECRET, false), "secret");
  CHECK (key_is (c.token, TOKEN, true),
         "token (white space around it is not part of it)");
  CHECK (c.expires == 1573306481, "expiry %lld", (long long) c.expires);
  CHECK (c.source && strcmp (c.source, "test") == 0, "source %s", c.source);
  CHECK (arn
             && strcmp (arn, "arn:aws:sts::123456789012:assumed-role/demo/"
                             "TestAR")
                    == 0,
         "arn %s", arn);
  cv_aws_creds_free (&c);
  free (arn);
  arn = NULL;

  CHECK (parse (web_identity_xml, strlen (web_identity_xml),
                "AssumeRoleWithWebIdentity", &c, &arn)
             == 0,
         "AssumeRoleWithWebIdentity answer, members in another order");
  CHECK (c.access_key_id && strcmp (c.access_key_id, AKID) == 0, "key id");
  CHECK (key_is (c.secret, SECRET, false) && key_is (c.token, TOKEN, true),
         "secret and token");
  CHECK (c.expires == 1414191623, "expiry with fractions %lld",
         (long long) c.expires);
  CHECK (arn && strstr (arn, "FederatedWebIdentityRole/app1"), "arn %s", arn);
  cv_aws_creds_free (&c);
  free (arn);
  arn = NULL;

  CHECK (
      parse (caller_xml, strlen (caller_xml), "GetCallerIdentity", NULL, &arn)
          == 0,
      "GetCallerIdentity answer");
  CHECK (arn && strcmp (arn, "arn:aws:iam::123456789012:user/Alice") == 0,
         "caller %s", arn);
  free (arn);
  arn = NULL;

  CHECK (cv_aws_sts_parse (error_xml, strlen (error_xml), "AssumeRole", "t", &c,
                           &arn, code, sizeof code, msg, sizeof msg)
             == 0,
         "error answer");
  CHECK (strcmp (code, "AccessDenied") == 0, "code %s", code);
  CHECK (strstr (msg, "sts:AssumeRole on resource")
             && strstr (msg, "/x & <more> \"q\" 'a' ??A"),
         "entities decoded, non-ASCII sanitised: %s", msg);
  CHECK (!c.access_key_id && !arn, "no credentials from an error");
  CHECK (cv_aws_sts_parse (error_xml, strlen (error_xml), "AssumeRole", "t", &c,
                           NULL, NULL, 0, NULL, 0)
             == -EPROTO,
         "an error answer where credentials are expected, without code");

  /* Truncated short: the code is cut, never overrun. */
  char small[8];
  CHECK (cv_aws_sts_parse (error_xml, strlen (error_xml), "AssumeRole", "t",
                           NULL, NULL, small, sizeof small, NULL, 0)
                 == 0
             && strcmp (small, "AccessD") == 0,
         "code truncated: %s", small);
}

/* Replace the first from in base by to: a new string. */
static char *
edit (const char *base, const char *from, const char *to)
{
  const char *at = strstr (base, from);
  char *o = NULL;

  if (!at)
    abort ();
  if (asprintf (&o, "%.*s%s%s", (int) (at - base), base, to, at + strlen (from))
      < 0)
    abort ();
  return o;
}

static void
check_entities_in_secrets (void)
{
  struct cv_aws_creds c = { 0 };
  CLEANUP_FREE char *x
      = edit (assume_role_xml, SECRET,
              "wJalrXUtnFEMI&#x2F;K7MDENG&#47;bPxRfiCYz&amp;EXAMPLEKEY");

  CHECK (parse (x, strlen (x), "AssumeRole", &c, NULL) == 0,
         "entities in a secret");
  CHECK (key_is (c.secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYz&EXAMPLEKEY", false),
         "decoded secret");
  cv_aws_creds_free (&c);
}

/* Each case: how the AssumeRole answer is spoiled. All are -EPROTO and
 * give no credentials. */
static const struct {
  const char *why, *from, *to;
} spoiled[] = {
  { "mismatched end tag", "</AccessKeyId>", "</AccessKeyID>" },
  { "unclosed element", "</Credentials>", "" },
  { "a DTD with entities (billion laughs)", "<AssumeRoleResponse",
    "<!DOCTYPE r [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]>"
    "<AssumeRoleResponse" },
  { "an external entity", "<AssumeRoleResponse",
    "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
    "<AssumeRoleResponse" },
  { "a comment", "<Credentials>", "<Credentials><!-- c -->" },
  { "CDATA", SECRET, "<![CDATA[" SECRET "]]>" },
  { "a processing instruction", "<Credentials>", "<Credentials><?pi x?>" },
  { "a second root", "</AssumeRoleResponse>\n",
    "</AssumeRoleResponse><AssumeRoleResponse/>" },
  { "text after the root", "</AssumeRoleResponse>\n",
    "</AssumeRoleResponse> junk" },
  { "text next to elements", "<Credentials>", "<Credentials>text" },
  { "an unknown entity", SECRET, "&secret;" },
  { "a bare ampersand", SECRET, "a&b" },
  { "an unterminated entity", SECRET, "abc&amp" },
  { "a NUL character reference", SECRET, "abc&#0;" },
  { "a surrogate character reference", SECRET, "abc&#xD800;" },
  { "a character reference out of range", SECRET, "abc&#x110000;" },
  { "an empty character reference", SECRET, "abc&#;" },
  { "a control character", SECRET, "abc\001def" },
  { "a line feed inside a secret (header injection)", TOKEN,
    "abc&#13;&#10;X-Injected: 1" },
  { "a space inside the secret", SECRET, "abc def" },
  { "an empty secret", SECRET, "" },
  { "an empty key id", AKID, "" },
  { "AccessKeyId twice", "<AccessKeyId>",
    "<AccessKeyId>AKIAOTHER</AccessKeyId><AccessKeyId>" },
  { "no SessionToken", "<SessionToken>", "<Other>" },
  { "no Expiration", "<Expiration>2019-11-09T13:34:41Z</Expiration>", "" },
  { "an Expiration that is not a time", "2019-11-09T13:34:41Z", "tomorrow" },
  { "credentials one level too deep", "<Credentials>",
    "<Credentials><Credentials>" },
  { "an attribute without quotes",
    "xmlns=\"https://sts.amazonaws.com/doc/"
    "2011-06-15/\"",
    "xmlns=https://sts.amazonaws.com/" },
  { "an attribute without a space", "<AssumeRoleResponse xmlns",
    "<AssumeRoleResponse\"x\"xmlns" },
  { "an element name that is not a name", "<Credentials>", "<1Credentials>" },
  { "the answer of another operation", "AssumeRoleResponse",
    "AssumeRoleWithSAMLResponse" },
  { "a lone end tag", "<AssumeRoleResponse", "</X><AssumeRoleResponse" },
  { "an XML declaration not at the start", "<AssumeRoleResponse",
    "\n<?xml version=\"1.0\"?><AssumeRoleResponse" },
};

static void
check_spoiled (void)
{
  for (size_t i = 0; i < ARRAY_SIZE (spoiled); i++) {
    struct cv_aws_creds c = { 0 };
    char *arn = NULL;
    CLEANUP_FREE char *x
        = edit (assume_role_xml, spoiled[i].from, spoiled[i].to);
    if (strcmp (spoiled[i].why, "the answer of another operation") == 0) {
      /* The end tag too. */
      char *y
          = edit (x, "</AssumeRoleResponse>", "</AssumeRoleWithSAMLResponse>");
      free (x);
      x = y;
    }
    int r = parse (x, strlen (x), "AssumeRole", &c, &arn);
    CHECK (r == -EPROTO, "%s: %d", spoiled[i].why, r);
    CHECK (!c.access_key_id && !c.secret && !arn, "%s: nothing taken",
           spoiled[i].why);
    cv_aws_creds_free (&c);
    free (arn);
  }
}

/* Every proper prefix of a good answer is refused. */
static void
check_truncated (void)
{
  size_t len = strlen (assume_role_xml), refused = 0;

  for (size_t n = 0; n < len - 1; n++) { /* len - 1: only the last \n off */
    struct cv_aws_creds c = { 0 };
    if (parse (assume_role_xml, n, "AssumeRole", &c, NULL) == -EPROTO)
      refused++;
    cv_aws_creds_free (&c);
  }
  CHECK (refused == len - 1, "%zu of %zu prefixes refused", refused, len - 1);
}

static void
check_limits (void)
{
  struct cv_aws_creds c = { 0 };
  size_t big = 70 * 1024;
  CLEANUP_FREE char *pad = malloc (big + 1);
  CLEANUP_FREE char *deep = NULL, *x = NULL;

  /* Over 64 KiB, even if only white space. */
  memset (pad, ' ', big);
  pad[big] = '\0';
  x = edit (assume_role_xml, "<Credentials>", pad);
  CHECK (parse (x, strlen (x), "AssumeRole", &c, NULL) == -EPROTO,
         "an answer over 64 KiB");

  /* Nesting deeper than any answer. */
  deep = strdup ("");
  for (int i = 0; i < 20; i++) {
    char *d = NULL;
    if (asprintf (&d, "<a>%s</a>", deep) < 0)
      abort ();
    free (deep);
    deep = d;
  }
  CHECK (parse (deep, strlen (deep), "AssumeRole", &c, NULL) == -EPROTO,
         "nested 20 deep");

  /* A key id longer than any. */
  char longid[300];
  memset (longid, 'A', sizeof longid - 1);
  longid[sizeof longid - 1] = '\0';
  free (x);
  x = edit (assume_role_xml, AKID, longid);
  CHECK (parse (x, strlen (x), "AssumeRole", &c, NULL) == -EPROTO,
         "a key id of 299 bytes");
  CHECK (parse ("", 0, "AssumeRole", &c, NULL) == -EPROTO, "empty");
  CHECK (!c.access_key_id, "nothing taken");
}

static char dir[] = "/tmp/cv-test-aws-sts-XXXXXX";

/* What the calls refuse before they send anything. */
static void
check_local_refusals (void)
{
  struct cv_aws_sts sts = { .url = "https://127.0.0.1:9/",
                            .host = "127.0.0.1:9",
                            .region = "us-east-1",
                            .retry = { CV_AWS_RETRY_STANDARD, 3 } };
  struct cv_aws_creds src = { 0 };
  struct cv_aws_creds out = { 0 };
  char path[256];
  const char *role = "arn:aws:iam::111122223333:role/r";

  CHECK (cv_aws_creds_set (&src, "AKIASRC", 7, "srcsecret", 9, NULL, 0,
                           "profile src")
             == 0,
         "source credentials");
  harness_log_clear ();
  CHECK (cv_aws_sts_assume_role (&sts, &src, role, NULL, NULL, 100, NULL, &out)
             == -EINVAL,
         "duration 100");
  CHECK (strstr (harness_logged (),
                 "AssumeRole of role arn:aws:iam::111122223333:role/r with the "
                 "credentials from profile src: duration_seconds 100 is out of "
                 "range: STS takes 900 to 43200 seconds"),
         "message: %s", harness_logged ());
  harness_log_clear ();
  CHECK (
      cv_aws_sts_assume_role (&sts, &src, role, NULL, NULL, 43201, NULL, &out)
          == -EINVAL,
      "duration 43201");

  snprintf (path, sizeof path, "%s/missing", dir);
  harness_log_clear ();
  CHECK (cv_aws_sts_web_identity (&sts, role, NULL, path, 0,
                                  "AWS_WEB_IDENTITY_TOKEN_FILE", &out)
             == -ENOENT,
         "no token file");
  CHECK (strstr (harness_logged (), "sts web identity: cannot read the token "
                                    "file ")
             && strstr (harness_logged (), "No such file or directory; check "
                                           "AWS_WEB_IDENTITY_TOKEN_FILE, which "
                                           "names it; on EKS"),
         "message: %s", harness_logged ());

  snprintf (path, sizeof path, "%s/empty", dir);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0 && write (fd, "\n", 1) == 1, "write %s", path);
  close (fd);
  harness_log_clear ();
  CHECK (cv_aws_sts_web_identity (&sts, role, NULL, path, 0, "profile p", &out)
             == -EINVAL,
         "an empty token file");
  CHECK (strstr (harness_logged (), "is empty; check profile p"), "message: %s",
         harness_logged ());

  snprintf (path, sizeof path, "%s/big", dir);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  CHECK (fd >= 0 && ftruncate (fd, 20001) == 0, "big %s", path);
  close (fd);
  harness_log_clear ();
  CHECK (cv_aws_sts_web_identity (&sts, role, NULL, path, 0, "profile p", &out)
             == -EINVAL,
         "a token file over 20000 bytes");
  CHECK (strstr (harness_logged (), "is too large for a token"), "message: %s",
         harness_logged ());

  harness_log_clear ();
  CHECK (cv_aws_sts_web_identity (&sts, role, NULL, dir, 0, "profile p", &out)
             == -EINVAL,
         "a directory as token file");
  CHECK (strstr (harness_logged (), "is not a regular file"), "message: %s",
         harness_logged ());

  harness_log_clear ();
  CHECK (cv_aws_sts_web_identity (&sts, role, NULL, path, 60, "profile p", &out)
             == -EINVAL,
         "web identity duration 60");
  CHECK (!out.access_key_id, "no credentials");
  unlink (path);
  snprintf (path, sizeof path, "%s/empty", dir);
  unlink (path);

  /* Nothing listens on port 1: every attempt is made, then reported. */
  char *arn = NULL;
  setenv ("CV_KMS_RETRY_BASE_MS", "1", 1);
  cv_kms_quota_reset ();
  harness_log_clear ();
  CHECK (cv_aws_sts_caller_identity (&sts, &src, &arn) == -ECONNREFUSED,
         "STS unreachable");
  CHECK (strstr (harness_logged (),
                 "sts GetCallerIdentity with the credentials from profile src: "
                 "cannot reach AWS STS at https://127.0.0.1:9/ (region "
                 "us-east-1): ")
             && strstr (harness_logged (), ", 3 attempts; check the network"),
         "message: %s", harness_logged ());
  CHECK (!arn, "no ARN");
  sts.retry.max_attempts = 1;
  harness_log_clear ();
  CHECK (cv_aws_sts_assume_role (&sts, &src, role, "s", "x", 900, NULL, &out)
             == -ECONNREFUSED,
         "STS unreachable, one attempt");
  CHECK (!strstr (harness_logged (), " attempts;"), "one attempt: %s",
         harness_logged ());

  /* A timeout or backoff knob that is not a number is refused, not used. */
  static const char *const knobs[]
      = { "CV_KMS_TIMEOUT_MS", "CV_KMS_RETRY_BASE_MS" };
  for (size_t i = 0; i < ARRAY_SIZE (knobs); i++) {
    const char *old = getenv (knobs[i]);
    char *keep = old ? strdup (old) : NULL;
    setenv (knobs[i], "soon", 1);
    harness_log_clear ();
    CHECK (cv_aws_sts_assume_role (&sts, &src, role, "s", "x", 900, NULL, &out)
               == -EINVAL,
           "%s=soon: -EINVAL", knobs[i]);
    CHECK (strstr (harness_logged (), "is not a number of milliseconds"),
           "%s=soon: %s", knobs[i], harness_logged ());
    if (keep)
      setenv (knobs[i], keep, 1);
    else
      unsetenv (knobs[i]);
    free (keep);
  }
  cv_aws_creds_free (&src);
}

int
main (void)
{
  harness_init ();
  cv_log_set_debug (true);
  harness_mkdtemp (dir);
  check_answers ();
  check_entities_in_secrets ();
  check_spoiled ();
  check_truncated ();
  check_limits ();
  CHECK (!strstr (harness_logged (), SECRET)
             && !strstr (harness_logged (), "wJalrXUtnFEMI")
             && !strstr (harness_logged (), "AQoDYXdz"),
         "a secret was logged: %s", harness_logged ());
  check_local_refusals ();
  rmdir (dir);
  return harness_done ("test-keys-aws-sts");
}

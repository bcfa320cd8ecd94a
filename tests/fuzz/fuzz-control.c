/* libFuzzer target: the control protocol's parser and dispatcher
 * (cv_ctl_dispatch) on arbitrary bytes, split into lines as the server
 * splits them, against the fake volume of the unit tests. Every line must
 * get exactly one reply line that is a JSON object with a boolean "ok"; an
 * error reply must say why. make fuzz builds it (build-fuzz/fuzz-control);
 * doc/control.md says how to run it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ctl-fake.h"
#include "ctl/ctl.h"

static void
quiet (enum cv_log_level level, const char *msg)
{}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  cv_log_set_sink (quiet);
  return 0;
}

/* One line: its reply must be one line of JSON, an object with "ok", and
 * "error" (a string) when not ok. */
static void
one (const struct cv_ctl_opts *o, const char *line, size_t len)
{
  static const struct cv_ctl_peer peer = { .uid = 1000, .pid = 1 };
  char *r = cv_ctl_dispatch (o, &peer, line, len);
  size_t rlen = r ? strlen (r) : 0;

  if (!r || rlen == 0 || r[rlen - 1] != '\n' || memchr (r, '\n', rlen - 1))
    abort ();
  json_t *j = json_loadb (r, rlen, 0, NULL);
  json_t *ok = json_object_get (j, "ok");
  if (!json_is_object (j) || !json_is_boolean (ok)
      || (json_is_false (ok)
          && !json_string_length (json_object_get (j, "error"))))
    abort ();
  json_decref (j);
  free (r);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* The first byte chooses how the fake fails, whether it holds a rotation
   * to start, and how many exports the server has (1 to 3; the second is
   * not unlocked). */
  struct fake_vol fake = { .state = "unlocked",
                           .unlock_fails = size && (data[0] & 1),
                           .reload_fails = size && (data[0] & 2),
                           .rot = size && (data[0] & 4) ? "idle" : "none",
                           .uuid = "u" };
  struct fake_vol lazy = { .state = "unlocked", .status_fails = true };
  const struct cv_ctl_export ex[]
      = { { "", "/v", &fake }, { "b", "/b", &lazy }, { "c\xff", "/c", &fake } };
  struct cv_ctl_opts o = { .exports = ex,
                           .nexports = size ? 1 + (data[0] >> 3) % 3 : 1,
                           .ops = &fake_ops };
  const char *p = (const char *) data, *end = p + size;

  while (p < end) {
    const char *nl = memchr (p, '\n', (size_t) (end - p));
    size_t len = (size_t) ((nl ? nl : end) - p);
    if (len < CV_CTL_LINE_MAX) /* longer lines never reach the parser */
      one (&o, p, len);
    p += len + 1;
  }
  return 0;
}

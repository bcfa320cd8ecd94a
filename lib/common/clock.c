#include <time.h>

#include "clock.h"

void
cv_now_rfc3339 (char buf[CV_RFC3339_LEN])
{
  time_t now = time (NULL);
  struct tm tm;

  gmtime_r (&now, &tm);
  strftime (buf, CV_RFC3339_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

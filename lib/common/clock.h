/* The time as the header and the audit log write it. */
#ifndef CV_CLOCK_H
#define CV_CLOCK_H

#define CV_RFC3339_LEN 32 /* buffer size for cv_now_rfc3339 */

/* Now, in UTC, as "YYYY-MM-DDTHH:MM:SSZ", into buf. */
void cv_now_rfc3339 (char buf[CV_RFC3339_LEN]);

#endif

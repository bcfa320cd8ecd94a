/* The requests this process made to key services (KMS request ids), kept so
 * that cryptvol-keymgr's audit log can name them. Never holds key material. */
#ifndef CV_REQLOG_H
#define CV_REQLOG_H

#include <stddef.h>

/* Remember one request: service ("kms"), operation ("Decrypt") and the
 * service's request id. The oldest are dropped past 64. */
void cv_reqlog_add (const char *service, const char *op, const char *id);
/* How many are remembered, and the i-th (0 = oldest) as its parts. */
size_t cv_reqlog_count (void);
void cv_reqlog_get (size_t i, const char **service, const char **op,
                    const char **id);

#endif

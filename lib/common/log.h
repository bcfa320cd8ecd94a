/* Log sink: the code that detects a failure reports it once, through here.
 * The plugin routes messages to nbdkit_error/nbdkit_debug, keymgr to stderr,
 * unit tests to a capture buffer. */
#ifndef CV_LOG_H
#define CV_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum cv_log_level { CV_LOG_ERROR, CV_LOG_WARN, CV_LOG_INFO, CV_LOG_DEBUG };

/* A sink receives one formatted message (no trailing newline). */
typedef void (*cv_log_sink) (enum cv_log_level level, const char *msg);

/* Install sink (NULL restores the default: stderr, debug suppressed). */
void cv_log_set_sink (cv_log_sink sink);
/* Enable or disable CV_LOG_DEBUG messages for the default and custom sinks. */
void cv_log_set_debug (bool on);

void cv_log (enum cv_log_level level, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Hold this thread's messages back instead of passing them on, until
 * cv_log_release: those held before index keep_from (a count from
 * cv_log_held) go on as debug messages, what they said having not mattered
 * in the end (the wraps that failed before one unlocked the volume), the
 * rest at their own level (0: all; SIZE_MAX: all as debug). Not nested. */
void cv_log_hold (void);
size_t cv_log_held (void);
void cv_log_release (size_t keep_from);
/* Drop the messages held from index from on (a count from cv_log_held):
 * what a second attempt said when the first attempt's say it better. */
void cv_log_forget (size_t from);

/* The last message this thread passed on as an error, or "" since
 * cv_log_clear_last_error: for a reply that must say why an operation
 * failed (the control socket). Truncated to 511 bytes. */
const char *cv_log_last_error (void);
void cv_log_clear_last_error (void);

#define cv_err(...) cv_log (CV_LOG_ERROR, __VA_ARGS__)
#define cv_warn(...) cv_log (CV_LOG_WARN, __VA_ARGS__)
#define cv_info(...) cv_log (CV_LOG_INFO, __VA_ARGS__)
#define cv_debug(...) cv_log (CV_LOG_DEBUG, __VA_ARGS__)

#endif

/* Fault points for crash tests. Code that writes state to disk calls
 * cv_fault_point at every step where a crash leaves a distinct state (before
 * and after each header copy, journal write and data write). With the
 * environment variable CV_FAULT_KILL_AT=N the process kills itself with
 * SIGKILL at the N-th point it reaches, as a power cut or kill -9 would;
 * CV_FAULT_TRACE=1 prints each point to stderr, so a test can count them.
 * Without these variables a fault point does nothing. */
#ifndef CV_FAULT_H
#define CV_FAULT_H

void cv_fault_point (const char *where);

#endif

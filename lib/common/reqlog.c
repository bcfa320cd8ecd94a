#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "reqlog.h"

#define MAX 64

static struct {
  char service[16], op[48], id[96];
} entries[MAX];
static size_t count; /* total added; entries[count % MAX] is the next slot */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void
cv_reqlog_add (const char *service, const char *op, const char *id)
{
  pthread_mutex_lock (&lock);
  size_t i = count++ % MAX;
  snprintf (entries[i].service, sizeof entries[i].service, "%s", service);
  snprintf (entries[i].op, sizeof entries[i].op, "%s", op);
  snprintf (entries[i].id, sizeof entries[i].id, "%s", id ? id : "");
  pthread_mutex_unlock (&lock);
}

size_t
cv_reqlog_count (void)
{
  return count < MAX ? count : MAX;
}

void
cv_reqlog_get (size_t i, const char **service, const char **op, const char **id)
{
  size_t first = count < MAX ? 0 : count - MAX;
  size_t k = (first + i) % MAX;

  *service = entries[k].service;
  *op = entries[k].op;
  *id = entries[k].id;
}

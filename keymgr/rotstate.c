/* An unfinished DEK rotation as info and verify show it: how far it got, and
 * whether it is running now (a server or rotate-dek holds the volume) or was
 * interrupted, with what continues it. */
#include <stdio.h>
#include <string.h>

#include "format/header.h"
#include "keymgr.h"

/* boundary as a whole percentage of size, rounded down (100 only at the
 * end). */
static unsigned
percent (uint64_t boundary, uint64_t size)
{
  if (size == 0 || boundary >= size)
    return 100;
  return (unsigned) ((unsigned __int128) boundary * 100 / size);
}

json_t *
rotation_state (const struct cv_header *h, struct cv_dev *d)
{
  const char *name = d->name;
  struct cv_hdr_rotation r;
  const char *state, *next;
  int holder;

  if (!cv_hdr_rotating (h) || cv_hdr_rotation_get (h, name, &r) < 0)
    return NULL;
  holder = cv_lock_in_use_holder (d);
  if (holder == 2) {
    state = "running";
    next = "cryptvol-keymgr rotate-dek has the volume open and is rotating it";
  } else if (holder == 1) {
    state = "served";
    next = "a server has the volume open: it continues the rotation unless "
           "it serves read-only or with rotate=manual (then: cryptvol-keymgr "
           "rotate-dek VOLUME --control SOCKET)";
  } else {
    state = "interrupted";
    next = "continue with cryptvol-keymgr rotate-dek or serve with "
           "rotate=auto";
  }
  return json_pack ("{s:s, s:i, s:I, s:I, s:s, s:s, s:s}", "state", state,
                    "percent", (int) percent (r.boundary, cv_hdr_size (h)),
                    "boundary", (json_int_t) r.boundary, "size",
                    (json_int_t) cv_hdr_size (h), "id", r.id, "started",
                    r.started, "next", next);
}

void
rotation_state_print (const json_t *r)
{
  const char *state = json_string_value (json_object_get (r, "state"));
  const char *how = strcmp (state, "interrupted") == 0 ? "interrupted at "
                    : strcmp (state, "running") == 0   ? "in progress at "
                                                       : "";

  printf ("DEK rotation: %s%d%%%s (boundary %lld of %lld bytes); %s\n", how,
          (int) json_integer_value (json_object_get (r, "percent")),
          *how ? "" : " done",
          (long long) json_integer_value (json_object_get (r, "boundary")),
          (long long) json_integer_value (json_object_get (r, "size")),
          json_string_value (json_object_get (r, "next")));
}

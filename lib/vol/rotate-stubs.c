/* TEMP: stand-ins for the online rotation engine until it lands on main
 * (branch ctlkm only; dropped at merge). */
#include <errno.h>
#include <string.h>

#include "vol/volume.h"

int
cv_rot_prepare (struct cv_header *h, const char *path, const char *hname,
                const struct cv_creds *c, const struct cv_key *dek,
                uint64_t step, bool online)
{
  return -ENOSYS;
}

int
cv_vol_rotate_start (struct cv_vol *v, double rate_mib_s)
{
  return -ENOSYS;
}

int
cv_vol_rotate_pause (struct cv_vol *v)
{
  return -ENOSYS;
}

int
cv_vol_rotate_resume (struct cv_vol *v)
{
  return -ENOSYS;
}

int
cv_vol_rotate_set_rate (struct cv_vol *v, double rate_mib_s)
{
  return -ENOSYS;
}

void
cv_vol_rotate_stop (struct cv_vol *v)
{}

void
cv_vol_rotate_status (struct cv_vol *v, struct cv_rot_status *st)
{
  memset (st, 0, sizeof *st);
  strcpy (st->state, "none");
  strcpy (st->journal, "clean");
  st->eta_s = -1;
}

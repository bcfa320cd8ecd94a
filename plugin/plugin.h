/* What the plugin's two files share: config.c turns nbdkit parameters,
 * volumes=FILE and dir=DIR into the exports; cryptvol.c unlocks and serves
 * them. Both talk to nbdkit (nbdkit_error, its parsers); nothing in lib/
 * does. */
#ifndef CV_PLUGIN_H
#define CV_PLUGIN_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "ctl/ctl.h"
#include "io/backend.h"
#include "keys/keys.h"
#include "vol/volume.h"

/* How to open one volume: every per-volume parameter. The command line's
 * are the defaults each export of volumes=FILE or dir=DIR starts from. Paths
 * are absolute: nbdkit changes directory to / when it forks, and lazy
 * unlocks, the key watch and adopted rotations open files after that. */
struct vol_params {
  const char *path, *header;
  struct cv_creds creds; /* passphrase, pin: owned, or the defaults' */
  struct cv_wrap_sel wraps;
  bool wraps_own; /* wrap= given in the stanza: it replaces the defaults' */
  struct cv_watch_opts watch;
  bool direct, readonly;
  enum cv_read_path read_path;
  bool rotate_manual;     /* rotate=manual: only the control socket starts */
  double rotate_rate;     /* rotate-rate=: MiB/s, 0 unlimited */
  struct cv_rbd_opts rbd; /* ceph-conf=, ceph-id=, ceph-keyring=,
                             ceph-timeout=, takeover= */
};

/* One export: a volume served under a name. */
struct export
{
  char *name; /* "" for the single volume= */
  struct vol_params p;
  pthread_mutex_t lock; /* one unlock at a time */
  struct cv_vol *vol;   /* set once, when unlocked (read atomically) */
  char *why;            /* why the last unlock failed; NULL: none */
  time_t tried;         /* when (CLOCK_MONOTONIC seconds) */
};

/* The server's parameters (config.c). */
struct server_params {
  bool multi; /* volumes= or dir=: exports by name */
  bool lazy;  /* unlock=lazy */
  unsigned unlock_parallel;
  enum cv_io_kind io_kind;   /* io=; CV_IO_AUTO */
  enum cv_xts_impl xts_impl; /* xts-engine=; CV_XTS_AUTO */
  char *control_path, *audit_path;
  gid_t control_gid; /* (gid_t) -1: none */
};

extern struct server_params server;
extern struct export *exports;
extern size_t nexports;

/* .config, .config_complete: every export made, paths absolute. 0 or -1
 * (reported). */
int config_param (const char *key, const char *value);
int config_complete (void);
/* The secrets the parameters hold (passphrases, PINs), once no export needs
 * them; then everything else, at unload. */
void config_drop_secrets (void);
void config_free (void);

#endif

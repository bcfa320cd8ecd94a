/* Ceph RBD images as stores (rbd.c): volume paths "rbd:POOL/IMAGE" and
 * "rbd:POOL/NAMESPACE/IMAGE", read and written through librbd inside the
 * process (no kernel module, no rbd-nbd).
 *
 * One image handle per image, shared (refcounted) by the header device
 * (cv_dev_open) and the data store (cv_io_open) of a volume, so that the
 * process is one client of the image; each image handle has its own cluster
 * connection, so that a takeover (which blocklists the holder's connection)
 * fences that image only. An image opened for writing takes
 * RBD's exclusive lock (rbd_lock_acquire, RBD_LOCK_MODE_EXCLUSIVE) and holds
 * it until its last handle closes: another client's writes fail, and a
 * second cryptvol opening it for writing is refused with a message naming
 * the holder. With takeover, the lock of the holder is broken (librbd
 * blocklists the holder, so its late writes fail) and taken. Opened
 * read-only, an image takes no lock. */
#ifndef CV_IO_RBD_H
#define CV_IO_RBD_H

#include <stdbool.h>
#include <stdint.h>

/* Where the cluster is and who we are to it. NULL members: Ceph's own
 * defaults (CEPH_CONF, CEPH_ARGS, /etc/ceph/ceph.conf, ~/.ceph/config,
 * ./ceph.conf; client.admin; the keyring the configuration names). */
struct cv_rbd_opts {
  const char *conf;    /* ceph.conf */
  const char *id;      /* client id, without "client." */
  const char *keyring; /* keyring file */
  bool takeover;       /* break another client's exclusive lock */
  unsigned timeout_s;  /* monitor, OSD and mount timeouts; 0: 30 s */
};

#define CV_RBD_NAME_MAX 256
struct cv_rbd_spec {
  char pool[CV_RBD_NAME_MAX];
  char ns[CV_RBD_NAME_MAX]; /* "" when none */
  char image[CV_RBD_NAME_MAX];
};

/* True if path names an RBD image ("rbd:" prefix). */
bool cv_rbd_is_path (const char *path);
/* Parse "rbd:POOL/IMAGE" or "rbd:POOL/NAMESPACE/IMAGE". Returns 0, or
 * -EINVAL with a message that says what is wrong (logged). */
int cv_rbd_parse (const char *path, struct cv_rbd_spec *s);

/* Create the image at path (features layering, exclusive-lock, object-map,
 * fast-diff, deep-flatten) of size bytes. Returns 0, -EEXIST (not logged:
 * the caller may format the image that exists) or -errno (logged). */
int cv_rbd_create (const char *path, const struct cv_rbd_opts *o,
                   uint64_t size);
/* Remove the image at path (undoing a create that failed later). Returns 0
 * or -errno (logged). */
int cv_rbd_remove (const char *path, const struct cv_rbd_opts *o);

#endif

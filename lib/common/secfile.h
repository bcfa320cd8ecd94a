/* Secret files (key, passphrase, PIN, imported key, grant token): one check
 * of who else can read them, the same warning everywhere. */
#ifndef CV_SECFILE_H
#define CV_SECFILE_H

/* Warn (cv_warn, once) when the secret file open on fd is a regular file that
 * group or others can access: the message names what ("passphrase file"),
 * name (NULL: the path the fd was opened with, from /proc/self/fd, for
 * --passphrase-fd N), the mode and the fix (chmod 600 NAME). Pipes, terminals
 * and devices
 * are not checked (their mode says nothing about the secret). Never refuses:
 * 0, or -errno if fstat fails (not logged: the caller's read will say). */
int cv_secret_fd_check (int fd, const char *what, const char *name);

/* The same for the file at path, for secrets another library opens (nbdkit's
 * +FILE passwords): stat follows symlinks as that open will. 0, or -errno if
 * stat fails (not logged, as above). */
int cv_secret_path_check (const char *path, const char *what);

#endif

/* The version of cryptvol: the plugin's .version, cryptvol-keymgr --version
 * and the man pages' footer (the Makefile reads it from here). */
#ifndef CV_VERSION_H
#define CV_VERSION_H

#define CV_VERSION "0.1"

#endif

build-tsan/obj/lib/ctl/ctl-vol.o: lib/ctl/ctl-vol.c lib/ctl/ctl.h \
 lib/format/header.h lib/vol/volume.h lib/io/backend.h lib/keys/keys.h
lib/ctl/ctl.h:
lib/format/header.h:
lib/vol/volume.h:
lib/io/backend.h:
lib/keys/keys.h:

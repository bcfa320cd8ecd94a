build-tsan/obj/lib/vol/keystate.o: lib/vol/keystate.c lib/common/log.h \
 lib/common/reqlog.h lib/crypto/secmem.h lib/format/header.h \
 lib/keys/keys.h lib/vol/vol-internal.h lib/vol/volume.h lib/io/backend.h \
 lib/vol/volume.h
lib/common/log.h:
lib/common/reqlog.h:
lib/crypto/secmem.h:
lib/format/header.h:
lib/keys/keys.h:
lib/vol/vol-internal.h:
lib/vol/volume.h:
lib/io/backend.h:
lib/vol/volume.h:

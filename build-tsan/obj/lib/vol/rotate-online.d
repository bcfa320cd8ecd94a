build-tsan/obj/lib/vol/rotate-online.o: lib/vol/rotate-online.c \
 lib/common/cleanup.h lib/common/log.h lib/crypto/secmem.h \
 lib/format/header.h lib/keys/keys.h lib/vol/vol-internal.h \
 lib/vol/volume.h lib/io/backend.h lib/vol/volume.h
lib/common/cleanup.h:
lib/common/log.h:
lib/crypto/secmem.h:
lib/format/header.h:
lib/keys/keys.h:
lib/vol/vol-internal.h:
lib/vol/volume.h:
lib/io/backend.h:
lib/vol/volume.h:

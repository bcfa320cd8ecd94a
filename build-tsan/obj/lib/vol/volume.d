build-tsan/obj/lib/vol/volume.o: lib/vol/volume.c lib/common/cleanup.h \
 lib/common/log.h lib/crypto/secmem.h lib/crypto/xts.h \
 lib/format/header.h lib/io/backend.h lib/vol/vol-internal.h \
 lib/vol/volume.h lib/keys/keys.h lib/vol/volume.h
lib/common/cleanup.h:
lib/common/log.h:
lib/crypto/secmem.h:
lib/crypto/xts.h:
lib/format/header.h:
lib/io/backend.h:
lib/vol/vol-internal.h:
lib/vol/volume.h:
lib/keys/keys.h:
lib/vol/volume.h:

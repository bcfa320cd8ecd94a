build-tsan/obj/lib/vol/rotate.o: lib/vol/rotate.c lib/common/clock.h \
 lib/common/bytes.h lib/common/cleanup.h lib/common/encode.h \
 lib/common/fault.h lib/common/fdio.h lib/common/log.h lib/crypto/prim.h \
 lib/crypto/secmem.h lib/crypto/xts.h lib/format/header.h \
 lib/io/backend.h lib/vol/vol-internal.h lib/vol/volume.h lib/keys/keys.h \
 lib/vol/volume.h
lib/common/clock.h:
lib/common/bytes.h:
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/fault.h:
lib/common/fdio.h:
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/crypto/xts.h:
lib/format/header.h:
lib/io/backend.h:
lib/vol/vol-internal.h:
lib/vol/volume.h:
lib/keys/keys.h:
lib/vol/volume.h:

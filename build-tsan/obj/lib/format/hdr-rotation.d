build-tsan/obj/lib/format/hdr-rotation.o: lib/format/hdr-rotation.c \
 lib/common/cleanup.h lib/common/encode.h lib/common/log.h \
 lib/crypto/prim.h lib/crypto/xts.h lib/format/header-internal.h \
 lib/format/header.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/xts.h:
lib/format/header-internal.h:
lib/format/header.h:

build-tsan/obj/lib/format/header.o: lib/format/header.c \
 lib/common/clock.h lib/common/bytes.h lib/common/cleanup.h \
 lib/common/encode.h lib/common/fault.h lib/common/fdio.h \
 lib/common/log.h lib/crypto/prim.h lib/crypto/secmem.h lib/crypto/xts.h \
 lib/format/header-internal.h lib/format/header.h
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
lib/format/header-internal.h:
lib/format/header.h:

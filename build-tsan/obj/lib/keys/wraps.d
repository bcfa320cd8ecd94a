build-tsan/obj/lib/keys/wraps.o: lib/keys/wraps.c lib/common/cleanup.h \
 lib/common/log.h lib/crypto/secmem.h lib/crypto/xts.h \
 lib/format/header.h lib/keys/keys.h lib/keys/providers.h
lib/common/cleanup.h:
lib/common/log.h:
lib/crypto/secmem.h:
lib/crypto/xts.h:
lib/format/header.h:
lib/keys/keys.h:
lib/keys/providers.h:

build-tsan/obj/lib/keys/check.o: lib/keys/check.c lib/common/cleanup.h \
 lib/common/log.h lib/crypto/secmem.h lib/format/header.h lib/keys/keys.h \
 lib/keys/providers.h
lib/common/cleanup.h:
lib/common/log.h:
lib/crypto/secmem.h:
lib/format/header.h:
lib/keys/keys.h:
lib/keys/providers.h:

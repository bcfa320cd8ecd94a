build-tsan/obj/lib/keys/unlock.o: lib/keys/unlock.c lib/common/cleanup.h \
 lib/common/log.h lib/crypto/secmem.h lib/format/header.h lib/keys/keys.h \
 lib/keys/providers.h
lib/common/cleanup.h:
lib/common/log.h:
lib/crypto/secmem.h:
lib/format/header.h:
lib/keys/keys.h:
lib/keys/providers.h:

build-tsan/obj/lib/keys/kms.o: lib/keys/kms.c lib/common/clock.h \
 lib/common/cleanup.h lib/common/encode.h lib/common/log.h \
 lib/crypto/secmem.h lib/crypto/xts.h lib/format/header.h lib/keys/keys.h \
 lib/keys/kms.h lib/keys/providers.h
lib/common/clock.h:
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/log.h:
lib/crypto/secmem.h:
lib/crypto/xts.h:
lib/format/header.h:
lib/keys/keys.h:
lib/keys/kms.h:
lib/keys/providers.h:

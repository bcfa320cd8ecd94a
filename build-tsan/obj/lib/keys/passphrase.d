build-tsan/obj/lib/keys/passphrase.o: lib/keys/passphrase.c \
 lib/common/cleanup.h lib/common/encode.h lib/common/log.h \
 lib/crypto/prim.h lib/crypto/secmem.h lib/keys/aead_wrap.h \
 lib/keys/keys.h lib/keys/providers.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/keys/aead_wrap.h:
lib/keys/keys.h:
lib/keys/providers.h:

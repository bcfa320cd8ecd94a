build-tsan/obj/lib/keys/file.o: lib/keys/file.c lib/common/cleanup.h \
 lib/common/encode.h lib/common/fdio.h lib/common/log.h lib/crypto/prim.h \
 lib/crypto/secmem.h lib/keys/aead_wrap.h lib/keys/keys.h \
 lib/keys/providers.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/fdio.h:
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/keys/aead_wrap.h:
lib/keys/keys.h:
lib/keys/providers.h:

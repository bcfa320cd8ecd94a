build-tsan/obj/lib/keys/pkcs11.o: lib/keys/pkcs11.c lib/common/cleanup.h \
 lib/common/encode.h lib/common/log.h lib/crypto/prim.h \
 lib/crypto/secmem.h lib/keys/keys.h lib/keys/pkcs11-token.h \
 /usr/include/p11-kit-1/p11-kit/pkcs11.h \
 /usr/include/p11-kit-1/p11-kit/uri.h lib/keys/providers.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/keys/keys.h:
lib/keys/pkcs11-token.h:
/usr/include/p11-kit-1/p11-kit/pkcs11.h:
/usr/include/p11-kit-1/p11-kit/uri.h:
lib/keys/providers.h:

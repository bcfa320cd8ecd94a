build-tsan/obj/lib/keys/pkcs11-token.o: lib/keys/pkcs11-token.c \
 lib/common/cleanup.h lib/common/encode.h lib/common/fdio.h \
 lib/common/log.h lib/common/text.h lib/crypto/secmem.h lib/keys/keys.h \
 lib/keys/pkcs11-token.h /usr/include/p11-kit-1/p11-kit/pkcs11.h \
 /usr/include/p11-kit-1/p11-kit/uri.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/fdio.h:
lib/common/log.h:
lib/common/text.h:
lib/crypto/secmem.h:
lib/keys/keys.h:
lib/keys/pkcs11-token.h:
/usr/include/p11-kit-1/p11-kit/pkcs11.h:
/usr/include/p11-kit-1/p11-kit/uri.h:

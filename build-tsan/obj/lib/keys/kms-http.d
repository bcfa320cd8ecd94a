build-tsan/obj/lib/keys/kms-http.o: lib/keys/kms-http.c \
 lib/common/cleanup.h lib/common/log.h lib/common/reqlog.h \
 lib/crypto/prim.h lib/crypto/secmem.h lib/keys/kms.h \
 lib/keys/providers.h lib/keys/keys.h lib/keys/sigv4.h
lib/common/cleanup.h:
lib/common/log.h:
lib/common/reqlog.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/keys/kms.h:
lib/keys/providers.h:
lib/keys/keys.h:
lib/keys/sigv4.h:

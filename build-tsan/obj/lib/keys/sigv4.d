build-tsan/obj/lib/keys/sigv4.o: lib/keys/sigv4.c lib/common/cleanup.h \
 lib/common/encode.h lib/crypto/prim.h lib/crypto/secmem.h \
 lib/keys/sigv4.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/keys/sigv4.h:

build-tsan/obj/lib/crypto/prim.o: lib/crypto/prim.c lib/common/log.h \
 lib/crypto/prim.h lib/crypto/secmem.h
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:

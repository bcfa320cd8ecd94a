build-tsan/obj/lib/crypto/xts.o: lib/crypto/xts.c lib/common/cleanup.h \
 lib/common/log.h lib/crypto/prim.h lib/crypto/secmem.h lib/crypto/xts.h
lib/common/cleanup.h:
lib/common/log.h:
lib/crypto/prim.h:
lib/crypto/secmem.h:
lib/crypto/xts.h:

build-tsan/obj/lib/crypto/secmem.o: lib/crypto/secmem.c lib/common/log.h \
 lib/crypto/secmem.h
lib/common/log.h:
lib/crypto/secmem.h:

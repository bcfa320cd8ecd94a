build-tsan/obj/lib/keys/kms-creds.o: lib/keys/kms-creds.c \
 lib/common/cleanup.h lib/common/fdio.h lib/common/log.h \
 lib/common/text.h lib/crypto/secmem.h lib/keys/kms.h
lib/common/cleanup.h:
lib/common/fdio.h:
lib/common/log.h:
lib/common/text.h:
lib/crypto/secmem.h:
lib/keys/kms.h:

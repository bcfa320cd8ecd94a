build-tsan/obj/tests/unit/test-vol-rotate-online.o: \
 tests/unit/test-vol-rotate-online.c tests/unit/test-vol-model.h \
 lib/common/cleanup.h lib/crypto/secmem.h lib/crypto/xts.h \
 lib/format/header.h tests/unit/harness.h lib/common/log.h \
 lib/common/encode.h lib/keys/keys.h lib/vol/volume.h lib/io/backend.h
tests/unit/test-vol-model.h:
lib/common/cleanup.h:
lib/crypto/secmem.h:
lib/crypto/xts.h:
lib/format/header.h:
tests/unit/harness.h:
lib/common/log.h:
lib/common/encode.h:
lib/keys/keys.h:
lib/vol/volume.h:
lib/io/backend.h:

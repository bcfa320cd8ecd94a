build-tsan/obj/lib/io/posix.o: lib/io/posix.c lib/common/cleanup.h \
 lib/common/fdio.h lib/common/log.h lib/io/io-internal.h lib/io/backend.h
lib/common/cleanup.h:
lib/common/fdio.h:
lib/common/log.h:
lib/io/io-internal.h:
lib/io/backend.h:

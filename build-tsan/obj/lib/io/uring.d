build-tsan/obj/lib/io/uring.o: lib/io/uring.c lib/common/cleanup.h \
 lib/common/fdio.h lib/common/log.h lib/io/io-internal.h lib/io/backend.h \
 lib/io/uring.h
lib/common/cleanup.h:
lib/common/fdio.h:
lib/common/log.h:
lib/io/io-internal.h:
lib/io/backend.h:
lib/io/uring.h:

build-tsan/obj/lib/io/file.o: lib/io/file.c lib/common/cleanup.h \
 lib/common/log.h lib/io/io-internal.h lib/io/backend.h
lib/common/cleanup.h:
lib/common/log.h:
lib/io/io-internal.h:
lib/io/backend.h:

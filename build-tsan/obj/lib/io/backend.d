build-tsan/obj/lib/io/backend.o: lib/io/backend.c lib/common/log.h \
 lib/io/io-internal.h lib/io/backend.h
lib/common/log.h:
lib/io/io-internal.h:
lib/io/backend.h:

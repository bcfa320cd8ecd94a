build-tsan/obj/lib/format/lock.o: lib/format/lock.c lib/common/log.h \
 lib/format/header.h
lib/common/log.h:
lib/format/header.h:

build-tsan/obj/lib/format/hdr-wraps.o: lib/format/hdr-wraps.c \
 lib/common/cleanup.h lib/common/clock.h lib/common/log.h \
 lib/format/header-internal.h lib/format/header.h
lib/common/cleanup.h:
lib/common/clock.h:
lib/common/log.h:
lib/format/header-internal.h:
lib/format/header.h:

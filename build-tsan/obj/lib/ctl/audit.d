build-tsan/obj/lib/ctl/audit.o: lib/ctl/audit.c lib/common/cleanup.h \
 lib/common/clock.h lib/common/log.h lib/ctl/audit.h
lib/common/cleanup.h:
lib/common/clock.h:
lib/common/log.h:
lib/ctl/audit.h:

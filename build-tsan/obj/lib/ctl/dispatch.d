build-tsan/obj/lib/ctl/dispatch.o: lib/ctl/dispatch.c \
 lib/common/cleanup.h lib/common/log.h lib/ctl/audit.h lib/ctl/ctl.h
lib/common/cleanup.h:
lib/common/log.h:
lib/ctl/audit.h:
lib/ctl/ctl.h:

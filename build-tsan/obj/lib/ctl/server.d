build-tsan/obj/lib/ctl/server.o: lib/ctl/server.c lib/common/cleanup.h \
 lib/common/log.h lib/ctl/audit.h lib/ctl/ctl.h
lib/common/cleanup.h:
lib/common/log.h:
lib/ctl/audit.h:
lib/ctl/ctl.h:

build-tsan/obj/lib/common/reqlog.o: lib/common/reqlog.c \
 lib/common/reqlog.h
lib/common/reqlog.h:

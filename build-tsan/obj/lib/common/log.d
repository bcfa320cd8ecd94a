build-tsan/obj/lib/common/log.o: lib/common/log.c lib/common/log.h
lib/common/log.h:

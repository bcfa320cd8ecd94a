build-tsan/obj/lib/common/encode.o: lib/common/encode.c \
 lib/common/encode.h
lib/common/encode.h:

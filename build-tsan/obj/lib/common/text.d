build-tsan/obj/lib/common/text.o: lib/common/text.c lib/common/text.h
lib/common/text.h:

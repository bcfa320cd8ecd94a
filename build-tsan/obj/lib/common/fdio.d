build-tsan/obj/lib/common/fdio.o: lib/common/fdio.c lib/common/fdio.h
lib/common/fdio.h:

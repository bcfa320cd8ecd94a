build-tsan/obj/lib/common/fault.o: lib/common/fault.c lib/common/fault.h
lib/common/fault.h:

build-tsan/obj/lib/vol/watch.o: lib/vol/watch.c lib/common/log.h \
 lib/crypto/prim.h lib/vol/vol-internal.h lib/vol/volume.h \
 lib/io/backend.h lib/keys/keys.h lib/vol/volume.h
lib/common/log.h:
lib/crypto/prim.h:
lib/vol/vol-internal.h:
lib/vol/volume.h:
lib/io/backend.h:
lib/keys/keys.h:
lib/vol/volume.h:

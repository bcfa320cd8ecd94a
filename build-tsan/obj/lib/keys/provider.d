build-tsan/obj/lib/keys/provider.o: lib/keys/provider.c \
 lib/common/cleanup.h lib/common/encode.h lib/common/log.h \
 lib/keys/keys.h lib/keys/providers.h
lib/common/cleanup.h:
lib/common/encode.h:
lib/common/log.h:
lib/keys/keys.h:
lib/keys/providers.h:

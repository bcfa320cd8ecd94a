# cryptvol: one entry point. `make` builds, `make check` installs what is
# missing, builds and runs every test, `make demo` serves a demo volume.

B        := build
CC       ?= cc
PKGS     := openssl libgcrypt jansson liburing libargon2 libcurl p11-kit-1
CFLAGS   ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter \
            -Wvla -Wformat=2 -fPIC -D_GNU_SOURCE -Ilib \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Warnings fail the build in CI (CI=true, as CI services set it; .ci/run sets
# WERROR=1) and wherever WERROR=1 is given; WERROR=0 turns that off.
WERROR   ?= $(if $(filter true,$(CI)),1,0)
ifeq ($(WERROR),1)
override CFLAGS += -Werror
endif
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -ldl -lm
NBD_LIBS := $(shell pkg-config --libs libnbd 2>/dev/null)
DEPFLAGS  = -MMD -MP

LIB_SRCS    := $(sort $(wildcard lib/*/*.c))
PLUGIN_SRCS := $(sort $(wildcard plugin/*.c))
KEYMGR_SRCS := $(sort $(wildcard keymgr/*.c))
UNIT_SRCS   := $(sort $(wildcard tests/unit/test-*.c))
TOOL_SRCS   := $(sort $(wildcard tests/tools/*.c))
BENCH_SRCS  := $(sort $(wildcard bench/*.c))

LIB      := $(B)/libcryptvol.a
PLUGIN   := $(B)/nbdkit-cryptvol-plugin.so
KEYMGR   := $(B)/cryptvol-keymgr
UNITS    := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
TOOLS    := $(TOOL_SRCS:tests/tools/%.c=$(B)/tools/%)
BENCH    := $(if $(BENCH_SRCS),$(B)/cryptvol-bench)
MANS     := $(B)/man/nbdkit-cryptvol-plugin.1 $(B)/man/cryptvol-keymgr.8

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

ifeq ($(V),)
Q = @
quiet = @printf '  %-7s %s\n' $(1) $(2);
endif

.PHONY: all deps check check-unit check-integration demo bench install \
        format format-check clean sanitize fuzz
all: $(LIB) $(PLUGIN) $(KEYMGR) $(UNITS) $(TOOLS) $(BENCH) $(MANS)

deps:
	$(Q)scripts/install-deps.sh

$(B)/obj/%.o: %.c
	$(call quiet,CC,$<)mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# struct cv_header is private to lib/format: elsewhere (but in the tests,
# which build headers field by field) including its definition fails.
$(call obj,$(filter-out lib/format/%,$(LIB_SRCS)) $(PLUGIN_SRCS) \
  $(KEYMGR_SRCS) $(BENCH_SRCS)): CPPFLAGS += -DCV_HEADER_OPAQUE

$(LIB): $(call obj,$(LIB_SRCS))
	$(call quiet,AR,$@)rm -f $@ && ar rcs $@ $^

# nodelete: OpenSSL and libgcrypt (which stay loaded) call our allocator
# hooks (lib/crypto/secheap.c) until the process exits, after nbdkit has
# unloaded the plugin; unmapped, they would crash nbdkit on its way out.
$(PLUGIN): $(call obj,$(PLUGIN_SRCS)) $(LIB)
	$(call quiet,LD,$@)$(CC) -shared \
	  -Wl,--version-script=plugin/plugin.syms -Wl,-z,nodelete -o $@ $^ $(LDLIBS)

$(KEYMGR): $(call obj,$(KEYMGR_SRCS)) $(LIB)
	$(call quiet,LD,$@)$(CC) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIB)
	$(call quiet,LD,$@)mkdir -p $(@D) && $(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tools/%: $(B)/obj/tests/tools/%.o $(LIB)
	$(call quiet,LD,$@)mkdir -p $(@D) && $(CC) -o $@ $^ $(NBD_LIBS) $(LDLIBS)

# The launcher that refuses io_uring (seccomp) needs libseccomp, and only it.
$(B)/tools/no-uring: $(B)/obj/tests/tools/no-uring.o
	$(call quiet,LD,$@)mkdir -p $(@D) && $(CC) -o $@ $^ -lseccomp

$(B)/cryptvol-bench: $(call obj,$(BENCH_SRCS)) $(LIB)
	$(call quiet,LD,$@)$(CC) -o $@ $^ $(NBD_LIBS) $(LDLIBS)

$(B)/man/%.1 $(B)/man/%.8: doc/%.pod
	$(call quiet,POD2MAN,$@)mkdir -p $(@D) && podchecker -nowarnings $< 2>/dev/null && \
	  pod2man --center=cryptvol --release=cryptvol --section=$(subst .,,$(suffix $@)) \
	    --name=$(basename $(@F)) $< $@

# The unit tests and the plugin again under AddressSanitizer and
# UndefinedBehaviorSanitizer, in their own build tree; tests/run runs the
# unit tests as "asan-test-*", test-nbdkit-asan.sh the plugin in nbdkit.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
sanitize:
	$(Q)$(MAKE) --no-print-directory B=build-san CFLAGS="$(SAN_FLAGS)" \
	  LDFLAGS="$(SAN_FLAGS)" $(patsubst $(B)/%,build-san/%,$(UNITS) $(PLUGIN))

# Fuzz targets for the parsers of untrusted input (libFuzzer: clang only),
# built with the sources they need under ASan and UBSan in build-fuzz/.
# test-fuzz-control.sh and test-fuzz-aws-config.sh run them briefly from
# their seed corpora.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all -std=gnu11 -D_GNU_SOURCE -Ilib \
              -Itests/unit $(shell pkg-config --cflags jansson 2>/dev/null)
FUZZ_CONTROL_SRCS := tests/fuzz/fuzz-control.c lib/ctl/dispatch.c \
                     lib/ctl/audit.c lib/common/log.c lib/common/clock.c
FUZZ_AWS_CONFIG_SRCS := tests/fuzz/fuzz-aws-config.c lib/keys/aws-config.c \
                        lib/crypto/secmem.c lib/crypto/secheap.c \
                        lib/common/log.c lib/common/fdio.c
FUZZ_AWS_CREDS_SRCS := tests/fuzz/fuzz-aws-creds.c lib/keys/aws-creds.c \
                       lib/crypto/secmem.c lib/crypto/secheap.c \
                       lib/common/log.c
fuzz: build-fuzz/fuzz-control build-fuzz/fuzz-aws-config \
      build-fuzz/fuzz-aws-creds
build-fuzz/fuzz-control: $(FUZZ_CONTROL_SRCS) tests/unit/ctl-fake.h lib/ctl/ctl.h
	$(call quiet,FUZZ,$@)mkdir -p $(@D) && $(FUZZ_CC) $(FUZZ_FLAGS) -o $@ \
	  $(FUZZ_CONTROL_SRCS) $(shell pkg-config --libs jansson 2>/dev/null)
build-fuzz/fuzz-aws-config: $(FUZZ_AWS_CONFIG_SRCS) lib/keys/aws.h
	$(call quiet,FUZZ,$@)mkdir -p $(@D) && $(FUZZ_CC) $(FUZZ_FLAGS) -o $@ \
	  $(FUZZ_AWS_CONFIG_SRCS) \
	  $(shell pkg-config --libs jansson libcrypto libgcrypt 2>/dev/null)
build-fuzz/fuzz-aws-creds: $(FUZZ_AWS_CREDS_SRCS) lib/keys/aws.h
	$(call quiet,FUZZ,$@)mkdir -p $(@D) && $(FUZZ_CC) $(FUZZ_FLAGS) -o $@ \
	  $(FUZZ_AWS_CREDS_SRCS) \
	  $(shell pkg-config --libs jansson libcrypto libgcrypt 2>/dev/null)

# fuzz-aws-sts: the STS answer reader, aws-sts.c instrumented, the rest of
# the library as built. test-fuzz-aws-sts.sh runs it from its seed corpus.
FUZZ_AWS_STS_SRCS := tests/fuzz/fuzz-aws-sts.c lib/keys/aws-sts.c
fuzz: build-fuzz/fuzz-aws-sts
build-fuzz/fuzz-aws-sts: $(FUZZ_AWS_STS_SRCS) $(LIB) lib/keys/aws.h
	$(call quiet,FUZZ,$@)mkdir -p $(@D) && $(FUZZ_CC) $(FUZZ_FLAGS) \
	  $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -o $@ \
	  $(FUZZ_AWS_STS_SRCS) $(LIB) $(LDLIBS)

# make check: install what is missing, build, run every test. The runner
# prints "N passed, N failed, N skipped" and exits non-zero on any failure.
check: deps
	$(Q)$(MAKE) --no-print-directory all sanitize
	$(Q)tests/run

check-unit: all
	$(Q)tests/run unit

check-integration: all
	$(Q)tests/run integration

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run-bench.sh

PREFIX ?= /usr/local
install: all
	install -D -m 0755 $(KEYMGR) $(DESTDIR)$(PREFIX)/bin/cryptvol-keymgr
	install -D -m 0755 $(PLUGIN) \
	  $(DESTDIR)$$(nbdkit --dump-config | sed -n 's/^plugindir=//p')/nbdkit-cryptvol-plugin.so
	install -D -m 0644 $(B)/man/nbdkit-cryptvol-plugin.1 $(DESTDIR)$(PREFIX)/share/man/man1/nbdkit-cryptvol-plugin.1
	install -D -m 0644 $(B)/man/cryptvol-keymgr.8 $(DESTDIR)$(PREFIX)/share/man/man8/cryptvol-keymgr.8

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(B) build-san build-fuzz

# Keep objects of test programs (intermediate files to make).
.SECONDARY:

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

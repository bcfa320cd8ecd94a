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
# librbd and librados ship no pkg-config files.
LDLIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lrbd -lrados \
            -lpthread -ldl -lm
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
# The one definition of the version is lib/common/version.h.
VERSION  := $(shell sed -n 's/^\#define CV_VERSION "\(.*\)"$$/\1/p' lib/common/version.h)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

ifeq ($(V),)
Q = @
quiet = @printf '  %-7s %s\n' $(1) $(2);
endif

.PHONY: all deps check check-unit check-integration demo bench bench-rbd bench-many install \
        install-systemd \
        format format-check clean sanitize fuzz \
        fuzz-build
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

$(B)/man/%.1 $(B)/man/%.8: doc/%.pod lib/common/version.h
	$(call quiet,POD2MAN,$@)mkdir -p $(@D) && podchecker -nowarnings $< 2>/dev/null && \
	  pod2man --center=cryptvol --release="cryptvol $(VERSION)" --section=$(subst .,,$(suffix $@)) \
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
# in build-fuzz/: the sources a target covers built under ASan and UBSan
# with libFuzzer's coverage, the rest of the library as built. `make fuzz`
# builds them, makes seeds from real volumes (tests/fuzz/make-seeds.sh) and
# runs each for FUZZ_SECONDS from its corpora (tests/fuzz/run.sh, which
# keeps what they find in build-fuzz/corpus/ and a crash's reproducer in
# build-fuzz/crashes/); `make fuzz-build` only builds; test-fuzz.sh runs
# each for 30 s in make check. doc/security.md, "Fuzzing", has the record.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BASE    := -g -O1 -std=gnu11 -D_GNU_SOURCE -Ilib -Itests/unit \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_FLAGS   := $(FUZZ_BASE) -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all
# The same targets for line coverage (tests/fuzz/coverage.sh): no sanitizer.
FUZZ_COV_FLAGS := $(FUZZ_BASE) -fsanitize=fuzzer -fprofile-instr-generate \
                  -fcoverage-mapping
FUZZ_TARGETS := control aws-config aws-creds aws-sts header unlock kms stanza \
                rbd-spec
FUZZ_BINS    := $(FUZZ_TARGETS:%=build-fuzz/fuzz-%)
FUZZ_SRCS_control    := lib/ctl/dispatch.c lib/ctl/audit.c lib/common/log.c \
                        lib/common/clock.c lib/common/encode.c
FUZZ_SRCS_aws-config := lib/keys/aws-config.c lib/crypto/secmem.c \
                        lib/crypto/secheap.c lib/common/log.c lib/common/fdio.c \
                        lib/common/text.c
FUZZ_SRCS_aws-creds  := lib/keys/aws-creds.c lib/crypto/secmem.c \
                        lib/crypto/secheap.c lib/common/log.c
FUZZ_SRCS_aws-sts    := lib/keys/aws-sts.c
FUZZ_SRCS_header     := $(wildcard lib/format/*.c) lib/common/encode.c
FUZZ_SRCS_unlock     := $(FUZZ_SRCS_header) lib/keys/unlock.c lib/keys/file.c \
                        lib/keys/passphrase.c lib/keys/aead_wrap.c \
                        lib/keys/provider.c
FUZZ_SRCS_kms        := lib/keys/kms.c lib/keys/kms-http.c
FUZZ_SRCS_stanza     := lib/common/stanza.c lib/common/text.c lib/common/log.c
FUZZ_SRCS_rbd-spec   := lib/io/rbd.c
# Targets whose sources stand alone; the others link the library.
FUZZ_ALONE      := control aws-config aws-creds stanza
FUZZ_ALONE_LIBS := $(shell pkg-config --libs jansson libcrypto libgcrypt 2>/dev/null)
fuzz_srcs = $(FUZZ_SRCS_$(1))
fuzz_alone = $(filter $(1),$(FUZZ_ALONE))
fuzz_deps = tests/fuzz/fuzz-$(1).c $(call fuzz_srcs,$(1)) \
            $(if $(call fuzz_alone,$(1)),,$(LIB)) \
            $(wildcard lib/*/*.h tests/fuzz/*.h tests/unit/ctl-fake.h)
fuzz_link = mkdir -p $(@D) && $(FUZZ_CC) $(1) -o $@ $< $(call fuzz_srcs,$*) \
            $(if $(call fuzz_alone,$*),$(FUZZ_ALONE_LIBS),$(LIB) $(LDLIBS))

fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build build-fuzz/seeds/.done
	$(Q)tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
fuzz-print-srcs-%:
	@echo $(call fuzz_srcs,$*)

.SECONDEXPANSION:
build-fuzz/fuzz-%: $$(call fuzz_deps,$$*)
	$(call quiet,FUZZ,$@)$(call fuzz_link,$(FUZZ_FLAGS))
build-fuzz/cov/fuzz-%: $$(call fuzz_deps,$$*)
	$(call quiet,FUZZ,$@)$(call fuzz_link,$(FUZZ_COV_FLAGS))

# Seeds for fuzz-header and fuzz-unlock: the headers of volumes keymgr makes.
build-fuzz/seeds/.done: tests/fuzz/make-seeds.sh $(KEYMGR)
	$(call quiet,SEEDS,build-fuzz/seeds)tests/fuzz/make-seeds.sh \
	  $(KEYMGR) build-fuzz/seeds && touch $@

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
	$(Q)bench/rbd.sh || [ $$? = 77 ]

# cryptvol on Ceph RBD against qemu-nbd's rbd driver (issue 17;
# doc/performance.md): a throw-away cluster (tests/ceph/cluster.sh), ~3
# minutes; part of `make bench`. Knobs: BENCH_RBD_* (bench/rbd.sh).
bench-rbd: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/rbd.sh

# Many volumes in one server against one process per volume (issue 16;
# doc/performance.md): BENCH_MANY_ARGS="-n 1000 -r 3 ..." (bench/many-volumes.sh).
bench-many: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/many-volumes.sh $(BENCH_MANY_ARGS)

PREFIX ?= /usr/local
install: all install-systemd
	install -D -m 0755 $(KEYMGR) $(DESTDIR)$(PREFIX)/bin/cryptvol-keymgr
	install -D -m 0755 $(PLUGIN) \
	  $(DESTDIR)$$(nbdkit --dump-config | sed -n 's/^plugindir=//p')/nbdkit-cryptvol-plugin.so
	install -D -m 0644 $(B)/man/nbdkit-cryptvol-plugin.1 $(DESTDIR)$(PREFIX)/share/man/man1/nbdkit-cryptvol-plugin.1
	install -D -m 0644 $(B)/man/cryptvol-keymgr.8 $(DESTDIR)$(PREFIX)/share/man/man8/cryptvol-keymgr.8

# The systemd units of contrib/systemd (doc/operations.md, "Running under
# systemd"), the user they run as, and their example configurations. The
# directories are systemd's own under PREFIX (/usr/local/lib/systemd/system
# is on systemd's search path); a package gives UNITDIR=/usr/lib/systemd/system
# SYSUSERSDIR=/usr/lib/sysusers.d. Then: systemd-sysusers; systemctl
# daemon-reload.
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
EXAMPLEDIR  ?= $(PREFIX)/share/doc/cryptvol/examples
SYSTEMD_UNITS    := $(wildcard contrib/systemd/*.service contrib/systemd/*.socket)
SYSTEMD_EXAMPLES := $(wildcard contrib/systemd/*.example)
install-systemd:
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(EXAMPLEDIR)
	install -m 0644 $(SYSTEMD_UNITS) $(DESTDIR)$(UNITDIR)/
	install -D -m 0644 contrib/systemd/cryptvol.sysusers $(DESTDIR)$(SYSUSERSDIR)/cryptvol.conf
	install -m 0644 $(SYSTEMD_EXAMPLES) $(DESTDIR)$(EXAMPLEDIR)/

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

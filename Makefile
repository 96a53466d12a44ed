# SPDX-License-Identifier: GPL-2.0
# virtio-msg-rs: a virtio-msg transport and bus drivers for Linux, in Rust.
#
#   make check   build everything and run every test (what CI runs)
#   make run     boot a guest with the modules loaded and show what they report
#   make e2e     only the end-to-end test (virtio drivers over virtio_msg_shm
#                against tools/vmsg-device), with its verdict
#   make scenarios  only the end-to-end scenarios make check runs
#                (tests/e2e/scenarios, tier check), with their verdict
#   make soak    the end-to-end scenarios of tiers soak and check, pass after
#                pass for MINUTES (default: one pass); seeded-random faults
#                get a new seed every pass
#   make bench   virtio-blk over virtio-msg against virtio-blk-pci and
#                vhost-user-blk-pci (fio in a guest); writes bench/results.*
#   make modules       the modules as users load them (no KUnit suite in them)
#   make kunit-modules the same sources with drivers/Kconfig's *_KUNIT_TEST
#                options on, in build/kunit-src (the KUnit guest's)
#
#   make               the same as make modules
#   make modules_install   the modules into /lib/modules of KDIR's release
#   make kernel        build (once, cached) the project's test kernel and make
#                      it the default KDIR
#
# Kbuild reads this directory's Kbuild file; this Makefile is for people.
# Only setup, kernel, check, run and the test targets install packages.

# The kernel to build against: a built tree with CONFIG_RUST=y. Default: the
# project's cached test kernel once `make kernel` (or make check) built it,
# else the running kernel's build directory.
KDIR ?= $(or $(shell cat $(CURDIR)/build/kbuild-dir 2>/dev/null),/lib/modules/$(shell uname -r)/build)
LLVM ?= -19
# scripts/accel.sh chooses the guests' accelerator once per make invocation.
VMSG_RUN_ID := $(or $(VMSG_RUN_ID),$(shell date +%s.%N)-make)
export VMSG_RUN_ID
CLIPPY ?=
# Kbuild flags every build of the modules gets; the harness self-test module
# (tests/harness) only where asked for (kunit-modules).
MODULE_FLAGS = LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=1) KRUSTFLAGS=-Dwarnings

RUST_SOURCES = $(shell find drivers rust tests/harness -name '*.rs' 2>/dev/null)

.DEFAULT_GOAL := modules
.PHONY: check run e2e scenarios soak bench modules modules_install kunit-modules kernel setup rustfmt-check fmt fuzz clean

check:
	@scripts/check.sh

# The test targets: the project's kernel (built once) and the modules against it.
# Evaluated once, and only when one of those targets runs.
test_kdir = $(eval test_kdir := $(shell $(CURDIR)/scripts/setup.sh >&2 && env -u KDIR $(CURDIR)/scripts/kernel.sh))$(test_kdir)
run e2e scenarios soak bench: KDIR = $(test_kdir)

run: modules
	@scripts/run.sh "$(KDIR)"

e2e: modules
	@KBUILD="$(KDIR)" scripts/e2e.sh

scenarios: modules
	@KBUILD="$(KDIR)" scripts/scenarios.sh $(or $(SCENARIOS),check)

soak: modules
	@KBUILD="$(KDIR)" VMSG_SOAK_MINUTES="$(or $(MINUTES),0)" scripts/soak.sh

bench: modules
	@KBUILD="$(KDIR)" scripts/bench.sh

setup:
	@scripts/setup.sh

kernel: setup
	@mkdir -p build && env -u KDIR scripts/kernel.sh >build/kbuild-dir.new && mv build/kbuild-dir.new build/kbuild-dir
	@echo "KDIR is now $$(cat build/kbuild-dir)"

modules:
	@test -f "$(KDIR)/Module.symvers" || { echo "KDIR=$(KDIR) is not a built kernel tree: set KDIR, or run make kernel" >&2; exit 1; }
	$(MAKE) -C "$(KDIR)" M="$(CURDIR)" $(MODULE_FLAGS) modules

modules_install:
	$(MAKE) -C "$(KDIR)" M="$(CURDIR)" $(MODULE_FLAGS) modules_install

# The modules with the options a test kernel's Kconfig would set (drivers/Kconfig,
# VMSG_KUNIT_OPTIONS in scripts/lib.sh), on a copy of the sources: Kbuild writes
# objects next to them.
kunit-modules:
	bash -c '. scripts/lib.sh && sync_module_sources "$(CURDIR)/build/kunit-src"'
	$(MAKE) -C "$(KDIR)" M="$(CURDIR)/build/kunit-src" $(MODULE_FLAGS) VMSG_HARNESS=m \
		$(shell bash -c '. scripts/lib.sh && echo $$VMSG_KUNIT_OPTIONS') modules

rustfmt-check:
	@# Kernel-side sources, with the kernel's settings (.rustfmt.toml).
	rustfmt --check $(RUST_SOURCES)

fmt:
	rustfmt $(RUST_SOURCES)
	cd tools && cargo fmt --all

fuzz:
	@scripts/fuzz-codec.sh $(or $(SECONDS),600)

clean:
	$(MAKE) -C "$(KDIR)" M="$(CURDIR)" LLVM=$(LLVM) clean
	rm -rf build

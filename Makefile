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
# Kbuild reads this directory's Kbuild file; this Makefile is for people.

# The kernel build directory; scripts/kernel.sh provides (and caches) one.
KBUILD ?= $(shell $(CURDIR)/scripts/setup.sh >&2 && $(CURDIR)/scripts/kernel.sh)
LLVM ?= -19
# scripts/accel.sh chooses the guests' accelerator once per make invocation.
VMSG_RUN_ID := $(or $(VMSG_RUN_ID),$(shell date +%s.%N)-make)
export VMSG_RUN_ID
CLIPPY ?=

RUST_SOURCES = $(shell find drivers rust tests/harness -name '*.rs' 2>/dev/null)

.PHONY: check run e2e scenarios soak bench modules kunit-modules kernel setup rustfmt-check fmt fuzz clean

check:
	@scripts/check.sh

run: modules
	@scripts/run.sh "$(KBUILD)"

e2e: modules
	@KBUILD="$(KBUILD)" scripts/e2e.sh

scenarios: modules
	@KBUILD="$(KBUILD)" scripts/scenarios.sh $(or $(SCENARIOS),check)

soak: modules
	@KBUILD="$(KBUILD)" VMSG_SOAK_MINUTES="$(or $(MINUTES),0)" scripts/soak.sh

bench: modules
	@KBUILD="$(KBUILD)" scripts/bench.sh

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kernel.sh

modules:
	$(MAKE) -C "$(KBUILD)" M="$(CURDIR)" LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=1) \
		KRUSTFLAGS=-Dwarnings modules

# The modules with the options a test kernel's Kconfig would set (drivers/Kconfig,
# VMSG_KUNIT_OPTIONS in scripts/lib.sh), on a copy of the sources: Kbuild writes
# objects next to them.
kunit-modules:
	bash -c '. scripts/lib.sh && sync_module_sources "$(CURDIR)/build/kunit-src"'
	$(MAKE) -C "$(KBUILD)" M="$(CURDIR)/build/kunit-src" LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=1) \
		KRUSTFLAGS=-Dwarnings $(shell bash -c '. scripts/lib.sh && echo $$VMSG_KUNIT_OPTIONS') modules

rustfmt-check:
	@# Kernel-side sources, with the kernel's settings (.rustfmt.toml).
	rustfmt --check $(RUST_SOURCES)

fmt:
	rustfmt $(RUST_SOURCES)
	cd tools && cargo fmt --all

fuzz:
	@scripts/fuzz-codec.sh $(or $(SECONDS),600)

clean:
	$(MAKE) -C "$(KBUILD)" M="$(CURDIR)" LLVM=$(LLVM) clean
	rm -rf build

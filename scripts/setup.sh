#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Installs what building and testing the project needs, once per machine:
# Debian packages, bindgen-cli from crates.io and the rust-src component.
# Idempotent and quiet when everything is already there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PACKAGES=(
	clang-19 lld-19 llvm-19 libclang-19-dev
	qemu-system-x86 qemu-system-arm busybox-static cpio bc flex bison
	libelf-dev libssl-dev xz-utils kmod e2fsprogs curl ca-certificates
	# kselftest installation (tools/testing/selftests/lib.mk copies with rsync).
	rsync
	# make bench: fio for the guest, qemu-storage-daemon (in qemu-system-common)
	# for vhost-user-blk, python3-venv for matplotlib from PyPI.
	fio qemu-system-common python3-venv
)
BINDGEN_VERSION=0.73.2

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v rustup >/dev/null || die "rustup not found: install a Rust toolchain first (https://rustup.rs)"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "adding the rust-src component"
	rustup component add rust-src >/dev/null
fi

if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION from crates.io"
	cargo install --quiet bindgen-cli --version "$BINDGEN_VERSION" --locked
fi

#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Provides a configured and built Linux kernel for the project's modules and
# prints its build directory (the objtree that `make M=` needs) on stdout.
#
# Source of the kernel, in order of preference:
#   KDIR=<tree>               a kernel tree the user built; used as is.
#   VMSG_LINUX_TARBALL=<file> a linux source tarball, e.g. Debian's linux-source-7.2.
#   otherwise                 Debian's linux-source-7.2 package, downloaded and verified.
#
# ARCH=arm64 builds the arm64 kernel of the FF-A bus (tests/kernel-arm64.config,
# or VMSG_KCONFIG_ARM64) with LLVM's cross compilers; scripts/arm64.sh uses it.
#
# Builds are cached under $VMSG_CACHE by a key of (source checksum, config
# fragment, toolchain versions), so a second run does not rebuild.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ARCH=${ARCH:-x86_64}
case "$ARCH" in
x86_64) FRAGMENT=${VMSG_KCONFIG:-$VMSG_TOP/tests/kernel.config} ;;
arm64) FRAGMENT=${VMSG_KCONFIG_ARM64:-$VMSG_TOP/tests/kernel-arm64.config} ;;
*) die "ARCH=$ARCH: only x86_64 and arm64 are supported" ;;
esac
DEB_URL=https://deb.debian.org/debian/pool/main/l/linux/linux-source-7.2_7.2.11-1~bpo13+1_all.deb
DEB_SHA256=97a3aac3a9eeb8f18e8b0511af9261c54605fd23b712f1a48144360a123738a2
TARBALL_SHA256=4d5236387c51a225c59ed8e98e8ef350baf6f38e3f66b2bb66cf347826a80b33

if [ -n "${KDIR:-}" ]; then
	[ -f "$KDIR/Module.symvers" ] || die "KDIR=$KDIR has no Module.symvers: build that kernel first"
	grep -q '^CONFIG_RUST=y' "$KDIR/.config" || die "KDIR=$KDIR is not built with CONFIG_RUST=y"
	echo "$KDIR"
	exit 0
fi

mkdir -p "$VMSG_CACHE"

# Fetches Debian's linux-source package and extracts the tarball it carries.
fetch_tarball() {
	local deb=$VMSG_CACHE/linux-source-7.2.deb out=$VMSG_CACHE/linux-source-7.2.11.tar.xz
	if [ ! -f "$out" ]; then
		log "downloading $DEB_URL"
		curl -fsSL --retry 3 -o "$deb.part" "$DEB_URL"
		echo "$DEB_SHA256  $deb.part" | sha256sum -c --quiet - || die "checksum mismatch for $DEB_URL"
		mv "$deb.part" "$deb"
		local x; x=$(mktemp -d)
		dpkg-deb -x "$deb" "$x"
		mv "$x"/usr/src/linux-source-7.2.tar.xz "$out"
		rm -rf "$x" "$deb"
	fi
	echo "$TARBALL_SHA256  $out" | sha256sum -c --quiet - >&2 || die "checksum mismatch for $out"
	echo "$out"
}

tarball=${VMSG_LINUX_TARBALL:-}
[ -n "$tarball" ] || tarball=$(fetch_tarball)
[ -f "$tarball" ] || die "VMSG_LINUX_TARBALL=$tarball does not exist"

# The cache key covers everything that changes the built kernel.
src_sum=$(sha256sum "$tarball" | cut -d' ' -f1)
key=$( {
	echo "$src_sum" "$ARCH"
	cat "$FRAGMENT"
	"clang$VMSG_LLVM" --version | head -1
	rustc --version
	bindgen --version
} | sha256sum | cut -c1-16)
dir=$VMSG_CACHE/kernel-$ARCH-$key
obj=$dir/build

if [ -f "$dir/.done" ]; then
	log "kernel cached in $obj"
	echo "$obj"
	exit 0
fi

rm -rf "$dir"
mkdir -p "$dir/src" "$obj"
log "unpacking $tarball"
tar -xf "$tarball" -C "$dir/src" --strip-components=1

kmake() { make -C "$dir/src" O="$obj" ARCH="$ARCH" LLVM="$VMSG_LLVM" "$@"; }

log "configuring ($ARCH, fragment $(basename "$FRAGMENT"))"
kmake -s allnoconfig >&2
"$dir/src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$FRAGMENT" >/dev/null
kmake -s olddefconfig >&2

# A fragment option the final config lacks is an error, not a warning.
bad=0
while IFS= read -r line; do
	case "$line" in CONFIG_*=n) want="# ${line%=n} is not set" ;; CONFIG_*) want=$line ;; *) continue ;; esac
	if [ "${line#*=}" = n ]; then
		grep -q "^${line%=n}=" "$obj/.config" && { log "config: $line was not honoured"; bad=1; }
	else
		grep -qx "$want" "$obj/.config" || { log "config: $line was not honoured"; bad=1; }
	fi
done <"$FRAGMENT"
[ $bad = 0 ] || die "kernel config fragment not satisfied (toolchain missing? see above)"

log "building the kernel (about 5-10 minutes on 2 cores)"
start=$(date +%s)
kmake -s -j"$(($(nproc) + 1))" >"$dir/build.log" 2>&1 || { tail -40 "$dir/build.log" >&2; die "kernel build failed, log: $dir/build.log"; }
log "kernel built in $(( $(date +%s) - start ))s"
touch "$dir/.done"
echo "$obj"

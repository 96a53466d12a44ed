# Shared shell helpers for the project's scripts. Source it; do not run it.
# shellcheck shell=bash

VMSG_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMSG_CACHE=${VMSG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/virtio-msg-rs}
VMSG_BUILD=${VMSG_BUILD:-$VMSG_TOP/build}
VMSG_LLVM=${VMSG_LLVM:--19}
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[vmsg] %s\n' "$*" >&2; }
die() { printf '[vmsg] error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root, through sudo when needed.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

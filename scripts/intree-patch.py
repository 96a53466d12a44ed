#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the project into a patch series for a Linux 7.2 tree (issue 14).

Usage: intree-patch.py <linux source tree> <output dir> [--check | --tree DIR]

With --check, the series is also applied, patch by patch with `patch -p1
--fuzz=0`, to a copy of the tree's files it changes: it must apply exactly.
With --tree DIR, it is applied the same way to DIR, made a copy of the whole
tree first (hard links: patch replaces the files it changes, so the source
tree stays as it was); DIR is then the patched tree, to build in.

The series (git format-patch, with a cover letter) applies with `git am` or
`patch -p1` to the tree given, and puts:

  drivers/virtio/virtio_msg/        Kconfig, Makefile, and this project's rust/
                                    and drivers/ as they are (the Kbuild files
                                    and #[path] attributes keep their relative
                                    paths), wired into drivers/virtio/Kconfig
                                    and drivers/virtio/Makefile
  Documentation/driver-api/virtio/virtio-msg/   Documentation/*.rst, indexed
  tools/testing/selftests/drivers/virtio_msg/   tests/selftests/virtio_msg/, the
                                    kselftest target, in the selftests' TARGETS
  MAINTAINERS                       an entry (no M: line: the submitter adds
                                    theirs)

One patch for the transport and the support code, one per bus module, one for
the documentation, one for MAINTAINERS; each builds on its own (a bus's Kconfig
entries come with its code). The options are those of drivers/Kconfig, split by
module. Nothing outside drivers/virtio/virtio_msg/ is compiled.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEST = "drivers/virtio/virtio_msg"
DOC_DEST = "Documentation/driver-api/virtio/virtio-msg"
BASE_FILES = [
    "drivers/virtio/Kconfig",
    "drivers/virtio/Makefile",
    "Documentation/driver-api/virtio/index.rst",
    "tools/testing/selftests/Makefile",
    "MAINTAINERS",
]
SELFTEST_DEST = "tools/testing/selftests/drivers/virtio_msg"
# The project's documents that describe the kernel side, in reading order.
DOCS = ["transport", "bus-contract", "shm-bus", "ffa-bus", "robustness"]


def run(*args, cwd=None):
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def tracked(prefix):
    """The project's tracked files under prefix."""
    return [f for f in run("git", "ls-files", prefix, cwd=TOP).splitlines() if f]


def kconfig_entries(names):
    """The entries of drivers/Kconfig for the options named, with their help."""
    text = open(os.path.join(TOP, "drivers/Kconfig")).read()
    blocks = re.split(r"\n(?=config )", text)
    found = [b.rstrip("\n") + "\n" for b in blocks if b.startswith("config ") and b.split()[1] in names]
    if len(found) != len(names):
        sys.exit(f"drivers/Kconfig lacks one of {names}")
    return found


def write(repo, path, text):
    full = os.path.join(repo, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def copy(src_root, files, dest_root):
    """Copies files (paths relative to src_root) to the same paths under dest_root."""
    for f in files:
        target = os.path.join(dest_root, f)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(src_root, f), target)


def insert_before(text, marker, addition, what):
    if marker not in text:
        sys.exit(f"{what}: '{marker.strip()}' not found; is this a Linux 7.2 tree?")
    return text.replace(marker, addition + marker, 1)


def commit(repo, subject, body):
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-s", "-m", subject + "\n\n" + body, cwd=repo)


def main():
    args = sys.argv[1:]
    if len(args) not in (2, 3, 4) or not (args[2:] in ([], ["--check"]) or (len(args) == 4 and args[2] == "--tree")):
        sys.exit(__doc__)
    linux, out = args[0], os.path.abspath(args[1])
    check = args[2:] == ["--check"]
    tree = os.path.abspath(args[3]) if args[2:3] == ["--tree"] else None
    repo = tempfile.mkdtemp(prefix="vmsg-intree.")
    try:
        run("git", "init", "-q", "-b", "main", cwd=repo)
        for key in ("user.name", "user.email"):
            run("git", "config", key, run("git", "config", key, cwd=TOP).strip(), cwd=repo)
        copy(linux, BASE_FILES, repo)
        commit(repo, "base", "Linux's files the series changes.")
        base = run("git", "rev-parse", "HEAD", cwd=repo).strip()
        spdx = "# SPDX-License-Identifier: GPL-2.0\n"
        transport_options = ["VIRTIO_MSG", "VIRTIO_MSG_KUNIT_TEST"]

        # 1: the transport and the support code every module includes.
        dest = os.path.join(repo, DEST)
        copy(TOP, [f for f in tracked("rust") if not f.startswith("rust/ffa/")], dest)
        copy(TOP, tracked("drivers/virtio_msg"), dest)
        kconfig = spdx + "\n" + "\n".join(kconfig_entries(transport_options))
        write(repo, f"{DEST}/Kconfig", kconfig)
        write(repo, f"{DEST}/Makefile", spdx + "obj-$(CONFIG_VIRTIO_MSG) += drivers/\n")
        drivers_kbuild = spdx + "obj-$(CONFIG_VIRTIO_MSG) += virtio_msg/\n"
        write(repo, f"{DEST}/drivers/Kbuild", drivers_kbuild)
        path = os.path.join(repo, "drivers/virtio/Kconfig")
        text = insert_before(open(path).read(), "endif # VIRTIO_MENU",
                             'source "drivers/virtio/virtio_msg/Kconfig"\n\n', "drivers/virtio/Kconfig")
        write(repo, "drivers/virtio/Kconfig", text)
        path = os.path.join(repo, "drivers/virtio/Makefile")
        write(repo, "drivers/virtio/Makefile", open(path).read() + "obj-$(CONFIG_VIRTIO_MSG) += virtio_msg/\n")
        commit(repo, "virtio: add the virtio-msg transport, in Rust",
               "virtio-msg carries virtio's configuration and notifications as messages\n"
               "over a bus instead of PCI or MMIO registers. The transport registers one\n"
               "virtio device per device number a bus module announces and turns every\n"
               "config operation into messages; bus modules register through the C ABI\n"
               "of rust/bus/. The Rust support the kernel crate of 7.2 lacks is in\n"
               "rust/, the only place with unsafe; rust/codec/ is the wire codec, shared\n"
               "with the host tools of the virtio-msg-rs project.\n\n"
               "VIRTIO_MSG_KUNIT_TEST builds the codec and transport suites (against a\n"
               "fake bus) into the module.")

        # 2, 3: the bus modules, each with its options.
        buses = [
            ("virtio_msg_shm", ["VIRTIO_MSG_SHM", "VIRTIO_MSG_SHM_KUNIT_TEST"], [],
             "virtio_msg: add the shared-memory bus (ivshmem-doorbell)",
             "A bus on a shared-memory region with doorbells, as QEMU's\n"
             "ivshmem-doorbell PCI device provides (Documentation/driver-api/virtio/\n"
             "virtio-msg/shm-bus.rst): two message rings, one interrupt per doorbell,\n"
             "revision and message size negotiated once per instance, PING liveness\n"
             "and recovery. The module loads by the device's PCI alias."),
            ("virtio_msg_ffa", ["VIRTIO_MSG_FFA", "VIRTIO_MSG_FFA_KUNIT_TEST"], tracked("rust/ffa"),
             "virtio_msg: add the Arm FF-A bus",
             "A bus to a partition over FF-A: messages as direct requests, events as\n"
             "notifications or polled, buffers in memory shared with FFA_MEM_SHARE.\n"
             "It binds to partitions in the virtio-msg device role and loads by the\n"
             "arm_ffa bus's alias for that UUID. VIRTIO_MSG_FFA_KUNIT_TEST builds its\n"
             "suites, and the fake partition they run against, into the module."),
        ]
        for module, options, extra, subject, body in buses:
            copy(TOP, tracked(f"drivers/{module}") + extra, dest)
            if module == "virtio_msg_shm":
                # kunit.py's --kunitconfig: the suites of the transport and this bus.
                write(repo, f"{DEST}/.kunitconfig", open(os.path.join(TOP, "drivers/.kunitconfig")).read())
            kconfig += "\n" + "\n".join(kconfig_entries(options))
            write(repo, f"{DEST}/Kconfig", kconfig)
            drivers_kbuild += f"obj-$(CONFIG_{options[0]}) += {module}/\n"
            write(repo, f"{DEST}/drivers/Kbuild", drivers_kbuild)
            commit(repo, subject, body)

        # 4: the documentation.
        os.makedirs(os.path.join(repo, DOC_DEST), exist_ok=True)
        for doc in DOCS:
            shutil.copy2(os.path.join(TOP, f"Documentation/{doc}.rst"), os.path.join(repo, DOC_DEST, f"{doc}.rst"))
        index = (".. SPDX-License-Identifier: GPL-2.0\n\n"
                 "==========\nvirtio-msg\n==========\n\n.. toctree::\n   :maxdepth: 1\n\n"
                 + "".join(f"   {d}\n" for d in DOCS))
        write(repo, f"{DOC_DEST}/index.rst", index)
        path = os.path.join(repo, "Documentation/driver-api/virtio/index.rst")
        text = open(path).read()
        if "   writing_virtio_drivers\n" not in text:
            sys.exit("Documentation/driver-api/virtio/index.rst: toctree not as in 7.2")
        write(repo, "Documentation/driver-api/virtio/index.rst",
              text.replace("   writing_virtio_drivers\n", "   writing_virtio_drivers\n   virtio-msg/index\n", 1))
        commit(repo, "Documentation: virtio-msg transport and buses",
               "How the transport works, what a bus module implements, the shared-memory\n"
               "bus byte by byte, the FF-A bus, and what each fault of a device side does.")

        # 5: the kselftest target.
        src = "tests/selftests/virtio_msg"
        copy(os.path.join(TOP, src), [f[len(src) + 1:] for f in tracked(src)], os.path.join(repo, SELFTEST_DEST))
        path = os.path.join(repo, "tools/testing/selftests/Makefile")
        text = insert_before(open(path).read(), "TARGETS += drivers/platform/x86/intel/ifs\n",
                             "TARGETS += drivers/virtio_msg\n", "tools/testing/selftests/Makefile")
        write(repo, "tools/testing/selftests/Makefile", text)
        commit(repo, "selftests: drivers/virtio_msg: end-to-end tests of the shm bus",
               "Unmodified virtio-rng, virtio-blk and virtio-console drivers over the\n"
               "virtio-msg transport and its shared-memory bus, then a reload of the bus\n"
               "module. They need an ivshmem-doorbell device served by a virtio-msg device\n"
               "side (tools/vmsg-device of virtio-msg-rs) and skip without one.")

        # 6: MAINTAINERS.
        entry = ("VIRTIO MSG TRANSPORT AND BUSES (RUST)\n"
                 "L:\tvirtualization@lists.linux.dev\n"
                 "L:\trust-for-linux@vger.kernel.org\n"
                 "S:\tMaintained\n"
                 f"F:\t{DOC_DEST}/\n"
                 f"F:\t{DEST}/\n"
                 f"F:\t{SELFTEST_DEST}/\n\n")
        path = os.path.join(repo, "MAINTAINERS")
        text = insert_before(open(path).read(), "VIRTIO NET DRIVER\n", entry, "MAINTAINERS")
        write(repo, "MAINTAINERS", text)
        commit(repo, "MAINTAINERS: add virtio-msg",
               "The entry has no M: line yet: whoever submits the series adds theirs.")

        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        run("git", "config", "branch.main.description",
            "virtio: a virtio-msg transport and its shared-memory and FF-A buses, in Rust\n\n"
            "Generated by scripts/intree-patch.py of virtio-msg-rs from commit "
            + run("git", "rev-parse", "--short", "HEAD", cwd=TOP).strip() + ".", cwd=repo)
        run("git", "format-patch", "-q", "--cover-letter", "--cover-from-description=auto",
            "-o", out, f"{base}..HEAD", cwd=repo)
        patches = [os.path.join(out, name) for name in sorted(os.listdir(out))]
        for p in patches:
            print(p)
        if check:
            apply_all(linux, patches[1:])
        if tree:
            apply_to_tree(linux, patches[1:], tree)
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def patch_all(linux, patches, where):
    """Applies the patches in turn in directory where, exactly."""
    for p in patches:
        result = subprocess.run(["patch", "-p1", "--fuzz=0", "--batch", "-s", "-i", p],
                                cwd=where, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{os.path.basename(p)} does not apply to {linux}:\n{result.stdout}{result.stderr}")


def apply_all(linux, patches):
    """Applies the patches in turn to a copy of the files of linux they change."""
    scratch = tempfile.mkdtemp(prefix="vmsg-intree-check.")
    try:
        copy(linux, BASE_FILES, scratch)
        patch_all(linux, patches, scratch)
        print(f"the series applies to {linux}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def apply_to_tree(linux, patches, tree):
    """Makes tree a hard-linked copy of linux with the patches applied."""
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(os.path.dirname(tree), exist_ok=True)
    run("cp", "-al", os.path.abspath(linux), tree)
    patch_all(linux, patches, tree)
    print(f"the series applied to {tree}")


if __name__ == "__main__":
    main()

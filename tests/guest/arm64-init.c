// SPDX-License-Identifier: GPL-2.0
/*
 * PID 1 of the arm64 test guest (scripts/arm64.sh).
 *
 * The x86 guest runs busybox; Debian's busybox-static is an x86 binary and an
 * arm64 one would need a foreign dpkg architecture (a change to the host's
 * apt configuration) or a download from outside Debian. This program needs
 * neither: it is built by the clang/lld the kernel build uses, freestanding,
 * with raw system calls, and does only what the arm64 plan needs:
 *
 *   1. mount proc, sysfs, devtmpfs, debugfs;
 *   2. load the modules of /vmsg/modules/load-order (their KUnit suites run
 *      as they load and report on the console);
 *   3. check that the FF-A bus driver registered and stays idle (QEMU's virt
 *      machine has no FF-A firmware, so no partition may be bound and no
 *      virtio device may appear);
 *   4. unload the modules in reverse order;
 *   5. scan for leaks with kmemleak, print the end marker and power off.
 *
 * Its own results are KTAP lines written to the kernel log with a VMSG-TAP
 * prefix (the virt machine has a single UART); the host splits them out.
 */

typedef unsigned long size_t;
typedef long ssize_t;

#define AT_FDCWD -100
#define O_RDONLY 0
#define O_WRONLY 1
#define O_DIRECTORY 040000
#define O_NONBLOCK 04000
#define O_CLOEXEC 02000000

#define SYS_getdents64 61
#define SYS_openat 56
#define SYS_close 57
#define SYS_read 63
#define SYS_write 64
#define SYS_mkdirat 34
#define SYS_mount 40
#define SYS_nanosleep 101
#define SYS_sync 81
#define SYS_reboot 142
#define SYS_delete_module 106
#define SYS_finit_module 273
#define SYS_exit 93

#define REBOOT_MAGIC1 0xfee1dead
#define REBOOT_MAGIC2 672274793
#define REBOOT_CMD_POWER_OFF 0x4321fedc

static long syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc #0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory", "cc");
	return x0;
}

#define sys(n, a, b, c, d) syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* The compiler may emit calls to these even in freestanding code. */
void *memset(void *s, int c, size_t n)
{
	unsigned char *p = s;

	while (n--)
		*p++ = (unsigned char)c;
	return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

static size_t str_len(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* A line being built; always NUL-terminated, silently truncated. */
struct line {
	char buf[512];
	size_t len;
};

static void add(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
	l->buf[l->len] = 0;
}

static void add_num(struct line *l, long v)
{
	char tmp[24];
	int i = 0;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

	if (v < 0)
		add(l, "-");
	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (i) {
		char c[2] = { tmp[--i], 0 };

		add(l, c);
	}
}

static int kmsg_fd = -1;

/* Writes one record to the kernel log (and so to the console). */
static void klog(const char *a, const char *b, const char *c)
{
	struct line l = { .len = 0 };

	add(&l, a);
	add(&l, b ? b : "");
	add(&l, c ? c : "");
	add(&l, "\n");
	if (kmsg_fd >= 0)
		sys(SYS_write, kmsg_fd, l.buf, l.len, 0);
}

static int tests;

static void result(int ok, const char *name, long err)
{
	struct line l = { .len = 0 };

	tests++;
	add(&l, "VMSG-TAP ");
	add(&l, ok ? "ok " : "not ok ");
	add_num(&l, tests);
	add(&l, " arm64:");
	add(&l, name);
	if (!ok && err) {
		add(&l, " # error ");
		add_num(&l, err);
	}
	klog(l.buf, 0, 0);
}

static void sleep_ms(long ms)
{
	long ts[2] = { ms / 1000, (ms % 1000) * 1000000 };

	sys(SYS_nanosleep, ts, 0, 0, 0);
}

/* Reads a file into buf (NUL-terminated); returns the length or -errno. */
static long read_file(const char *path, char *buf, size_t cap)
{
	long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	size_t len = 0;
	long n;

	if (fd < 0)
		return fd;
	while (len < cap - 1 && (n = sys(SYS_read, fd, buf + len, cap - 1 - len, 0)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	sys(SYS_close, fd, 0, 0, 0);
	return (long)len;
}

static long write_file(const char *path, const char *s)
{
	long fd = sys(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0);
	long n;

	if (fd < 0)
		return fd;
	n = sys(SYS_write, fd, s, str_len(s), 0);
	sys(SYS_close, fd, 0, 0, 0);
	return n < 0 ? n : 0;
}

/*
 * Counts the entries of a directory other than ".", ".." and the names in
 * @ignore (NULL-terminated); -errno if it cannot be read.
 */
static long count_entries(const char *path, const char *const *ignore)
{
	char buf[4096];
	long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	long n, count = 0;

	if (fd < 0)
		return fd;
	while ((n = sys(SYS_getdents64, fd, buf, sizeof(buf), 0)) > 0) {
		long off = 0;

		while (off < n) {
			/* struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name[] */
			unsigned short reclen = *(unsigned short *)(buf + off + 16);
			const char *name = buf + off + 19;
			int skip = str_eq(name, ".") || str_eq(name, "..");

			for (const char *const *i = ignore; !skip && i && *i; i++)
				skip = str_eq(name, *i);
			if (!skip)
				count++;
			off += reclen;
		}
	}
	sys(SYS_close, fd, 0, 0, 0);
	return n < 0 ? n : count;
}

static long insmod(const char *name)
{
	struct line path = { .len = 0 };
	long fd, ret;

	add(&path, "/vmsg/modules/");
	add(&path, name);
	add(&path, ".ko");
	fd = sys(SYS_openat, AT_FDCWD, path.buf, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	ret = syscall6(SYS_finit_module, fd, (long)"", 0, 0, 0, 0);
	sys(SYS_close, fd, 0, 0, 0);
	return ret;
}

static long rmmod(const char *name)
{
	return sys(SYS_delete_module, name, O_NONBLOCK, 0, 0);
}

static char modules[8][64];
static int nmodules;

static void read_load_order(void)
{
	char buf[512];
	long len = read_file("/vmsg/modules/load-order", buf, sizeof(buf));
	size_t j = 0;

	for (long i = 0; i < len && nmodules < 8; i++) {
		if (buf[i] == '\n') {
			modules[nmodules][j] = 0;
			if (j)
				nmodules++;
			j = 0;
		} else if (j < sizeof(modules[0]) - 1) {
			modules[nmodules][j++] = buf[i];
		}
	}
}

static void kmemleak_report(void)
{
	static char buf[65536];
	long len;
	char *start;

	if (write_file("/sys/kernel/debug/kmemleak", "scan") < 0)
		return;
	/* kmemleak reports an object only once it was seen unreferenced twice. */
	sleep_ms(1000);
	write_file("/sys/kernel/debug/kmemleak", "scan");
	len = read_file("/sys/kernel/debug/kmemleak", buf, sizeof(buf));
	start = buf;
	for (long i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			buf[i] = 0;
			klog("VMSG-KMEMLEAK ", start, 0);
			start = buf + i + 1;
		}
	}
}

static void mount_fs(const char *type, const char *dir)
{
	sys(SYS_mkdirat, AT_FDCWD, dir, 0755, 0);
	syscall6(SYS_mount, (long)type, (long)dir, (long)type, 0, 0, 0);
}

void _start(void)
{
	static const char *const driver_files[] = { "bind", "unbind", "uevent", "module", 0 };
	long ret;

	mount_fs("proc", "/proc");
	mount_fs("sysfs", "/sys");
	mount_fs("devtmpfs", "/dev");
	mount_fs("debugfs", "/sys/kernel/debug");
	kmsg_fd = sys(SYS_openat, AT_FDCWD, "/dev/kmsg", O_WRONLY | O_CLOEXEC, 0);
	klog("VMSG-GUEST-START plan=arm64-ffa", 0, 0);
	klog("VMSG-TAP KTAP version 1", 0, 0);

	read_load_order();
	{
		struct line plan = { .len = 0 };

		/* Load and unload each module, plus the four checks in between. */
		add(&plan, "VMSG-TAP 1..");
		add_num(&plan, 2 * nmodules + 4);
		klog(plan.buf, 0, 0);
	}
	for (int i = 0; i < nmodules; i++) {
		struct line name = { .len = 0 };

		ret = insmod(modules[i]);
		add(&name, "insmod-");
		add(&name, modules[i]);
		result(ret == 0, name.buf, ret);
		if (ret)
			klog("VMSG-GUEST-ERROR insmod failed: ", modules[i], 0);
	}

	/* No FF-A firmware: the driver is registered and has nothing bound. */
	ret = count_entries("/sys/bus/arm_ffa/drivers/virtio_msg_ffa", driver_files);
	result(ret >= 0, "ffa-driver-registered", ret);
	result(ret == 0, "ffa-driver-bound-to-nothing", ret);
	ret = count_entries("/sys/bus/arm_ffa/devices", 0);
	result(ret == 0, "no-ffa-partitions", ret);
	ret = count_entries("/sys/bus/virtio/devices", 0);
	result(ret == 0, "no-virtio-devices", ret);

	for (int i = nmodules - 1; i >= 0; i--) {
		struct line name = { .len = 0 };

		ret = rmmod(modules[i]);
		add(&name, "rmmod-");
		add(&name, modules[i]);
		result(ret == 0, name.buf, ret);
	}
	kmemleak_report();
	klog("VMSG-GUEST-DONE", 0, 0);
	sys(SYS_sync, 0, 0, 0, 0);
	sys(SYS_reboot, REBOOT_MAGIC1, REBOOT_MAGIC2, REBOOT_CMD_POWER_OFF, 0);
	sys(SYS_exit, 0, 0, 0, 0);
	for (;;)
		;
}

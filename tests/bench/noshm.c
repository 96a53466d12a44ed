// SPDX-License-Identifier: GPL-2.0
/*
 * LD_PRELOAD shim for fio in the `make bench` guest (tests/bench/guest.sh).
 *
 * The test kernel has no System V IPC (CONFIG_SYSVIPC is off), and fio keeps
 * its job table in a System V shared-memory segment whatever its options. This
 * shim serves shmget/shmat/shmdt/shmctl from anonymous shared mappings, which
 * fio's threads (--thread) and forked children alike see. Segments live until
 * the process exits; fio creates one or two.
 *
 * Built by scripts/bench.sh with the project's clang.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>

#define MAX_SEGMENTS 64

static struct {
	void *addr;
	size_t size;
} segments[MAX_SEGMENTS];

static int valid(int id)
{
	return id >= 1 && id <= MAX_SEGMENTS && segments[id - 1].addr;
}

int shmget(key_t key, size_t size, int flags)
{
	(void)key;
	(void)flags;
	for (int i = 0; i < MAX_SEGMENTS; i++) {
		if (segments[i].addr)
			continue;
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			errno = ENOMEM;
			return -1;
		}
		segments[i].addr = p;
		segments[i].size = size;
		return i + 1;
	}
	errno = ENOSPC;
	return -1;
}

void *shmat(int id, const void *addr, int flags)
{
	(void)addr;
	(void)flags;
	if (!valid(id)) {
		errno = EINVAL;
		return (void *)-1;
	}
	return segments[id - 1].addr;
}

int shmdt(const void *addr)
{
	(void)addr;
	return 0;
}

int shmctl(int id, int cmd, struct shmid_ds *buf)
{
	if (!valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (cmd == IPC_STAT && buf) {
		memset(buf, 0, sizeof(*buf));
		buf->shm_segsz = segments[id - 1].size;
	}
	/* IPC_RMID: fio removes the segment while attached; keep it until exit. */
	return 0;
}

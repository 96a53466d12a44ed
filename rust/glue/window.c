// SPDX-License-Identifier: GPL-2.0
/*
 * A window: memory the device side can reach (a part of a shared region, pages
 * shared with a partition), where a device's virtqueues are placed and through
 * which every buffer is bounced, as swiotlb does for a restricted DMA pool.
 * The device side sees bus addresses bus_base + offset and nothing of the
 * driver's own memory. Space is handed out in granules by the kernel's bitmap
 * allocator; the bookkeeping stays here, out of the device side's reach.
 */
#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/dma-mapping.h>
#include <linux/mm.h>
#include <linux/ratelimit.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include "glue.h"
#include "window.h"

#define GRANULE_SHIFT 6
#define GRANULE BIT(GRANULE_SHIFT)

struct vmsg_window {
	u8 *base;
	u64 bus_base;
	unsigned long granules;
	/* Guards used and hint, and the statistics below. */
	spinlock_t lock;
	/* Granules in use, and where the next search starts. */
	unsigned long *used;
	unsigned long hint;
	/*
	 * For every granule of a bounced mapping: the original buffer's address
	 * minus the bounce buffer's, so that a sync of any part finds its origin.
	 */
	long *delta;
	/* Under @lock, but for the two byte counts. */
	struct vmsg_window_stats stats;
	atomic64_t bounced_to_device;
	atomic64_t bounced_from_device;
};

struct vmsg_window *vmsg_window_new(void *base, u64 bus_base, u64 len)
{
	struct vmsg_window *w;

	if (!base || len < PAGE_SIZE || !IS_ALIGNED(len, PAGE_SIZE) ||
	    !IS_ALIGNED((unsigned long)base, PAGE_SIZE) || len >> GRANULE_SHIFT > INT_MAX)
		return NULL;
	w = kzalloc_obj(*w);
	if (!w)
		return NULL;
	w->base = base;
	w->bus_base = bus_base;
	w->granules = len >> GRANULE_SHIFT;
	spin_lock_init(&w->lock);
	w->used = bitmap_zalloc(w->granules, GFP_KERNEL);
	w->delta = kvcalloc(w->granules, sizeof(*w->delta), GFP_KERNEL);
	if (!w->used || !w->delta) {
		vmsg_window_free(w);
		return NULL;
	}
	w->stats.size = len;
	return w;
}

void vmsg_window_free(struct vmsg_window *w)
{
	if (!w)
		return;
	bitmap_free(w->used);
	kvfree(w->delta);
	kfree(w);
}

void vmsg_window_get_stats(struct vmsg_window *w, struct vmsg_window_stats *out)
{
	unsigned long flags;

	spin_lock_irqsave(&w->lock, flags);
	*out = w->stats;
	spin_unlock_irqrestore(&w->lock, flags);
	out->bounced_to_device = atomic64_read(&w->bounced_to_device);
	out->bounced_from_device = atomic64_read(&w->bounced_from_device);
}

/* Reserves @size bytes aligned to @align; returns the offset, or -ENOMEM. */
static long window_reserve(struct vmsg_window *w, size_t size, size_t align)
{
	unsigned long nr = DIV_ROUND_UP(size, GRANULE);
	unsigned long mask = align > GRANULE ? (align >> GRANULE_SHIFT) - 1 : 0;
	unsigned long flags, start;

	if (!size)
		return -EINVAL;
	if (nr > w->granules)
		goto full;
	spin_lock_irqsave(&w->lock, flags);
	start = bitmap_find_next_zero_area(w->used, w->granules, w->hint, nr, mask);
	if (start >= w->granules)
		start = bitmap_find_next_zero_area(w->used, w->granules, 0, nr, mask);
	if (start >= w->granules) {
		w->stats.failed++;
		spin_unlock_irqrestore(&w->lock, flags);
		goto full;
	}
	bitmap_set(w->used, start, nr);
	w->hint = start + nr < w->granules ? start + nr : 0;
	w->stats.in_use += nr << GRANULE_SHIFT;
	w->stats.peak = max(w->stats.peak, w->stats.in_use);
	spin_unlock_irqrestore(&w->lock, flags);
	return start << GRANULE_SHIFT;
full:
	pr_warn_ratelimited("virtio-msg: window full: %zu bytes refused\n", size);
	return -ENOMEM;
}

static void window_release(struct vmsg_window *w, unsigned long offset, size_t size)
{
	unsigned long nr = DIV_ROUND_UP(size, GRANULE), flags;

	spin_lock_irqsave(&w->lock, flags);
	bitmap_clear(w->used, offset >> GRANULE_SHIFT, nr);
	w->stats.in_use -= nr << GRANULE_SHIFT;
	spin_unlock_irqrestore(&w->lock, flags);
}

/*
 * Checks that [@handle, @handle + @size) is window space; returns its offset.
 * Handles come from the virtio core's own bookkeeping, never from the device
 * side, so a bad one is a kernel bug.
 */
static bool window_offset(struct vmsg_window *w, dma_addr_t handle, size_t size,
			  unsigned long *offset)
{
	u64 len = (u64)w->granules << GRANULE_SHIFT;
	u64 off = handle - w->bus_base;

	if (WARN_ON_ONCE(handle < w->bus_base || off > len || size > len - off))
		return false;
	*offset = off;
	return true;
}

void *vmsg_window_alloc(struct vmsg_window *w, size_t size, dma_addr_t *handle)
{
	long off = window_reserve(w, size, PAGE_SIZE);

	if (off < 0)
		return NULL;
	memset(w->base + off, 0, size);
	*handle = w->bus_base + off;
	return w->base + off;
}

void vmsg_window_free_coherent(struct vmsg_window *w, size_t size, dma_addr_t handle)
{
	unsigned long off;

	if (window_offset(w, handle, size, &off))
		window_release(w, off, size);
}

static void bounce(struct vmsg_window *w, unsigned long off, size_t size, bool to_device)
{
	u8 *window = w->base + off;
	u8 *orig = window + w->delta[off >> GRANULE_SHIFT];

	if (to_device)
		memcpy(window, orig, size);
	else
		memcpy(orig, window, size);
}

static bool to_device(enum dma_data_direction dir)
{
	return dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL;
}

static bool from_device(enum dma_data_direction dir)
{
	return dir == DMA_FROM_DEVICE || dir == DMA_BIDIRECTIONAL;
}

dma_addr_t vmsg_window_map(struct vmsg_window *w, struct page *page, unsigned long offset,
			   size_t size, enum dma_data_direction dir)
{
	/*
	 * The buffer is copied in whatever the direction, as swiotlb does: a
	 * device side that writes less than all of it must leave the rest as
	 * it was, not as the window held it for an earlier buffer.
	 */
	u8 *orig = page_address(page);
	unsigned long i;
	long off;

	if (!orig)
		return DMA_MAPPING_ERROR;
	orig += offset;
	off = window_reserve(w, size, GRANULE);
	if (off < 0)
		return DMA_MAPPING_ERROR;
	for (i = off >> GRANULE_SHIFT; i < (off + size + GRANULE - 1) >> GRANULE_SHIFT; i++)
		w->delta[i] = orig - (w->base + off);
	bounce(w, off, size, true);
	atomic64_add(size, &w->bounced_to_device);
	return w->bus_base + off;
}

void vmsg_window_unmap(struct vmsg_window *w, dma_addr_t handle, size_t size,
		       enum dma_data_direction dir, unsigned long attrs)
{
	unsigned long off;

	if (!window_offset(w, handle, size, &off))
		return;
	/* A driver that synced for the CPU already may have changed the buffer since. */
	if (from_device(dir) && !(attrs & DMA_ATTR_SKIP_CPU_SYNC)) {
		bounce(w, off, size, false);
		atomic64_add(size, &w->bounced_from_device);
	}
	window_release(w, off, size);
}

void vmsg_window_sync(struct vmsg_window *w, dma_addr_t handle, size_t size,
		      enum dma_data_direction dir, bool for_device)
{
	unsigned long off;

	if (!window_offset(w, handle, size, &off))
		return;
	if (for_device && to_device(dir))
		bounce(w, off, size, true);
	else if (!for_device && from_device(dir))
		bounce(w, off, size, false);
}

size_t vmsg_window_max_mapping(struct vmsg_window *w)
{
	/* A request of the block layer's default size fits many times over. */
	return min_t(size_t, (w->granules << GRANULE_SHIFT) / 8, SZ_256K);
}

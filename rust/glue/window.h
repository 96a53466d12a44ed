/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bounce side of a window (window.c), for the virtio glue's map
 * operations. C only: Rust creates, frees and reads windows through glue.h.
 */
#ifndef VMSG_WINDOW_H
#define VMSG_WINDOW_H

#include <linux/dma-direction.h>
#include <linux/types.h>

struct page;
struct vmsg_window;

/* Zeroed, page-aligned space for a vring; NULL when the window is full. */
void *vmsg_window_alloc(struct vmsg_window *w, size_t size, dma_addr_t *handle);
void vmsg_window_free_coherent(struct vmsg_window *w, size_t size, dma_addr_t handle);
/* Bounces a buffer; DMA_MAPPING_ERROR when the window is full. */
dma_addr_t vmsg_window_map(struct vmsg_window *w, struct page *page, unsigned long offset,
			   size_t size, enum dma_data_direction dir);
/* Copies back unless @attrs has DMA_ATTR_SKIP_CPU_SYNC, and releases the space. */
void vmsg_window_unmap(struct vmsg_window *w, dma_addr_t handle, size_t size,
		       enum dma_data_direction dir, unsigned long attrs);
void vmsg_window_sync(struct vmsg_window *w, dma_addr_t handle, size_t size,
		      enum dma_data_direction dir, bool for_device);
size_t vmsg_window_max_mapping(struct vmsg_window *w);

#endif /* VMSG_WINDOW_H */

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of the project's Rust abstraction of Linux's Arm FF-A driver
 * (rust/ffa/), like the kernel's rust/helpers: what Rust cannot reach
 * directly. Linux 7.2 has no Rust binding of include/linux/arm_ffa.h, and
 * struct ffa_driver embeds a struct device_driver, so the driver structure,
 * the device structure and the operation tables stay in C (ffa_glue.c); Rust
 * sees opaque pointers and the functions below. bindgen turns this header
 * into bindings.rs (scripts/gen-bindings.sh); it must stay self-contained.
 *
 * Only built on arm64 kernels with CONFIG_ARM_FFA_TRANSPORT.
 */
#ifndef VMSG_FFA_GLUE_H
#define VMSG_FFA_GLUE_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stdint.h>
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#endif

struct device;
struct module;
struct page;
/* The arm_ffa driver's struct ffa_device (one partition, or one UUID of one). */
struct ffa_device;
/* A struct ffa_driver with its id table, owned by the glue. */
struct vmsg_ffa_driver;

/* Bytes FFA_MSG_SEND_DIRECT_REQ2 carries each way: registers x4-x17. */
#define VMSG_FFA_DIRECT2_SIZE 112

/* Partition properties (FFA_PARTITION_* of linux/arm_ffa.h). */
#define VMSG_FFA_PROP_DIRECT_RECV (1U << 0)
#define VMSG_FFA_PROP_DIRECT_SEND (1U << 1)
#define VMSG_FFA_PROP_INDIRECT_MSG (1U << 2)
#define VMSG_FFA_PROP_NOTIFICATION_RECV (1U << 3)
#define VMSG_FFA_PROP_AARCH64_EXEC (1U << 8)
#define VMSG_FFA_PROP_DIRECT_REQ2_RECV (1U << 9)
#define VMSG_FFA_PROP_DIRECT_REQ2_SEND (1U << 10)

/**
 * struct vmsg_ffa_driver_ops - what the Rust driver does for each callback.
 * @probe: a partition with the driver's UUID appeared; on success stores
 *         the driver's data for @dev in *@data. Returns 0 or -errno.
 * @remove: the partition goes away; @data is what @probe stored.
 */
struct vmsg_ffa_driver_ops {
	int (*probe)(struct ffa_device *dev, void **data);
	void (*remove)(struct ffa_device *dev, void *data);
};

/*
 * Registers an FF-A driver named @name (static storage) for the partitions
 * whose UUID is @uuid (16 bytes, RFC 4122 byte order). @ops must outlive the
 * registration. Returns NULL on failure (no memory, or the FF-A bus refused).
 */
struct vmsg_ffa_driver *vmsg_ffa_driver_register(const char *name, const u8 *uuid,
						 const struct vmsg_ffa_driver_ops *ops,
						 struct module *owner);
/*
 * Unregisters the driver (removing it from every partition) and frees it,
 * and the relinquished notifications of the module.
 */
void vmsg_ffa_driver_unregister(struct vmsg_ffa_driver *drv);

/* Accessors of struct ffa_device. */
struct device *vmsg_ffa_dev_device(struct ffa_device *dev);
u16 vmsg_ffa_dev_id(struct ffa_device *dev);
u32 vmsg_ffa_dev_properties(struct ffa_device *dev);
bool vmsg_ffa_dev_mode_32bit(struct ffa_device *dev);
/* The FF-A version the arm_ffa driver negotiated with the firmware. */
u32 vmsg_ffa_api_version(struct ffa_device *dev);

/*
 * FFA_MSG_SEND_DIRECT_REQ2 to @dev: @regs (VMSG_FFA_DIRECT2_SIZE bytes, the
 * registers x4-x17 in memory order) holds the request and, on success, the
 * response. Returns 0 or -errno (-EOPNOTSUPP when the firmware has no
 * REQ2). May sleep.
 */
int vmsg_ffa_direct_req2(struct ffa_device *dev, u8 *regs);

/*
 * A bound notification, as the glue tracks it: it passes @data to the
 * callback only until vmsg_ffa_notify_relinquish() returns, and outlives
 * the binding (it is freed by vmsg_ffa_driver_unregister()), because the
 * arm_ffa driver may still be calling the callback it looked up just before
 * the relinquish.
 */
struct vmsg_ffa_notif;

/*
 * Binds notification @id from @dev and calls @cb(@id, @data) when it is
 * pending; stores the binding in *@notif. @cb may run in any context,
 * including hard interrupt context, with a spinlock held: it must not sleep.
 */
int vmsg_ffa_notify_request(struct ffa_device *dev, bool per_vcpu, int id,
			    void (*cb)(int id, void *data), void *data,
			    struct vmsg_ffa_notif **notif);
/*
 * Unbinds notification @id. Once it returns @cb is not called with @data
 * any more, even when the unbinding failed (the error is returned).
 */
int vmsg_ffa_notify_relinquish(struct ffa_device *dev, int id, struct vmsg_ffa_notif *notif);

/*
 * FFA_MEM_SHARE of @npages pages (PAGE_SIZE each) with @dev, read-write,
 * normal memory. Stores the global handle in *@handle. May sleep.
 */
int vmsg_ffa_mem_share(struct ffa_device *dev, struct page **pages, u32 npages, u64 tag,
		       u64 *handle);
/* FFA_MEM_RECLAIM of a handle vmsg_ffa_mem_share() returned. May sleep. */
int vmsg_ffa_mem_reclaim(struct ffa_device *dev, u64 handle);

/*
 * Maps @count pages contiguously in kernel virtual memory (vmap), so that
 * pages shared with a partition can serve as one window. NULL on failure.
 */
void *vmsg_ffa_vmap(struct page **pages, u32 count);
void vmsg_ffa_vunmap(void *addr);

#endif /* VMSG_FFA_GLUE_H */

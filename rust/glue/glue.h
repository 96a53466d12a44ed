/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of the project's Rust abstractions (rust/), like the kernel's
 * rust/helpers: what Rust cannot reach directly.
 *
 * The layout of struct virtio_device depends on the kernel configuration
 * (its spinlocks grow with lockdep), so it stays in C: this glue embeds it,
 * implements virtio_config_ops by forwarding every operation to a table of
 * callbacks that Rust provides, and owns the virtqueues. Rust sees only
 * opaque pointers. bindgen turns this header into bindings.rs
 * (scripts/gen-bindings.sh); it must stay self-contained for that.
 */
#ifndef VMSG_VIRTIO_GLUE_H
#define VMSG_VIRTIO_GLUE_H

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
struct vmsg_vdev;

/* Number of u64 words in a feature set (VIRTIO_FEATURES_U64S in 7.2). */
#define VMSG_FEATURE_WORDS 2

/**
 * struct vmsg_vdev_ops - what the transport does for each config operation.
 *
 * Every callback gets the @owner pointer given to vmsg_vdev_new() and the
 * device it is called for. All of them may sleep except @notify, which runs
 * in atomic context. Negative return values are -errno.
 */
struct vmsg_vdev_ops {
	void (*get_config)(void *owner, struct vmsg_vdev *vdev, unsigned int offset, void *buf,
			   unsigned int len);
	void (*set_config)(void *owner, struct vmsg_vdev *vdev, unsigned int offset,
			   const void *buf, unsigned int len);
	u32 (*generation)(void *owner, struct vmsg_vdev *vdev);
	u8 (*get_status)(void *owner, struct vmsg_vdev *vdev);
	void (*set_status)(void *owner, struct vmsg_vdev *vdev, u8 status);
	void (*reset)(void *owner, struct vmsg_vdev *vdev);
	void (*get_features)(void *owner, struct vmsg_vdev *vdev, u64 *features);
	int (*finalize_features)(void *owner, struct vmsg_vdev *vdev, const u64 *features);
	/* Returns the device's maximum size of queue @index, 0 if it has none. */
	int (*queue_max_size)(void *owner, struct vmsg_vdev *vdev, unsigned int index);
	/* Tells the device where queue @index lives and enables it. */
	int (*queue_enable)(void *owner, struct vmsg_vdev *vdev, unsigned int index,
			    unsigned int size, u64 desc, u64 driver, u64 device);
	/* Disables queue @index on the device side (teardown; errors are logged). */
	void (*queue_disable)(void *owner, struct vmsg_vdev *vdev, unsigned int index);
	/* Atomic context: tells the device queue @index has new buffers. */
	bool (*notify)(void *owner, struct vmsg_vdev *vdev, unsigned int index, u32 data);
	/* Looks up shared-memory region @id; false if absent. */
	bool (*get_shm_region)(void *owner, struct vmsg_vdev *vdev, u8 id, u64 *addr, u64 *len);
	/* The struct device is gone: free the owner. */
	void (*release)(void *owner);
};

struct vmsg_vdev *vmsg_vdev_new(struct device *parent, u32 device_id, u32 vendor_id,
				const struct vmsg_vdev_ops *ops, void *owner);
/*
 * Registers the device. Success or not, the caller then holds one
 * reference, which vmsg_vdev_put() drops.
 */
int vmsg_vdev_register(struct vmsg_vdev *vdev);
/* Frees a device that vmsg_vdev_register() never saw. */
void vmsg_vdev_free_unregistered(struct vmsg_vdev *vdev);
/* Unregisters a registered device; the caller keeps its reference. */
void vmsg_vdev_unregister(struct vmsg_vdev *vdev);
void vmsg_vdev_put(struct vmsg_vdev *vdev);
/* Breaks the device's virtqueues, made and to be made; works during its driver's probe. */
void vmsg_vdev_break(struct vmsg_vdev *vdev);
/* Does nothing before registration set up the core, nor after unregistration. */
void vmsg_vdev_config_changed(struct vmsg_vdev *vdev);
/* Runs the callback of queue @index, if it exists; any context. */
bool vmsg_vdev_vq_interrupt(struct vmsg_vdev *vdev, unsigned int index);
/* Runs the callbacks of every queue; any context. */
void vmsg_vdev_vq_interrupt_all(struct vmsg_vdev *vdev);
int vmsg_vdev_index(struct vmsg_vdev *vdev);
struct device *vmsg_vdev_device(struct vmsg_vdev *vdev);
bool vmsg_vdev_has_feature(struct vmsg_vdev *vdev, unsigned int bit);

/*
 * A window (window.c): memory the device side reaches at bus addresses
 * bus_base + offset, where a device's virtqueues are placed and through which
 * every buffer is bounced. @base is a page-aligned kernel mapping of @len
 * bytes (a multiple of the page size) that must stay valid until the window
 * is freed; NULL on bad arguments or no memory.
 */
struct vmsg_window;
struct vmsg_window_stats {
	u64 size;
	/* Bytes reserved now and at most; reservations refused for lack of space. */
	u64 in_use;
	u64 peak;
	u64 failed;
	u64 bounced_to_device;
	u64 bounced_from_device;
};

struct vmsg_window *vmsg_window_new(void *base, u64 bus_base, u64 len);
/* Frees the window; no device may use it any more. */
void vmsg_window_free(struct vmsg_window *w);
void vmsg_window_get_stats(struct vmsg_window *w, struct vmsg_window_stats *out);
/*
 * Places the device's virtqueues and buffers in @w from the next find_vqs on.
 * Before registration only; @w must outlive the device's virtqueues.
 */
void vmsg_vdev_set_window(struct vmsg_vdev *vdev, struct vmsg_window *w);

/* An irq-saving spinlock for Rust (the kernel crate of 7.2 has none). */
unsigned long vmsg_spin_lock_irqsave(void *lock);
bool vmsg_spin_trylock_irqsave(void *lock, unsigned long *flags);
void vmsg_spin_unlock_irqrestore(void *lock, unsigned long flags);

/*
 * Sleeps until the bits of *count in mask are 0 (rust/gate.rs); woken by
 * vmsg_wake_var(count) after each decrement to 0.
 */
void vmsg_wait_while_counted(u32 *count, u32 mask);
void vmsg_wake_var(void *var);

/* True when the caller may sleep (needs CONFIG_PREEMPT_COUNT to see spinlocks). */
bool vmsg_may_sleep(void);
/* True when local interrupts are disabled. */
bool vmsg_irqs_disabled(void);

#endif /* VMSG_VIRTIO_GLUE_H */

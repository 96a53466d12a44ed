/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The contract between the virtio-msg transport (module virtio_msg) and the
 * bus modules (virtio_msg_shm, virtio_msg_ffa, ...). Documented in
 * Documentation/bus-contract.rst. The transport exports these functions;
 * bindgen turns this header into bindings.rs for both sides.
 */
#ifndef VIRTIO_MSG_BUS_H
#define VIRTIO_MSG_BUS_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stdint.h>
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
#endif

struct device;
/* A bus instance as the transport holds it; opaque to the bus. */
struct vmsg_bus;

/* Payload layouts a bus instance may have negotiated (never guessed). */
#define VMSG_LAYOUT_REVISION1 0
#define VMSG_LAYOUT_LATE2025 1

/* What a bus instance negotiated with its device side, once. */
struct vmsg_bus_terms {
	u32 revision;
	u32 max_msg_size;
	u64 features;
	u32 layout;
};

/* What the transport asks of a bus instance. */
struct vmsg_bus_ops {
	/*
	 * Sends request @req (the token field is the bus's to fill) and waits,
	 * for a bounded time, for the matching response, copied to @resp.
	 * Returns the response length, or -ETIMEDOUT, or another -errno. May
	 * sleep.
	 */
	int (*request)(void *priv, const void *req, unsigned int req_len, void *resp,
		       unsigned int resp_cap);
	/*
	 * Sends event @msg. Never sleeps: called in atomic context. -EAGAIN
	 * means no room now: the transport keeps the event (coalesced: one
	 * per virtqueue) and sends it again at the next
	 * vmsg_bus_resume_events(), which the bus must then call once it has
	 * room again. Any other error fails the event's virtqueue.
	 */
	int (*send_event)(void *priv, const void *msg, unsigned int len);
};

/*
 * Registers a bus instance. @ops and @priv must stay valid until
 * vmsg_bus_unregister() returns. Returns NULL on failure. May sleep.
 */
struct vmsg_bus *vmsg_bus_register(struct device *parent, const struct vmsg_bus_terms *terms,
				   const struct vmsg_bus_ops *ops, void *priv);
/*
 * Removes every device of the instance; the instance stays registered and
 * vmsg_bus_receive() keeps working, so that drivers can finish their I/O.
 */
void vmsg_bus_remove_all(struct vmsg_bus *bus);
/*
 * Marks every device of the instance broken: the bus can no longer reach
 * the device side. Their drivers' requests fail at once from then on
 * instead of being queued. @gone: the device side said it is going away
 * (not an error; logged as information). Process context.
 */
void vmsg_bus_break_all(struct vmsg_bus *bus, bool gone);
/*
 * Unregisters the instance (removing any device left). No op is called
 * after it returns, and the bus must not call vmsg_bus_receive() once it
 * started: call vmsg_bus_remove_all() first, then stop receiving.
 */
void vmsg_bus_unregister(struct vmsg_bus *bus);
/*
 * Gives the instance a window: @len bytes (page-aligned, a multiple of the
 * page size) mapped at @base, which the device side reaches at bus addresses
 * @bus_base + offset and nothing else of the driver's memory. Every device
 * added afterwards has its virtqueues placed there and its buffers bounced
 * through it, and must offer VIRTIO_F_ACCESS_PLATFORM. Once per instance,
 * before the first vmsg_bus_add_device(); the memory must stay mapped until
 * vmsg_bus_unregister() returns. May sleep.
 */
int vmsg_bus_set_window(struct vmsg_bus *bus, void *base, u64 bus_base, u64 len);
/* Announces device @dev_num; its driver is probed before this returns. May sleep. */
int vmsg_bus_add_device(struct vmsg_bus *bus, u16 dev_num);
/* Withdraws device @dev_num; its driver is removed before this returns. May sleep. */
int vmsg_bus_remove_device(struct vmsg_bus *bus, u16 dev_num);
/* Hands over a message from the device side that is not a response. Any context. */
int vmsg_bus_receive(struct vmsg_bus *bus, const void *msg, unsigned int len);
/*
 * Says the bus has room for events again after a send_event() returned
 * -EAGAIN: the transport sends the events it kept. Any context; calling it
 * with nothing kept costs a flag test.
 */
void vmsg_bus_resume_events(struct vmsg_bus *bus);

#endif /* VIRTIO_MSG_BUS_H */

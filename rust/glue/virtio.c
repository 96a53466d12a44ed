// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the Rust virtio transport abstraction; see glue.h for why it
 * exists. It holds no policy: every decision is made by the Rust callbacks.
 */
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/preempt.h>
#include "glue.h"
#include "window.h"

struct vmsg_vdev {
	struct virtio_device vdev;
	const struct vmsg_vdev_ops *ops;
	void *owner;
	/* Serialises queue lookup by index against queue deletion. */
	spinlock_t vqs_lock;
	struct virtqueue **vqs;
	unsigned int nvqs;
	/*
	 * Set once register_virtio_device() has set up the core's config lock
	 * (it resets the device right after), cleared at unregistration:
	 * config changes reach the core only meanwhile.
	 */
	bool core_ready;
	/* Set by vmsg_vdev_break(), under vqs_lock: queues created later break too. */
	bool broken;
	/* Where virtqueues and buffers live, or NULL for the DMA API's addresses. */
	struct vmsg_window *window;
};

static struct vmsg_vdev *to_vmsg(struct virtio_device *vdev)
{
	return container_of(vdev, struct vmsg_vdev, vdev);
}

static void vmsg_get(struct virtio_device *vdev, unsigned int offset, void *buf, unsigned int len)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	v->ops->get_config(v->owner, v, offset, buf, len);
}

static void vmsg_set(struct virtio_device *vdev, unsigned int offset, const void *buf,
		     unsigned int len)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	v->ops->set_config(v->owner, v, offset, buf, len);
}

static u32 vmsg_generation(struct virtio_device *vdev)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	return v->ops->generation(v->owner, v);
}

static u8 vmsg_get_status(struct virtio_device *vdev)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	return v->ops->get_status(v->owner, v);
}

static void vmsg_set_status(struct virtio_device *vdev, u8 status)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	v->ops->set_status(v->owner, v, status);
}

static void vmsg_reset(struct virtio_device *vdev)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	WRITE_ONCE(v->core_ready, true);
	v->ops->reset(v->owner, v);
}

static void vmsg_get_extended_features(struct virtio_device *vdev, u64 *features)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	BUILD_BUG_ON(VMSG_FEATURE_WORDS != VIRTIO_FEATURES_U64S);
	v->ops->get_features(v->owner, v, features);
}

static int vmsg_finalize_features(struct virtio_device *vdev)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	/* Give virtio_ring a chance to accept features. */
	vring_transport_features(vdev);
	/* Without it the virtio core would bypass the window with physical addresses. */
	if (v->window && !__virtio_test_bit(vdev, VIRTIO_F_ACCESS_PLATFORM)) {
		dev_err(&vdev->dev,
			"the device side reaches only the bus window but does not offer VIRTIO_F_ACCESS_PLATFORM\n");
		return -ENODEV;
	}
	return v->ops->finalize_features(v->owner, v, vdev->features_array);
}

static bool vmsg_notify(struct virtqueue *vq)
{
	struct vmsg_vdev *v = to_vmsg(vq->vdev);
	u32 data = 0;

	if (__virtio_test_bit(vq->vdev, VIRTIO_F_NOTIFICATION_DATA))
		data = vring_notification_data(vq);
	return v->ops->notify(v->owner, v, vq->index, data);
}

static void vmsg_del_vqs(struct virtio_device *vdev)
{
	struct vmsg_vdev *v = to_vmsg(vdev);
	struct virtqueue **vqs;
	unsigned long flags;
	unsigned int i, n;

	spin_lock_irqsave(&v->vqs_lock, flags);
	vqs = v->vqs;
	n = v->nvqs;
	v->vqs = NULL;
	v->nvqs = 0;
	spin_unlock_irqrestore(&v->vqs_lock, flags);

	for (i = 0; i < n; i++) {
		if (!vqs[i])
			continue;
		v->ops->queue_disable(v->owner, v, i);
		vring_del_virtqueue(vqs[i]);
	}
	kfree(vqs);
}

static int vmsg_find_vqs(struct virtio_device *vdev, unsigned int nvqs, struct virtqueue *vqs[],
			 struct virtqueue_info vqs_info[], struct irq_affinity *desc)
{
	struct vmsg_vdev *v = to_vmsg(vdev);
	struct virtqueue **table;
	unsigned long flags;
	unsigned int i, queue_idx = 0;
	int err;

	table = kcalloc(nvqs, sizeof(*table), GFP_KERNEL);
	if (!table)
		return -ENOMEM;
	spin_lock_irqsave(&v->vqs_lock, flags);
	v->vqs = table;
	v->nvqs = nvqs;
	spin_unlock_irqrestore(&v->vqs_lock, flags);

	for (i = 0; i < nvqs; i++) {
		struct virtqueue_info *info = &vqs_info[i];
		struct virtqueue *vq;
		unsigned int index = queue_idx;
		int max;

		if (!info->name) {
			vqs[i] = NULL;
			continue;
		}
		queue_idx++;
		max = v->ops->queue_max_size(v->owner, v, index);
		if (max <= 0) {
			err = max ? max : -ENOENT;
			goto fail;
		}
		vq = vring_create_virtqueue_map(index, max, SMP_CACHE_BYTES, vdev, true, true,
						info->ctx, vmsg_notify, info->callback, info->name,
						vdev->vmap);
		if (!vq) {
			err = -ENOMEM;
			goto fail;
		}
		vq->num_max = max;
		err = v->ops->queue_enable(v->owner, v, index, virtqueue_get_vring_size(vq),
					   virtqueue_get_desc_addr(vq),
					   virtqueue_get_avail_addr(vq),
					   virtqueue_get_used_addr(vq));
		if (err) {
			vring_del_virtqueue(vq);
			goto fail;
		}
		spin_lock_irqsave(&v->vqs_lock, flags);
		table[index] = vq;
		if (v->broken)
			__virtqueue_break(vq);
		spin_unlock_irqrestore(&v->vqs_lock, flags);
		vqs[i] = vq;
	}
	return 0;
fail:
	vmsg_del_vqs(vdev);
	return err;
}

static void vmsg_synchronize_cbs(struct virtio_device *vdev)
{
	struct vmsg_vdev *v = to_vmsg(vdev);
	unsigned long flags;

	/* Callbacks run under vqs_lock: taking it waits for running ones. */
	spin_lock_irqsave(&v->vqs_lock, flags);
	spin_unlock_irqrestore(&v->vqs_lock, flags);
}

static const char *vmsg_bus_name(struct virtio_device *vdev)
{
	return "virtio-msg";
}

static bool vmsg_get_shm_region(struct virtio_device *vdev, struct virtio_shm_region *region,
				u8 id)
{
	struct vmsg_vdev *v = to_vmsg(vdev);

	return v->ops->get_shm_region(v->owner, v, id, &region->addr, &region->len);
}

/*
 * Map operations of a device with a window: the virtio core passes
 * vdev->vmap, whose dma_dev is the virtio device itself.
 */
static struct vmsg_window *map_window(union virtio_map map)
{
	return to_vmsg(dev_to_virtio(map.dma_dev))->window;
}

static dma_addr_t vmsg_map_page(union virtio_map map, struct page *page, unsigned long offset,
				size_t size, enum dma_data_direction dir, unsigned long attrs)
{
	return vmsg_window_map(map_window(map), page, offset, size, dir);
}

static void vmsg_unmap_page(union virtio_map map, dma_addr_t handle, size_t size,
			    enum dma_data_direction dir, unsigned long attrs)
{
	vmsg_window_unmap(map_window(map), handle, size, dir, attrs);
}

static void vmsg_sync_for_cpu(union virtio_map map, dma_addr_t handle, size_t size,
			      enum dma_data_direction dir)
{
	vmsg_window_sync(map_window(map), handle, size, dir, false);
}

static void vmsg_sync_for_device(union virtio_map map, dma_addr_t handle, size_t size,
				 enum dma_data_direction dir)
{
	vmsg_window_sync(map_window(map), handle, size, dir, true);
}

static void *vmsg_map_alloc(union virtio_map map, size_t size, dma_addr_t *handle, gfp_t gfp)
{
	return vmsg_window_alloc(map_window(map), size, handle);
}

static void vmsg_map_free(union virtio_map map, size_t size, void *vaddr, dma_addr_t handle,
			  unsigned long attrs)
{
	vmsg_window_free_coherent(map_window(map), size, handle);
}

static bool vmsg_need_sync(union virtio_map map, dma_addr_t handle)
{
	return true;
}

static int vmsg_mapping_error(union virtio_map map, dma_addr_t handle)
{
	return handle == DMA_MAPPING_ERROR ? -ENOMEM : 0;
}

static size_t vmsg_max_mapping_size(union virtio_map map)
{
	return vmsg_window_max_mapping(map_window(map));
}

static const struct virtio_map_ops vmsg_window_map_ops = {
	.map_page = vmsg_map_page,
	.unmap_page = vmsg_unmap_page,
	.sync_single_for_cpu = vmsg_sync_for_cpu,
	.sync_single_for_device = vmsg_sync_for_device,
	.alloc = vmsg_map_alloc,
	.free = vmsg_map_free,
	.need_sync = vmsg_need_sync,
	.mapping_error = vmsg_mapping_error,
	.max_mapping_size = vmsg_max_mapping_size,
};

static const struct virtio_config_ops vmsg_config_ops = {
	.get = vmsg_get,
	.set = vmsg_set,
	.generation = vmsg_generation,
	.get_status = vmsg_get_status,
	.set_status = vmsg_set_status,
	.reset = vmsg_reset,
	.find_vqs = vmsg_find_vqs,
	.del_vqs = vmsg_del_vqs,
	.synchronize_cbs = vmsg_synchronize_cbs,
	.get_extended_features = vmsg_get_extended_features,
	.finalize_features = vmsg_finalize_features,
	.bus_name = vmsg_bus_name,
	.get_shm_region = vmsg_get_shm_region,
};

static void vmsg_release(struct device *dev)
{
	struct virtio_device *vdev = dev_to_virtio(dev);
	struct vmsg_vdev *v = to_vmsg(vdev);

	v->ops->release(v->owner);
	kfree(v->vqs);
	kfree(v);
}

struct vmsg_vdev *vmsg_vdev_new(struct device *parent, u32 device_id, u32 vendor_id,
				const struct vmsg_vdev_ops *ops, void *owner)
{
	struct vmsg_vdev *v = kzalloc(sizeof(*v), GFP_KERNEL);

	if (!v)
		return NULL;
	v->ops = ops;
	v->owner = owner;
	spin_lock_init(&v->vqs_lock);
	v->vdev.dev.parent = parent;
	v->vdev.dev.release = vmsg_release;
	v->vdev.id.device = device_id;
	v->vdev.id.vendor = vendor_id;
	v->vdev.config = &vmsg_config_ops;
	/* Without a window the DMA API maps for the bus device, as virtio-mmio does. */
	v->vdev.vmap.dma_dev = parent;
	return v;
}

void vmsg_vdev_set_window(struct vmsg_vdev *v, struct vmsg_window *w)
{
	v->window = w;
	v->vdev.map = &vmsg_window_map_ops;
	v->vdev.vmap.dma_dev = &v->vdev.dev;
}

int vmsg_vdev_register(struct vmsg_vdev *v)
{
	/*
	 * register_virtio_device() starts with device_initialize(): from then
	 * on, success or not, the caller owns one reference to the device.
	 */
	int err = register_virtio_device(&v->vdev);

	if (err)
		WRITE_ONCE(v->core_ready, false);
	return err;
}

void vmsg_vdev_free_unregistered(struct vmsg_vdev *v)
{
	v->ops->release(v->owner);
	kfree(v);
}

void vmsg_vdev_unregister(struct vmsg_vdev *v)
{
	/* Keeps the caller's reference: vmsg_vdev_put() drops it. */
	get_device(&v->vdev.dev);
	unregister_virtio_device(&v->vdev);
	/* After: the driver's removal resets the device, which sets it again. */
	WRITE_ONCE(v->core_ready, false);
}

void vmsg_vdev_put(struct vmsg_vdev *v)
{
	put_device(&v->vdev.dev);
}

void vmsg_vdev_break(struct vmsg_vdev *v)
{
	unsigned long flags;
	unsigned int i;

	/*
	 * The transport's own table rather than virtio_break_device(), whose
	 * list the core sets up only in register_virtio_device(): this works
	 * from the moment the device exists, through its driver's probe.
	 */
	spin_lock_irqsave(&v->vqs_lock, flags);
	v->broken = true;
	for (i = 0; i < v->nvqs; i++)
		if (v->vqs[i])
			__virtqueue_break(v->vqs[i]);
	spin_unlock_irqrestore(&v->vqs_lock, flags);
}

void vmsg_vdev_config_changed(struct vmsg_vdev *v)
{
	if (READ_ONCE(v->core_ready))
		virtio_config_changed(&v->vdev);
}

bool vmsg_vdev_vq_interrupt(struct vmsg_vdev *v, unsigned int index)
{
	unsigned long flags;
	bool found = false;

	spin_lock_irqsave(&v->vqs_lock, flags);
	if (index < v->nvqs && v->vqs[index]) {
		vring_interrupt(0, v->vqs[index]);
		found = true;
	}
	spin_unlock_irqrestore(&v->vqs_lock, flags);
	return found;
}

void vmsg_vdev_vq_interrupt_all(struct vmsg_vdev *v)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&v->vqs_lock, flags);
	for (i = 0; i < v->nvqs; i++)
		if (v->vqs[i])
			vring_interrupt(0, v->vqs[i]);
	spin_unlock_irqrestore(&v->vqs_lock, flags);
}

int vmsg_vdev_index(struct vmsg_vdev *v)
{
	return v->vdev.index;
}

struct device *vmsg_vdev_device(struct vmsg_vdev *v)
{
	return &v->vdev.dev;
}

bool vmsg_vdev_has_feature(struct vmsg_vdev *v, unsigned int bit)
{
	return __virtio_test_bit(&v->vdev, bit);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * C side of the Rust FF-A abstraction (rust/ffa/); see ffa_glue.h for why it
 * exists. It holds no policy: every decision is made by the Rust callbacks.
 */
#include <linux/arm_ffa.h>
#include <linux/build_bug.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uuid.h>
#include <linux/vmalloc.h>
#include "ffa_glue.h"

static_assert(sizeof(struct ffa_send_direct_data2) == VMSG_FFA_DIRECT2_SIZE);
static_assert(VMSG_FFA_PROP_DIRECT_RECV == FFA_PARTITION_DIRECT_RECV);
static_assert(VMSG_FFA_PROP_DIRECT_SEND == FFA_PARTITION_DIRECT_SEND);
static_assert(VMSG_FFA_PROP_INDIRECT_MSG == FFA_PARTITION_INDIRECT_MSG);
static_assert(VMSG_FFA_PROP_NOTIFICATION_RECV == FFA_PARTITION_NOTIFICATION_RECV);
static_assert(VMSG_FFA_PROP_AARCH64_EXEC == FFA_PARTITION_AARCH64_EXEC);
static_assert(VMSG_FFA_PROP_DIRECT_REQ2_RECV == FFA_PARTITION_DIRECT_REQ2_RECV);
static_assert(VMSG_FFA_PROP_DIRECT_REQ2_SEND == FFA_PARTITION_DIRECT_REQ2_SEND);

struct vmsg_ffa_driver {
	struct ffa_driver drv;
	/* One UUID and the all-zero terminator. */
	struct ffa_device_id ids[2];
	const struct vmsg_ffa_driver_ops *ops;
};

static struct vmsg_ffa_driver *to_vmsg_drv(struct ffa_device *dev)
{
	struct ffa_driver *drv = to_ffa_driver(dev->dev.driver);

	return container_of(drv, struct vmsg_ffa_driver, drv);
}

static int vmsg_ffa_probe(struct ffa_device *dev)
{
	void *data = NULL;
	int ret;

	ret = to_vmsg_drv(dev)->ops->probe(dev, &data);
	if (!ret)
		ffa_dev_set_drvdata(dev, data);
	return ret;
}

static void vmsg_ffa_remove(struct ffa_device *dev)
{
	to_vmsg_drv(dev)->ops->remove(dev, ffa_dev_get_drvdata(dev));
	ffa_dev_set_drvdata(dev, NULL);
}

struct vmsg_ffa_driver *vmsg_ffa_driver_register(const char *name, const u8 *uuid,
						 const struct vmsg_ffa_driver_ops *ops,
						 struct module *owner)
{
	struct vmsg_ffa_driver *d = kzalloc_obj(*d);

	if (!d)
		return NULL;
	import_uuid(&d->ids[0].uuid, uuid);
	d->ops = ops;
	d->drv.name = name;
	d->drv.probe = vmsg_ffa_probe;
	d->drv.remove = vmsg_ffa_remove;
	d->drv.id_table = d->ids;
	if (ffa_driver_register(&d->drv, owner, name)) {
		kfree(d);
		return NULL;
	}
	return d;
}

struct vmsg_ffa_notif {
	struct list_head node;
	/* Held while the callback runs, so that relinquish can wait for it. */
	spinlock_t lock;
	void (*cb)(int id, void *data);
	/* NULL once relinquished. */
	void *data;
};

/* Relinquished notifications, kept until the driver is unregistered. */
static LIST_HEAD(vmsg_ffa_retired);
static DEFINE_MUTEX(vmsg_ffa_retired_lock);

static void vmsg_ffa_free_retired(void)
{
	struct vmsg_ffa_notif *n, *tmp;

	mutex_lock(&vmsg_ffa_retired_lock);
	list_for_each_entry_safe(n, tmp, &vmsg_ffa_retired, node) {
		list_del(&n->node);
		kfree(n);
	}
	mutex_unlock(&vmsg_ffa_retired_lock);
}

void vmsg_ffa_driver_unregister(struct vmsg_ffa_driver *drv)
{
	ffa_driver_unregister(&drv->drv);
	kfree(drv);
	vmsg_ffa_free_retired();
}

struct device *vmsg_ffa_dev_device(struct ffa_device *dev)
{
	return &dev->dev;
}

u16 vmsg_ffa_dev_id(struct ffa_device *dev)
{
	return dev->vm_id;
}

u32 vmsg_ffa_dev_properties(struct ffa_device *dev)
{
	return dev->properties;
}

bool vmsg_ffa_dev_mode_32bit(struct ffa_device *dev)
{
	return dev->mode_32bit;
}

u32 vmsg_ffa_api_version(struct ffa_device *dev)
{
	return dev->ops->info_ops->api_version_get();
}

int vmsg_ffa_direct_req2(struct ffa_device *dev, u8 *regs)
{
	struct ffa_send_direct_data2 data;
	int ret;

	memcpy(&data, regs, sizeof(data));
	ret = dev->ops->msg_ops->sync_send_receive2(dev, &data);
	if (!ret)
		memcpy(regs, &data, sizeof(data));
	return ret;
}

static void vmsg_ffa_notif_cb(int id, void *cb_data)
{
	struct vmsg_ffa_notif *n = cb_data;
	unsigned long flags;

	spin_lock_irqsave(&n->lock, flags);
	if (n->data)
		n->cb(id, n->data);
	spin_unlock_irqrestore(&n->lock, flags);
}

int vmsg_ffa_notify_request(struct ffa_device *dev, bool per_vcpu, int id,
			    void (*cb)(int id, void *data), void *data,
			    struct vmsg_ffa_notif **notif)
{
	struct vmsg_ffa_notif *n = kzalloc_obj(*n);
	int ret;

	if (!n)
		return -ENOMEM;
	INIT_LIST_HEAD(&n->node);
	spin_lock_init(&n->lock);
	n->cb = cb;
	n->data = data;
	ret = dev->ops->notifier_ops->notify_request(dev, per_vcpu, vmsg_ffa_notif_cb, n, id);
	if (ret) {
		kfree(n);
		return ret;
	}
	*notif = n;
	return 0;
}

int vmsg_ffa_notify_relinquish(struct ffa_device *dev, int id, struct vmsg_ffa_notif *notif)
{
	unsigned long flags;
	int ret;

	ret = dev->ops->notifier_ops->notify_relinquish(dev, id);
	/* A call that looked the callback up before the relinquish ends here. */
	spin_lock_irqsave(&notif->lock, flags);
	notif->data = NULL;
	spin_unlock_irqrestore(&notif->lock, flags);
	mutex_lock(&vmsg_ffa_retired_lock);
	list_add(&notif->node, &vmsg_ffa_retired);
	mutex_unlock(&vmsg_ffa_retired_lock);
	return ret;
}

int vmsg_ffa_mem_share(struct ffa_device *dev, struct page **pages, u32 npages, u64 tag,
		       u64 *handle)
{
	struct ffa_mem_region_attributes attr = {
		.receiver = dev->vm_id,
		.attrs = FFA_MEM_RW,
	};
	struct ffa_mem_ops_args args = {
		.use_txbuf = true,
		.attrs = &attr,
		.nattrs = 1,
		.tag = tag,
	};
	struct sg_table sgt;
	int ret;

	if (!npages)
		return -EINVAL;
	ret = sg_alloc_table_from_pages(&sgt, pages, npages, 0, (size_t)npages * PAGE_SIZE,
					GFP_KERNEL);
	if (ret)
		return ret;
	args.sg = sgt.sgl;
	ret = dev->ops->mem_ops->memory_share(&args);
	sg_free_table(&sgt);
	if (!ret)
		*handle = args.g_handle;
	return ret;
}

int vmsg_ffa_mem_reclaim(struct ffa_device *dev, u64 handle)
{
	return dev->ops->mem_ops->memory_reclaim(handle, 0);
}

void *vmsg_ffa_vmap(struct page **pages, u32 count)
{
	return vmap(pages, count, VM_MAP, PAGE_KERNEL);
}

void vmsg_ffa_vunmap(void *addr)
{
	vunmap(addr);
}

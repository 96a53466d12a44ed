// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the bus contract (rust/bus/virtio_msg_bus.h), whose functions the
 * Rust part of this module defines, to the bus modules.
 */
#include <linux/export.h>
#include <linux/module.h>
#include "virtio_msg_bus.h"

EXPORT_SYMBOL_GPL(vmsg_bus_register);
EXPORT_SYMBOL_GPL(vmsg_bus_remove_all);
EXPORT_SYMBOL_GPL(vmsg_bus_break_all);
EXPORT_SYMBOL_GPL(vmsg_bus_unregister);
EXPORT_SYMBOL_GPL(vmsg_bus_set_window);
EXPORT_SYMBOL_GPL(vmsg_bus_add_device);
EXPORT_SYMBOL_GPL(vmsg_bus_remove_device);
EXPORT_SYMBOL_GPL(vmsg_bus_receive);
EXPORT_SYMBOL_GPL(vmsg_bus_resume_events);

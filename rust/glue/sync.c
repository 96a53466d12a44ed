// SPDX-License-Identifier: GPL-2.0
/*
 * Locking helpers for the project's Rust code (rust/sync.rs): what the
 * kernel crate of Linux 7.2 does not wrap. Linked into virtio_msg only and
 * exported to the bus modules, which need virtio_msg anyway: one definition
 * of each symbol, also when everything is built in.
 */
#include <linux/export.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/wait_bit.h>
#include "glue.h"

/*
 * vmsg_may_sleep() tells the transport whether a config read may wait for a
 * message round trip: the virtio core calls get_config() from atomic context
 * too (under a driver's spinlock, say) and says nothing about it. in_atomic()
 * sees a held spinlock only with CONFIG_PREEMPT_COUNT (checkpatch warns about
 * in_atomic() outside core code for that reason), so the transport needs it;
 * drivers/Kconfig says so too.
 */
#ifndef CONFIG_PREEMPT_COUNT
#error "virtio_msg needs CONFIG_PREEMPT_COUNT (selected by PREEMPTION or DEBUG_ATOMIC_SLEEP)"
#endif

unsigned long vmsg_spin_lock_irqsave(void *lock)
{
	unsigned long flags;

	spin_lock_irqsave((spinlock_t *)lock, flags);
	return flags;
}
EXPORT_SYMBOL_GPL(vmsg_spin_lock_irqsave);

bool vmsg_spin_trylock_irqsave(void *lock, unsigned long *flags)
{
	return spin_trylock_irqsave((spinlock_t *)lock, *flags);
}
EXPORT_SYMBOL_GPL(vmsg_spin_trylock_irqsave);

void vmsg_spin_unlock_irqrestore(void *lock, unsigned long flags)
{
	spin_unlock_irqrestore((spinlock_t *)lock, flags);
}
EXPORT_SYMBOL_GPL(vmsg_spin_unlock_irqrestore);

bool vmsg_may_sleep(void)
{
	return !in_atomic() && !irqs_disabled();
}
EXPORT_SYMBOL_GPL(vmsg_may_sleep);

bool vmsg_irqs_disabled(void)
{
	return irqs_disabled();
}
EXPORT_SYMBOL_GPL(vmsg_irqs_disabled);

void vmsg_wait_while_counted(u32 *count, u32 mask)
{
	wait_var_event(count, !(READ_ONCE(*count) & mask));
}
EXPORT_SYMBOL_GPL(vmsg_wait_while_counted);

void vmsg_wake_var(void *var)
{
	wake_up_var(var);
}
EXPORT_SYMBOL_GPL(vmsg_wake_var);

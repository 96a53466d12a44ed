// SPDX-License-Identifier: GPL-2.0
/*
 * Locking helpers for the project's Rust code (rust/sync.rs): what the
 * kernel crate of Linux 7.2 does not wrap.
 */
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/wait_bit.h>
#include "glue.h"

unsigned long vmsg_spin_lock_irqsave(void *lock)
{
	unsigned long flags;

	spin_lock_irqsave((spinlock_t *)lock, flags);
	return flags;
}

bool vmsg_spin_trylock_irqsave(void *lock, unsigned long *flags)
{
	return spin_trylock_irqsave((spinlock_t *)lock, *flags);
}

void vmsg_spin_unlock_irqrestore(void *lock, unsigned long flags)
{
	spin_unlock_irqrestore((spinlock_t *)lock, flags);
}

bool vmsg_may_sleep(void)
{
	return !in_atomic() && !irqs_disabled();
}

bool vmsg_irqs_disabled(void)
{
	return irqs_disabled();
}

void vmsg_wait_while_counted(u32 *count, u32 mask)
{
	wait_var_event(count, !(READ_ONCE(*count) & mask));
}

void vmsg_wake_var(void *var)
{
	wake_up_var(var);
}

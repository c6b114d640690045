/* The node lock: a recursive mutex in 8 bytes.
 *
 * Every node the kernel knows has one, and pthread_mutex_t takes 40 bytes:
 * a fifth of the 256-byte budget per known inode. This is the classic
 * three-state futex mutex (0 free, 1 held, 2 held with waiters) plus the
 * holder's thread id and recursion depth in one word, since a node's lock is
 * retaken by the holder (charge_node -> node_stat -> node_open). Linux thread
 * ids are below 2^22 (PID_MAX_LIMIT), which leaves 10 bits of depth. */
#include "nodes/nodes.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TID_BITS 22
#define TID_MASK ((1u << TID_BITS) - 1)
#define DEPTH_ONE (1u << TID_BITS)

static __thread uint32_t self_tid;

static uint32_t self(void)
{
	if (!self_tid)
		self_tid = (uint32_t)gettid() & TID_MASK;
	return self_tid;
}

static void futex_op(uint32_t *word, int op, uint32_t val)
{
	syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

void nlock_lock(struct nlock *l)
{
	uint32_t me = self(), c = 0;
	uint32_t own = __atomic_load_n(&l->owner, __ATOMIC_RELAXED);

	/* Only this thread ever stores its own id, so seeing it means we hold
	 * the lock. */
	if ((own & TID_MASK) == me) {
		__atomic_store_n(&l->owner, own + DEPTH_ONE, __ATOMIC_RELAXED);
		return;
	}
	if (!__atomic_compare_exchange_n(&l->word, &c, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED)) {
		if (c != 2)
			c = __atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE);
		while (c != 0) {
			futex_op(&l->word, FUTEX_WAIT_PRIVATE, 2);
			c = __atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE);
		}
	}
	__atomic_store_n(&l->owner, me | DEPTH_ONE, __ATOMIC_RELAXED);
}

void nlock_unlock(struct nlock *l)
{
	uint32_t own = __atomic_load_n(&l->owner, __ATOMIC_RELAXED);

	if ((own >> TID_BITS) > 1) {
		__atomic_store_n(&l->owner, own - DEPTH_ONE, __ATOMIC_RELAXED);
		return;
	}
	__atomic_store_n(&l->owner, 0, __ATOMIC_RELAXED);
	if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2)
		futex_op(&l->word, FUTEX_WAKE_PRIVATE, 1);
}

#include "cvmfs/rcu_thread.h"

#include <pthread.h>
#include <stdbool.h>

#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>

static pthread_key_t rcu_key;
static pthread_once_t rcu_key_once = PTHREAD_ONCE_INIT;
static __thread bool rcu_registered;
static void (*exit_hook)(void);

void rcu_thread_on_exit(void (*fn)(void))
{
	exit_hook = fn;
}

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	if (exit_hook)
		exit_hook();
	urcu_memb_unregister_thread();
}

static void rcu_key_create(void)
{
	pthread_key_create(&rcu_key, rcu_thread_exit);
}

void rcu_thread_enter(void)
{
	if (rcu_registered)
		return;
	pthread_once(&rcu_key_once, rcu_key_create);
	urcu_memb_register_thread();
	/* A non-NULL value makes the destructor run at thread exit. */
	pthread_setspecific(rcu_key, (void *)1);
	rcu_registered = true;
}

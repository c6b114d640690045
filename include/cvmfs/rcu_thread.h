/* liburcu (urcu-memb) registration for threads the project does not create:
 * libfuse starts and retires its workers on its own. */
#pragma once

/* Register the calling thread once; it is unregistered at thread exit. */
void rcu_thread_enter(void);
/* Run fn in every registered thread as it exits, while still registered
 * (what a thread holds under RCU-freed objects goes with it); set once,
 * before the threads start. */
void rcu_thread_on_exit(void (*fn)(void));

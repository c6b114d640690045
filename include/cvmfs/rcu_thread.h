/* liburcu (urcu-memb) registration for threads the project does not create:
 * libfuse starts and retires its workers on its own. */
#pragma once

/* Register the calling thread once; it is unregistered at thread exit. */
void rcu_thread_enter(void);

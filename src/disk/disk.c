/* The daemon's state, and liburcu registration of FUSE worker threads
 * (see cvmfs/rcu_thread.h). */
#include "disk.h"

#include "cvmfs/rcu_thread.h"

struct disk *disk_ctx; /* disk_main.c sets it at start */

void disk_thread_enter(void)
{
	rcu_thread_enter();
}

/* liburcu registration of FUSE worker threads (see cvmfs/rcu_thread.h). */
#include "disk.h"

#include "cvmfs/rcu_thread.h"

void disk_thread_enter(void)
{
	rcu_thread_enter();
}

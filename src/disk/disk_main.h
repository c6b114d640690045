#pragma once
/* Entry point of `cvmfsd disk`; argv[0] is "disk". */
int cvmfsd_disk_main(int argc, char **argv);

/* disk_survive.c: the server process outlived (issue 17). */
#include "cvmfs/fuse_survive.h"
extern struct fuse_survive SURV;
/* Supervisor: the journal and the supervisor's state. */
int disk_survive_setup(bool upgraded);
/* Server taking over: journal indexed, usage recounted, DATA/work emptied. */
int disk_survive_prepare(void);
/* Server taking over, before the session's loop: open files counted. */
void disk_survive_restore_opens(void);

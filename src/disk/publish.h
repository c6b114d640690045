/* cvmfsd disk: the published status (RUN_DIR/disk/NAME.json, the pid
 * file) and the state kept in DATA/state. */
#pragma once

#include "disk.h"

/* publish.c */
int publish_start(void);
void publish_stop(void);
int publish_group(const char *group);
int publish_pidfile(bool create);
int publish_write(const char *state);
/* Publish now, then remove a launcher's limit request (disk_config.c):
 * once it is gone, the status holds the answer. */
void publish_answer(void);
int state_load(struct disk_state *s);
int state_save(bool clean);

/* Directory helpers shared by the daemons and the launcher. */
#pragma once

#include <sys/types.h>

/* mkdir -p: missing parents 0755, PATH itself MODE. 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);
/* Empties the directory at DFD (not DFD itself), best effort. */
void rm_rf_at(int dfd, int depth);

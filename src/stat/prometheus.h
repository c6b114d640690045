/* cvmfs-stat --prometheus: the figures in Prometheus' text exposition
 * format (doc/metrics.md), for node_exporter's textfile collector. */
#pragma once

#include "cvmfs/disk_status.h"

#include <stddef.h>
#include <stdio.h>

/* rows: the workspaces, sorted; views_mnt: the views daemon's mountpoint,
 * whose counts are read from views_mnt.json. */
void print_prometheus(FILE *out, const struct disk_status *rows, size_t n,
		      const char *views_mnt);

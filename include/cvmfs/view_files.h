/* The files of a per-container views tree (VIEWS/ct/NAME/...) that a CVM
 * gets over the same path: owned by cvmfsd views (src/views/fs_tree.c
 * serves exactly these; tests/unit/test_view_files.c fails when the two
 * differ), read by every program that binds them (cvm-launch, the hook).
 * A '*' component stands for each entry of that directory of the tree
 * (the host's block devices, NUMA nodes); a directory entry is bound
 * whole. Optional ones are left out where either side lacks them (a
 * kernel without PSI or NUMA, an older views daemon). */
#pragma once

#include <stdbool.h>

struct cvmfs_view_file {
	const char *path; /* relative to the tree and to the CVM's root */
	bool optional;
};

static const struct cvmfs_view_file cvmfs_view_files[] = {
	{ "proc/meminfo" },
	{ "proc/cpuinfo" },
	{ "proc/stat" },
	{ "proc/uptime" },
	{ "proc/loadavg" },
	{ "proc/swaps" },
	{ "proc/diskstats" },
	{ "proc/vmstat", true },
	{ "proc/pressure/cpu", true },
	{ "proc/pressure/memory", true },
	{ "proc/pressure/io", true },
	{ "sys/block/*/stat", true },
	{ "sys/devices/system/cpu" },
	{ "sys/devices/system/node/*/cpulist", true },
	{ "sys/devices/system/node/*/cpumap", true },
	{ "sys/devices/system/node/*/meminfo", true },
};

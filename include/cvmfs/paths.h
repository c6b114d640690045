/* The default places of cvmfs on a host, in one header for every program
 * (doc/architecture.md, Files): each is a string literal, so that help
 * texts can name them ("default " CVMFS_RUN_DIR). */
#pragma once

#define CVMFS_CONFIG_FILE "/etc/cvmfs/cvmfs.conf" /* every program's -c default */
#define CVMFS_RUN_DIR "/run/cvmfs"                /* live figures, pid files, records */
#define CVMFS_STATE_DIR "/var/lib/cvmfs"          /* workspaces, volumes, id ranges */

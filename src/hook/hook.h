/* cvmfs-hook: an OCI hook that binds a container's own views tree over its
 * /proc files and /sys/devices/system/cpu (doc/cvmfs-hook.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct hook_opts {
	char *config;
	char *views;     /* the views daemon's mountpoint */
	char *ct_parent; /* its --ct-parent */
	char *run_dir;   /* records: RUN_DIR/hook/ID */
};

/* What the runtime says on stdin (the OCI state) and the bundle's
 * config.json says about the root. */
struct oci_state {
	char id[256];
	long pid;
	char bundle[4096];
	char rootfs[4096]; /* root.path, made absolute against the bundle */
};

/* json.c: members of a JSON object's top level. */
/* The raw value of member key of the object at obj ('{'...): 0 and
 * val and len, -ENOENT, or -EINVAL for text that is not such an object. */
int json_member(const char *obj, const char *key, const char **val, size_t *len);
/* A string value (raw, with its quotes) into out, escapes decoded. */
int json_string(const char *val, size_t len, char *out, size_t size);

/* state.c */
/* Read the state from fd (a pipe; at most 64 KiB). */
int oci_state_read(int fd, struct oci_state *s);
/* BUNDLE/config.json's root.path into s->rootfs. */
int oci_rootfs_read(struct oci_state *s);
/* The container's process to act for: ourselves when the runtime runs us
 * inside the container's namespaces (runc's createContainer), else the
 * state's pid, whose mount namespace we then enter. Its cgroup (the v1
 * memory line, else v2's) into cg. */
int container_enter(const struct oci_state *s, char *cg, size_t size, bool *inside);

/* tree.c */
/* The container's tree: VIEWS/ct/NAME for cgroup /CT_PARENT/NAME, else
 * (inside only) the anonymous tree the views send a limited reader of this
 * container to. 0, 1 (no limit: nothing to bind) or a negative errno.
 * *generic: VIEWS has only the per-reader files (a CVM's /dev/.cvmfs/views,
 * doc/cvmfs-hook.md), which render for whoever opens them: tree is VIEWS,
 * bound whatever the limits (an inner container without its own still has
 * its CVM's). */
int views_tree(const struct hook_opts *o, const char *cg, bool inside, char *tree, size_t size,
	       bool *generic);
/* Bind the tree's files over ROOTFS's, read-only. */
int bind_tree(const char *tree, bool generic, const char *rootfs);

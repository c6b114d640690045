/* Emptying the union's writable layer for a rebuild: shared by cvm-launch
 * (--rebuild without a volume) and cvmfsd disk (--discard-upper, with one). */
#pragma once

#include <stddef.h>

/* The union marks an opaque directory with this xattr in DATA/upper. */
#define UPPER_OPAQUE_XATTR "trusted.cvmfs.opaque"

/* Removes name below dfd, a tree depth first. 0 or -errno. */
int rm_tree_at(int dfd, const char *name);

/* Empties directory dfd (DATA/upper/REL; REL "" at the top) but for the
 * paths of keep (path_list_match). A directory above a kept path stays and
 * loses its opaque mark, so the new image shows through it. -errno on the
 * first failure, with the path that failed (relative to the top) in
 * failed. */
int upper_discard(int dfd, const char *rel, const char *keep, char *failed, size_t size);

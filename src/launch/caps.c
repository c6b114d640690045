/* Capabilities kept in the CVM (libcap). Everything outside the configured
 * set is dropped from the bounding set, so not even a set-uid-root or
 * file-capability binary run later inside can regain it, and from the
 * effective, permitted, inheritable and ambient sets of CMD. */
#include "launch.h"

#include "cvmfs/cleanup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>

/* Every capability the launcher's bounding set still has: "all". */
static uint64_t caps_bounding(void)
{
	uint64_t m = 0;

	for (int c = 0; c <= (int)cap_max_bits() && c < 64; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			m |= 1ULL << c;
	return m;
}

int caps_parse(const char *list, uint64_t *mask)
{
	_cleanup_free_ char *copy = strdup(list);
	char *save = NULL, name[64];
	uint64_t m = 0;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		cap_value_t v;

		if (!strcasecmp(w, "all")) {
			m |= caps_bounding();
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", strncasecmp(w, "cap_", 4) ? "cap_" : "", w);
		if (cap_from_name(name, &v) < 0 || v < 0 || v >= 64)
			return -EINVAL;
		m |= 1ULL << v;
	}
	if (mask)
		*mask = m;
	return 0;
}

static void cap_freep(cap_t *c)
{
	if (*c)
		cap_free(*c);
}

static void cap_free_namep(char **p)
{
	if (*p)
		cap_free(*p);
}

/* 0, or -EPERM with the name of the first capability of list the launcher
 * itself lacks (it could not pass it on: cap_set_proc would fail late). */
int caps_check(const char *list, char *missing, size_t size)
{
	uint64_t mask, lacking;
	int r = caps_parse(list, &mask);

	if (r < 0)
		return r;
	lacking = mask & ~caps_bounding();
	if (!lacking)
		return 0;
	_cleanup_(cap_free_namep) char *name = cap_to_name(__builtin_ctzll(lacking));

	snprintf(missing, size, "%s", name ? name : "?");
	return -EPERM;
}

int caps_drop(const char *list)
{
	_cleanup_(cap_freep) cap_t caps = NULL;
	cap_value_t keep[64];
	int n = 0, last = (int)cap_max_bits();
	uint64_t mask;
	int r = caps_parse(list, &mask);

	if (r < 0)
		return r;
	/* The bounding set first: dropping needs CAP_SETPCAP, still held. */
	for (int c = 0; c < last; c++) {
		if (c < 64 && mask & (1ULL << c)) {
			keep[n++] = c;
			continue;
		}
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	caps = cap_init();
	if (!caps)
		return -errno;
	if (n && (cap_set_flag(caps, CAP_EFFECTIVE, n, keep, CAP_SET) < 0 ||
		  cap_set_flag(caps, CAP_PERMITTED, n, keep, CAP_SET) < 0 ||
		  cap_set_flag(caps, CAP_INHERITABLE, n, keep, CAP_SET) < 0))
		return -errno;
	if (cap_set_proc(caps) < 0)
		return -errno;
	return 0;
}

/* Capabilities kept in the CVM (libcap). Everything outside the configured
 * set is dropped from the bounding set, so not even a set-uid-root or
 * file-capability binary run later inside can regain it, and from the
 * effective, permitted, inheritable and ambient sets of CMD. */
#include "launch.h"

#include "cvmfs/cleanup.h"

#include "cvmfs/log.h"

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
	/* In order: "all,-sys_rawio" is every capability but one. */
	for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		bool drop = w[0] == '-';
		cap_value_t v;

		w += drop;
		if (!strcasecmp(w, "all")) {
			m = drop ? 0 : m | caps_bounding();
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", strncasecmp(w, "cap_", 4) ? "cap_" : "", w);
		if (cap_from_name(name, &v) < 0 || v < 0 || v >= 64)
			return -EINVAL;
		m = drop ? m & ~(1ULL << v) : m | 1ULL << v;
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
	uint64_t mask;
	int r = caps_parse(list, &mask);

	return r < 0 ? r : caps_drop_mask(mask);
}

/* Also cvmctl exec's, with the CVM's bounding set read from its init. */
int caps_drop_mask(uint64_t mask)
{
	_cleanup_(cap_freep) cap_t caps = NULL;
	cap_value_t keep[64];
	int n = 0, last = (int)cap_max_bits();

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

/* Without a user namespace (--no-userns) the CVM's root is host root:
 * Docker's default set, and net_raw only in its own network namespace
 * (with --net host an AF_PACKET socket would see the host's traffic). With
 * one, the capabilities of the namespace (CAPS_USERNS): the kernel checks
 * what affects the host against the initial user namespace, where the CVM
 * has none (doc/security.md). */
#define CAPS_HOST_ROOT_SAFE                                                   \
	"chown,dac_override,fowner,fsetid,kill,setgid,setuid,setpcap,"        \
	"net_bind_service,sys_chroot,mknod,audit_write,setfcap"
#define CAPS_HOST_ROOT_OWN_NET CAPS_HOST_ROOT_SAFE ",net_raw"

/* In a user namespace: every capability but those the kernel only ever
 * checks in the initial one (modules, raw I/O, the clock): useless there,
 * and held they make systemd try its debugfs/tracefs mounts and
 * timesyncd in vain (their units' ConditionCapability=). */
#define CAPS_USERNS "all,-sys_module,-sys_rawio,-sys_time"

const char *caps_default(bool userns, bool host_net)
{
	if (userns)
		return CAPS_USERNS;
	return host_net ? CAPS_HOST_ROOT_SAFE : CAPS_HOST_ROOT_OWN_NET;
}

/* --no-userns: anything beyond the default set (sys_admin remounts
 * /proc/sys read-write, net_raw on the host's network sniffs it...) is
 * host root's power over the host; only --unsafe-host-root-caps allows it. */
int caps_policy(struct launch *L)
{
	bool host_net = !strcmp(L->o.net, "host");
	uint64_t want, allowed, extra;

	if (L->o.userns || L->o.unsafe_host_root_caps)
		return 0;
	if (caps_parse(L->o.caps, &want) < 0 ||
	    caps_parse(caps_default(false, host_net), &allowed) < 0)
		return step_error(L, -EINVAL, "--caps '%s'", L->o.caps);
	extra = want & ~allowed;
	if (!extra)
		return 0;
	_cleanup_(cap_free_namep) char *name = cap_to_name(__builtin_ctzll(extra));

	return step_error(L, -EPERM,
			  "--caps %s with --no-userns%s: %s would be host root's; "
			  "use the default user namespace, or --unsafe-host-root-caps",
			  L->o.caps, host_net ? " --net host" : "", name ? name : "?");
}

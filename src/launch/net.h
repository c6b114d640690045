/* Internal to net*.c: the parsed network options and the helpers the
 * root (bridge) and user-mode networks share. */
#pragma once

#include "launch.h"

#include "cvmfs/paths.h"

#include <stddef.h>
#include <stdint.h>

#define NET_MAX_PUBLISH 64

struct net_publish {
	unsigned host_port, cvm_port;
	char proto[4]; /* "tcp" or "udp" */
};

struct net_range {
	uint32_t net;    /* host order */
	unsigned prefix; /* 8..29 */
};

/* --publish as parsed (0 and sets *n, or -EINVAL after one line). */
int net_publish_parse(const char *list, struct net_publish *out, size_t *n);
int net_range_parse(const char *cidr, struct net_range *r);
static inline uint32_t net_gateway(const struct net_range *r) { return r->net + 1; }
static inline uint32_t net_last(const struct net_range *r)
{
	return r->net + (uint32_t)((1ULL << (32 - r->prefix)) - 2);
}
void net_ntoa(uint32_t a, char buf[16]);

/* argv[0] searched in the usual sbin/bin directories; stdin from input
 * (NULL: /dev/null), stdout to /dev/null; stderr kept unless quiet.
 * Returns the exit status, or a negative errno. */
int net_run(const char *input, bool quiet, const char *const argv[]);
bool net_tool(const char *name); /* found and executable */

/* Host-wide like the bridges (not --run-dir): leases, locks. */
#define NET_DIR CVMFS_RUN_DIR "/net"

/* net_lease.c: NET_DIR/BRIDGE/ADDR per CVM, flock'ed by its launcher. */
int name_lock(struct launch *L);
void name_unlock(struct launch *L);
int lease_take(struct launch *L, const struct net_range *r);
void lease_drop(struct launch *L);
void lease_reclaim_name(struct launch *L); /* leftovers naming NAME */

/* net_rules.c: the bridge and the veth pair; net_nft.c: the nft tables
 * cvmfs-NAME. */
void veth_name(struct launch *L);
/* net_bridge.c: NET_DIR/bridge.lock serialises making the bridge and
 * taking a lease against the last CVM's teardown; NET_DIR/NAME.made marks
 * a bridge a launcher made, NET_DIR/ip_forward.made an ip_forward it
 * turned on: the launcher that drops the last lease undoes them. */
int bridge_lock(struct launch *L);
void bridge_unlock(void);
void bridge_mark(struct launch *L, const char *what);
void bridge_release(struct launch *L);
int bridge_ensure(struct launch *L, const struct net_range *r);
int veth_attach(struct launch *L, const struct net_range *r);
int rules_add(struct launch *L, const struct net_range *r);
void rules_del(struct launch *L); /* tables and veth of NAME, if any */

/* net_user.c: pasta for a CVM in a user namespace. */
int pasta_start(struct launch *L);
void pasta_stop(struct launch *L);
void pasta_reclaim(struct launch *L);

/* --net private as root: the host bridge, the CVM's veth pair and its two
 * nft tables, "inet cvmfs-NAME" and "bridge cvmfs-NAME". Every rule of a
 * CVM lives in its own tables, so that removing them (at exit, or at the
 * next launch of NAME after a crash) never touches another CVM's; rules
 * that several CVMs need are repeated in each (a drop in any table is
 * final, and an equal rule in another table does no harm). The bridge is
 * shared: the last CVM to leave removes it (net_bridge.c). */
#include "net.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The host's end: "cvm-NAME" when that fits in IFNAMSIZ, else "cvm" and
 * 12 hex digits of NAME's FNV-1a hash (no '-', so the two never meet).
 * Its alias "cvmfs:NAME" says whose it is. */
void veth_name(struct launch *L)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	if (strlen(L->o.name) <= 11) {
		snprintf(L->veth, sizeof(L->veth), "cvm-%s", L->o.name);
		return;
	}
	for (const char *p = L->o.name; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	snprintf(L->veth, sizeof(L->veth), "cvm%012llx", (unsigned long long)(h >> 16));
}

static int sysctl_set(struct launch *L, const char *path, const char *value)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write_all(fd, value, strlen(value)) < 0)
		return step_error(L, -errno, "%s", path);
	return 0;
}

static int ip(struct launch *L, bool quiet, const char *const argv[])
{
	int r = net_run(NULL, quiet, argv);

	if (r != 0 && !quiet)
		return step_error(L, r < 0 ? r : -EIO, "ip %s %s %s", argv[1], argv[2], argv[3]);
	return r == 0 ? 0 : -EIO;
}

/* Under NET_DIR/bridge.lock (net_bridge.c): concurrent first launches
 * make it once. ip_forward is host-wide (Docker turns it on too);
 * route_localnet on the bridge lets the host's own 127.0.0.1:PORT reach a
 * published port. What this launch turned on or made is marked, so that
 * the last CVM to leave undoes it (bridge_release). */
int bridge_ensure(struct launch *L, const struct net_range *r)
{
	char gw[16], cidr[24], rl[PATH_MAX], fwd[4] = "";
	int e;

	net_ntoa(net_gateway(r), gw);
	snprintf(cidr, sizeof(cidr), "%s/%u", gw, r->prefix);
	if (ip(L, true, (const char *const[]){ "ip", "link", "add", L->o.bridge, "type", "bridge",
					       NULL }) == 0)
		bridge_mark(L, L->o.bridge);
	if ((e = ip(L, false, (const char *const[]){ "ip", "addr", "replace", cidr, "dev",
						     L->o.bridge, NULL })) < 0 ||
	    (e = ip(L, false, (const char *const[]){ "ip", "link", "set", L->o.bridge, "up",
						     NULL })) < 0)
		return e;
	read_regular_buf(AT_FDCWD, "/proc/sys/net/ipv4/ip_forward", fwd, sizeof(fwd));
	if (fwd[0] == '0')
		bridge_mark(L, "ip_forward");
	snprintf(rl, sizeof(rl), "/proc/sys/net/ipv4/conf/%s/route_localnet", L->o.bridge);
	if ((e = sysctl_set(L, "/proc/sys/net/ipv4/ip_forward", "1")) < 0 ||
	    (e = sysctl_set(L, rl, "1")) < 0)
		return e;
	return 0;
}

/* The pair, its CVM end made right in the CVM's namespace as eth0, then
 * configured there: address, lo, the default route via the bridge. */
int veth_attach(struct launch *L, const struct net_range *r)
{
	char pid[16], ns[64], a[16], gw[16], alias[80], batch[256];
	int e;

	snprintf(pid, sizeof(pid), "%d", (int)L->child_pid);
	snprintf(ns, sizeof(ns), "--net=/proc/%d/ns/net", (int)L->child_pid);
	snprintf(alias, sizeof(alias), "cvmfs:%s", L->o.name);
	net_ntoa(L->addr, a);
	net_ntoa(net_gateway(r), gw);
	snprintf(batch, sizeof(batch), "link set lo up\naddr add %s/%u dev eth0\n"
		 "link set eth0 up\nroute add default via %s\n", a, r->prefix, gw);
	if ((e = ip(L, false, (const char *const[]){ "ip", "link", "add", L->veth, "type",
						     "veth", "peer", "name", "eth0", "netns",
						     pid, NULL })) < 0 ||
	    (e = ip(L, false, (const char *const[]){ "ip", "link", "set", L->veth, "alias",
						     alias, "master", L->o.bridge, "up",
						     NULL })) < 0)
		return e;
	e = net_run(batch, false, (const char *const[]){ "nsenter", ns, "ip", "-batch", "-", NULL });
	if (e != 0)
		return step_error(L, e < 0 ? e : -EIO, "configure eth0 in the CVM (%s)", a);
	return 0;
}

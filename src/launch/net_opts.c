/* --net, --publish, --net-range, --bridge: parsed and checked in step
 * validate, each bad value one line naming its option. */
#include "net.h"

#include "cvmfs/log.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int port_parse(const char *s, size_t len, unsigned *port)
{
	char buf[8];
	char *end;
	unsigned long v;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	v = strtoul(buf, &end, 10);
	if (*end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (unsigned)v;
	return 0;
}

/* One "HOST:CVM[/tcp|udp]" from two ':'-separated tokens (config lists
 * join repeated values with ':'). */
static int publish_one(const char *host, size_t hlen, const char *cvm, size_t clen,
		       struct net_publish *p)
{
	const char *slash = memchr(cvm, '/', clen);
	size_t plen = slash ? clen - (size_t)(slash - cvm) - 1 : 0;

	snprintf(p->proto, sizeof(p->proto), "tcp");
	if (slash) {
		if (!((plen == 3 && !strncmp(slash + 1, "tcp", 3)) ||
		      (plen == 3 && !strncmp(slash + 1, "udp", 3))))
			return -EINVAL;
		memcpy(p->proto, slash + 1, 3);
		clen = (size_t)(slash - cvm);
	}
	if (port_parse(host, hlen, &p->host_port) < 0 || port_parse(cvm, clen, &p->cvm_port) < 0)
		return -EINVAL;
	return 0;
}

static int publish_bad(const char *what, int r)
{
	log_error("--publish '%s': %s", what,
		  r == -E2BIG ? "too many (at most 64)"
			      : "use HOSTPORT:CVMPORT[/tcp|udp], ports 1..65535");
	return -EINVAL;
}

int net_publish_parse(const char *list, struct net_publish *out, size_t *n)
{
	const char *s = list;

	*n = 0;
	while (s && *s) {
		const char *c1 = strchr(s, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *end = c2 ? c2 : c1 ? c1 + strlen(c1) : s + strlen(s);
		char what[64];

		snprintf(what, sizeof(what), "%.*s", (int)(end - s), s);
		if (!c1)
			return publish_bad(what, -EINVAL);
		if (*n == NET_MAX_PUBLISH)
			return publish_bad(what, -E2BIG);
		if (publish_one(s, (size_t)(c1 - s), c1 + 1, (size_t)(end - c1 - 1), &out[*n]) < 0)
			return publish_bad(what, -EINVAL);
		for (size_t i = 0; i < *n; i++)
			if (out[i].host_port == out[*n].host_port &&
			    !strcmp(out[i].proto, out[*n].proto))
				return publish_bad(what, -EINVAL);
		(*n)++;
		s = c2 ? c2 + 1 : NULL;
	}
	return 0;
}

/* A.B.C.D/P, P in 8..29 (room for the bridge and a CVM), host bits 0. */
int net_range_parse(const char *cidr, struct net_range *r)
{
	unsigned a, b, c, d, p;
	char tail;

	if (sscanf(cidr, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &p, &tail) != 5 ||
	    a > 255 || b > 255 || c > 255 || d > 255 || p < 8 || p > 29)
		return -EINVAL;
	r->net = a << 24 | b << 16 | c << 8 | d;
	r->prefix = p;
	if (r->net & (uint32_t)((1ULL << (32 - p)) - 1))
		return -EINVAL;
	return 0;
}

static int check_values(struct launch *L)
{
	struct net_publish pub[NET_MAX_PUBLISH];
	struct net_range range;
	size_t n;

	if (net_range_parse(L->o.net_range, &range) < 0)
		return step_error(L, -EINVAL, "--net-range '%s': use A.B.C.D/PREFIX, "
				  "PREFIX 8..29, host bits zero", L->o.net_range);
	if (!L->o.bridge[0] || strlen(L->o.bridge) >= IFNAMSIZ || strchr(L->o.bridge, '/') ||
	    strchr(L->o.bridge, '"') || strchr(L->o.bridge, ' '))
		return step_error(L, -EINVAL, "--bridge '%s': an interface name of at most 15 "
				  "characters", L->o.bridge);
	if (L->o.publish && net_publish_parse(L->o.publish, pub, &n) < 0)
		return -EINVAL;
	return 0;
}

int net_validate(struct launch *L)
{
	const char *need = L->o.userns ? "pasta (package passt)" : "ip, nsenter and nft";

	if (strcmp(L->o.net, "host") && strcmp(L->o.net, "none") && !net_private(L))
		return step_error(L, -EINVAL, "--net '%s': use private, host or none", L->o.net);
	if (check_values(L) < 0)
		return -EINVAL;
	if (L->o.publish && !net_private(L))
		return step_error(L, -EINVAL, "--publish needs --net private (not %s)", L->o.net);
	if (!net_private(L))
		return 0;
	if (L->o.userns ? !net_tool("pasta")
			: !(net_tool("ip") && net_tool("nft") && net_tool("nsenter")))
		return step_error(L, -ENOENT, "--net private needs %s on the host", need);
	return 0;
}

/* The nft tables of one CVM under --net private as root (net_rules.c says
 * why per CVM). What each rule keeps out is in doc/cvm-launch.md, Network:
 *   bridge cvmfs-NAME: frames from the CVM's port must carry its address
 *     (IPv4 and ARP only), so that the rules below, keyed by that address,
 *     hold against a CVM with net_raw; without --net-peers no frame goes
 *     from its port to another port or back.
 *   inet cvmfs-NAME: without --net-host nothing the CVM starts reaches the
 *     host itself (replies to the host's own connections do); never a
 *     connection to 127.0.0.0/8 from the bridge (route_localnet is on
 *     there for published ports; their replies come back to 127.0.0.1
 *     once un-NATed, in the reply direction); without
 *     --net-peers no routing back onto the bridge; NAT out; --publish. */
#include "net.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bridge_table(FILE *f, struct launch *L, const char *a)
{
	fprintf(f, "table bridge cvmfs-%s {\n"
		" chain prerouting {\n  type filter hook prerouting priority -200; policy accept;\n"
		"  iifname \"%s\" ether type ip ip saddr != %s drop\n"
		"  iifname \"%s\" ether type arp arp saddr ip != %s drop\n"
		"  iifname \"%s\" ether type != { ip, arp } drop\n }\n",
		L->o.name, L->veth, a, L->veth, a, L->veth);
	if (!L->o.net_peers)
		fprintf(f, " chain forward {\n  type filter hook forward priority 0; policy accept;\n"
			"  iifname \"%s\" drop\n  oifname \"%s\" drop\n }\n", L->veth, L->veth);
	fprintf(f, "}\n");
}

static void filter_chains(FILE *f, struct launch *L, const char *a)
{
	const char *br = L->o.bridge;

	fprintf(f, " chain input {\n  type filter hook input priority -5; policy accept;\n"
		"  iifname \"%s\" ip daddr 127.0.0.0/8 ct direction original drop\n", br);
	if (!L->o.net_host)
		fprintf(f, "  iifname \"%s\" ip saddr %s ct state established,related accept\n"
			"  iifname \"%s\" ip saddr %s drop\n", br, a, br, a);
	fprintf(f, " }\n chain forward {\n  type filter hook forward priority -5; policy accept;\n");
	if (!L->o.net_peers)
		fprintf(f, "  iifname \"%s\" oifname \"%s\" ip saddr %s drop\n"
			"  iifname \"%s\" oifname \"%s\" ip daddr %s drop\n", br, br, a, br, br, a);
	fprintf(f, " }\n");
}

static void nat_chains(FILE *f, struct launch *L, const char *a, const struct net_publish *p,
		       size_t n)
{
	static const char *const hooks[][2] = { { "prerouting", "-100" }, { "output", "-100" } };

	fprintf(f, " chain postrouting {\n  type nat hook postrouting priority 100; policy accept;\n"
		"  ip saddr %s oifname != \"%s\" masquerade\n"
		"  oifname \"%s\" ip daddr %s ip saddr 127.0.0.0/8 masquerade\n }\n",
		a, L->o.bridge, L->o.bridge, a);
	for (size_t h = 0; h < ARRAY_SIZE(hooks); h++) {
		fprintf(f, " chain %s {\n  type nat hook %s priority %s; policy accept;\n",
			hooks[h][0], hooks[h][0], hooks[h][1]);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "  fib daddr type local %s dport %u dnat ip to %s:%u\n",
				p[i].proto, p[i].host_port, a, p[i].cvm_port);
		fprintf(f, " }\n");
	}
}

static char *ruleset(struct launch *L)
{
	struct net_publish pub[NET_MAX_PUBLISH];
	size_t n = 0, size = 0;
	char *text = NULL, a[16];
	FILE *f = open_memstream(&text, &size);

	if (!f)
		return NULL;
	if (L->o.publish)
		net_publish_parse(L->o.publish, pub, &n); /* checked by step validate */
	net_ntoa(L->addr, a);
	bridge_table(f, L, a);
	fprintf(f, "table inet cvmfs-%s {\n", L->o.name);
	filter_chains(f, L, a);
	nat_chains(f, L, a, pub, n);
	fprintf(f, "}\n");
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* One nft transaction: all of the CVM's rules or none. */
int rules_add(struct launch *L, const struct net_range *r)
{
	_cleanup_free_ char *text = ruleset(L);
	int e;

	(void)r;
	if (!text)
		return step_error(L, -ENOMEM, "nft rules");
	L->net_rules = true;
	e = net_run(text, false, (const char *const[]){ "nft", "-f", "-", NULL });
	if (e != 0)
		return step_error(L, e < 0 ? e : -EIO, "nft: the rules of table cvmfs-%s",
				  L->o.name);
	return 0;
}

/* "add" then "delete": no error when a table is not there. The veth goes
 * with the CVM's namespace; deleting it here covers a launcher that died
 * between making it and the clone's end. */
void rules_del(struct launch *L)
{
	_cleanup_free_ char *text = NULL;

	veth_name(L);
	if (asprintf(&text, "add table inet cvmfs-%s\ndelete table inet cvmfs-%s\n"
		     "add table bridge cvmfs-%s\ndelete table bridge cvmfs-%s\n",
		     L->o.name, L->o.name, L->o.name, L->o.name) < 0)
		return;
	if (net_run(text, false, (const char *const[]){ "nft", "-f", "-", NULL }) != 0)
		log_warn("warning: nft: could not delete the tables cvmfs-%s", L->o.name);
	net_run(NULL, true, (const char *const[]){ "ip", "link", "del", L->veth, NULL });
}

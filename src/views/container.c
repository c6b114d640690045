/* Caller -> container resolution and per-container snapshots.
 *
 * Two lock-free hash tables (liburcu cds_lfht): pids (pid -> container,
 * valid for pid_cache_ms) and containers (cgroup key -> container). Both are
 * read inside RCU read-side sections; entries are freed with call_rcu after
 * the sampler thread unlinks them. Snapshots are replaced with
 * rcu_xchg_pointer, so readers never wait for a refresh in progress. */
#include "views.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/compiler.h>

struct pid_entry {
	struct cds_lfht_node node;
	pid_t pid;
	struct container *c; /* NULL: unreadable, host view */
	uint64_t pidns_start;
	uint64_t expires_ns;
	struct rcu_head rcu;
};

void (*container_dead_hook)(struct container *c);

static unsigned long hash_str(const char *s)
{
	unsigned long h = 1469598103934665603UL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211UL;
	return h;
}

static unsigned long hash_pid(pid_t pid)
{
	return (unsigned long)pid * 0x9E3779B97F4A7C15UL;
}

/* Sized up front for a big host (chains stay short even if liburcu 0.13's
 * lazy auto-resize fails to launch, as seen in the disk daemon's table):
 * 8 KiB and 64 KiB of buckets. */
#define CONTAINER_BUCKETS 1024
#define PID_BUCKETS 8192

int containers_init(void)
{
	views_ctx->containers = cds_lfht_new_flavor(CONTAINER_BUCKETS, CONTAINER_BUCKETS, 0,
					    CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
					    &urcu_memb_flavor, NULL);
	views_ctx->pids = cds_lfht_new_flavor(PID_BUCKETS, PID_BUCKETS, 0,
				      CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_memb_flavor,
				      NULL);
	return views_ctx->containers && views_ctx->pids ? 0 : -ENOMEM;
}

static void snapshot_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct snapshot, rcu));
}

static void container_free(struct container *c)
{
	cg_handle_close(&c->cg);
	cpu_live_close(c);
	free(c->snap);
	for (int i = 0; i < TICK_SLOTS; i++) {
		free(c->slots[i].cpu);
		free(c->slots[i].ticks);
	}
	free(c->tids);
	pthread_mutex_destroy(&c->refresh_lock);
	pthread_mutex_destroy(&c->stat_lock);
	pthread_mutex_destroy(&c->walk_lock);
	pthread_mutex_destroy(&c->live_lock);
	free(c);
}

static void container_free_rcu(struct rcu_head *h)
{
	container_free(caa_container_of(h, struct container, rcu));
}

static void pid_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct pid_entry, rcu));
}

void containers_fini(void)
{
	struct cds_lfht_iter it;
	struct container *c;
	struct pid_entry *p;

	if (!views_ctx->containers)
		return;
	urcu_memb_read_lock();
	cds_lfht_for_each_entry(views_ctx->pids, &it, p, node)
		if (!cds_lfht_del(views_ctx->pids, &p->node))
			urcu_memb_call_rcu(&p->rcu, pid_free_rcu);
	cds_lfht_for_each_entry(views_ctx->containers, &it, c, node)
		if (!cds_lfht_del(views_ctx->containers, &c->node))
			urcu_memb_call_rcu(&c->rcu, container_free_rcu);
	urcu_memb_read_unlock();
	urcu_memb_barrier();
	cds_lfht_destroy(views_ctx->pids, NULL);
	cds_lfht_destroy(views_ctx->containers, NULL);
	views_ctx->pids = views_ctx->containers = NULL;
}

/* The key is the cgroup's paths, but a path is not an identity: a dead
 * container (its cgroup removed, perhaps re-created under the same path)
 * never matches, so that a lookup makes a new one next to it and the
 * sampler thread frees the old one. */
static int match_key(struct cds_lfht_node *n, const void *key)
{
	struct container *c = caa_container_of(n, struct container, node);

	return !CMM_LOAD_SHARED(c->dead) && !strcmp(c->key, key);
}

static struct container *container_new(const char *key, const struct cg_paths *paths)
{
	struct container *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return NULL;
	c->live_fd[0] = c->live_fd[1] = -EBADF; /* container_free may run early */
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->paths = *paths;
	c->hash = hash_str(key);
	r = cg_handle_open(&views_ctx->layout, paths, &c->cg);
	if (r < 0) {
		static uint64_t last_warn;
		uint64_t now = now_ns();

		/* Such a reader gets the host's view: say so, at most every 10 s. */
		if (now - __atomic_load_n(&last_warn, __ATOMIC_RELAXED) > 10000000000ULL) {
			__atomic_store_n(&last_warn, now, __ATOMIC_RELAXED);
			log_warn("cgroup %s: %s; its readers see the host's files",
				 paths->path[CG_MEMORY][0] ? paths->path[CG_MEMORY] : paths->unified,
				 strerror(-r));
		}
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->refresh_lock, NULL);
	pthread_mutex_init(&c->stat_lock, NULL);
	pthread_mutex_init(&c->walk_lock, NULL);
	pthread_mutex_init(&c->live_lock, NULL);
	c->live_fd[0] = c->live_fd[1] = -EBADF;
	c->last_used_ns = now_ns();
	return c;
}

struct container *container_of_paths(const struct cg_paths *paths)
{
	char key[sizeof(((struct container *)0)->key)];
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	struct container *c;

	if (cg_paths_key(paths, key, sizeof(key)) < 0)
		return NULL;
	cds_lfht_lookup(views_ctx->containers, hash_str(key), match_key, key, &it);
	n = cds_lfht_iter_get_node(&it);
	if (n)
		return caa_container_of(n, struct container, node);
	c = container_new(key, paths);
	if (!c)
		return NULL;
	n = cds_lfht_add_unique(views_ctx->containers, c->hash, match_key, c->key, &c->node);
	if (n != &c->node) { /* lost a race with another thread */
		container_free(c);
		c = caa_container_of(n, struct container, node);
	}
	return c;
}

struct container *container_of_path(const char *path)
{
	struct cg_paths paths;

	cg_paths_uniform(&views_ctx->layout, path, &paths);
	return container_of_paths(&paths);
}

static struct container *resolve_pid(pid_t pid)
{
	char name[32], buf[4096];
	struct cg_paths paths;

	snprintf(name, sizeof(name), "%d/cgroup", pid);
	if (read_at_buf(views_ctx->proc_fd, name, buf, sizeof(buf)) < 0)
		return NULL;
	if (cg_paths_parse(&views_ctx->layout, buf, &paths) < 0) {
		log_debug("pid %d: unparsable cgroup file", pid);
		return NULL;
	}
	return container_of_paths(&paths);
}

static int match_pid(struct cds_lfht_node *n, const void *key)
{
	return caa_container_of(n, struct pid_entry, node)->pid == *(const pid_t *)key;
}

struct container *container_of_pid(pid_t pid, uint64_t *pidns_start)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *n;
	struct pid_entry *e;
	uint64_t now = now_ns();
	struct container *c;

	cds_lfht_lookup(views_ctx->pids, hash_pid(pid), match_pid, &pid, &it);
	n = cds_lfht_iter_get_node(&it);
	if (n) {
		e = caa_container_of(n, struct pid_entry, node);
		if (e->expires_ns > now && (!e->c || !CMM_LOAD_SHARED(e->c->dead))) {
			if (pidns_start)
				*pidns_start = e->pidns_start;
			return e->c;
		}
	}
	c = resolve_pid(pid);
	e = malloc(sizeof(*e));
	if (!e) {
		if (pidns_start)
			*pidns_start = pidns_init_start_ns(pid);
		return c;
	}
	e->pid = pid;
	e->c = c;
	e->pidns_start = pidns_init_start_ns(pid);
	if (pidns_start)
		*pidns_start = e->pidns_start;
	e->expires_ns = now + views_ctx->cfg.pid_cache_ms * 1000000;
	n = cds_lfht_add_replace(views_ctx->pids, hash_pid(pid), match_pid, &pid, &e->node);
	if (n)
		urcu_memb_call_rcu(&caa_container_of(n, struct pid_entry, node)->rcu,
				   pid_free_rcu);
	return c;
}

static struct snapshot *snapshot_take(struct container *c)
{
	struct snapshot *s = malloc(sizeof(*s));

	if (!s)
		return NULL;
	if (cg_read(&c->cg, &s->v) < 0) {
		/* Removed, or replaced by a cgroup of the same path: these
		 * values may mix the two. Readers move on (container_current). */
		CMM_STORE_SHARED(c->dead, true);
		free(s);
		return NULL;
	}
	s->taken_ns = now_ns();
	return s;
}

const struct snapshot *container_snapshot(struct container *c)
{
	struct snapshot *s = rcu_dereference(c->snap);
	uint64_t now = now_ns();

	CMM_STORE_SHARED(c->last_used_ns, now);
	if (s && now - s->taken_ns < views_ctx->cfg.cache_ms * 1000000)
		return s;
	/* Stale: one thread refreshes; the others keep serving the old one. */
	if (s ? pthread_mutex_trylock(&c->refresh_lock) != 0
	      : pthread_mutex_lock(&c->refresh_lock) != 0)
		return s;
	s = rcu_dereference(c->snap);
	if (!s || now - s->taken_ns >= views_ctx->cfg.cache_ms * 1000000) {
		struct snapshot *fresh = snapshot_take(c);

		if (fresh) {
			struct snapshot *old = rcu_xchg_pointer(&c->snap, fresh);

			if (old)
				urcu_memb_call_rcu(&old->rcu, snapshot_free_rcu);
			s = fresh;
		}
	}
	pthread_mutex_unlock(&c->refresh_lock);
	if (s && !CMM_LOAD_SHARED(c->sampled))
		sampler_sample_now(c);
	return s;
}

/* The identity check rides on the snapshot refresh (at most every
 * cache-ms, cg_read's one fstatat) and on the sampler's pass every second:
 * the read path itself adds no syscall. A container found dead here is
 * replaced by whatever now lives at its paths. */
const struct snapshot *container_current(struct container **cp)
{
	const struct snapshot *s = container_snapshot(*cp);
	struct container *now;

	if (!CMM_LOAD_SHARED((*cp)->dead))
		return s;
	now = container_of_paths(&(*cp)->paths);
	if (!now || now == *cp)
		return s;
	*cp = now;
	return container_snapshot(now);
}

ssize_t container_cg_read(const struct container *c, enum cg_res r, const char *name,
			  char *buf, size_t size)
{
	char rel[300];

	if (!c->cg.present[r])
		return -ENOENT;
	if (snprintf(rel, sizeof(rel), "%s/%s", c->cg.path[r], name) >= (int)sizeof(rel))
		return -ENAMETOOLONG;
	return read_at_buf(c->cg.layout->hier_fd[r], rel, buf, size);
}

/* The sampler thread unlinks dead or long-idle containers and expired pids.
 * Order matters: unlink the container, wait for a grace period so that no
 * reader can still be inserting a pid entry that points at it, drop such
 * entries, and only then free it after a further grace period. */
unsigned containers_expire(uint64_t now)
{
	unsigned n = 0;
	struct cds_lfht_iter it;
	struct container *c, *dying = NULL;
	struct pid_entry *p;
	uint64_t idle = views_ctx->cfg.idle_expire_s * 1000000000ULL;

	urcu_memb_read_lock();
	cds_lfht_for_each_entry(views_ctx->containers, &it, c, node) {
		bool gone = CMM_LOAD_SHARED(c->dead) || !cg_handle_alive(&c->cg);
		/* Readers may have used it after `now` was taken: no underflow. */
		uint64_t used = CMM_LOAD_SHARED(c->last_used_ns);

		if (!gone && (used >= now || now - used < idle))
			continue;
		log_debug("forgetting container %s (%s)", c->paths.path[CG_MEMORY],
			  gone ? "cgroup removed" : "idle");
		CMM_STORE_SHARED(c->dead, true);
		if (!cds_lfht_del(views_ctx->containers, &c->node)) {
			c->next_dying = dying;
			dying = c;
		}
	}
	urcu_memb_read_unlock();
	if (dying)
		urcu_memb_synchronize_rcu();
	urcu_memb_read_lock();
	cds_lfht_for_each_entry(views_ctx->pids, &it, p, node) {
		if (p->expires_ns > now && (!p->c || !CMM_LOAD_SHARED(p->c->dead)))
			continue;
		if (!cds_lfht_del(views_ctx->pids, &p->node))
			urcu_memb_call_rcu(&p->rcu, pid_free_rcu);
	}
	urcu_memb_read_unlock();
	while (dying) {
		c = dying;
		dying = c->next_dying;
		if (container_dead_hook)
			container_dead_hook(c);
		urcu_memb_call_rcu(&c->rcu, container_free_rcu);
		n++;
	}
	return n;
}

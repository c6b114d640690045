/* The host's own /proc and cpu sysfs files: read through fds kept open and
 * cached for cache_ms as RCU-published text, so unlimited readers get the
 * host's bytes and renderers get host values without re-reading per open.
 * Also the host's sysfs root, for the per-object files (block devices,
 * NUMA nodes), and the names of block devices the trees have shown. */
#include "views.h"
#include "ids.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct host_text {
	size_t len;
	uint64_t taken_ns;
	struct rcu_head rcu;
	char data[];
};

struct host_file {
	const char *name;
	bool in_sys; /* relative to the cpu sysfs dir, else to proc */
	int fd;
	pthread_mutex_t lock;
	struct host_text *text; /* RCU */
};

static struct host_file files[VF_NFILES] = {
	[VF_MEMINFO] = { "meminfo" }, [VF_CPUINFO] = { "cpuinfo" },
	[VF_STAT] = { "stat" }, [VF_UPTIME] = { "uptime" },
	[VF_LOADAVG] = { "loadavg" }, [VF_SWAPS] = { "swaps" },
	[VF_DISKSTATS] = { "diskstats" }, [VF_PSI_CPU] = { "pressure/cpu" },
	[VF_PSI_MEM] = { "pressure/memory" }, [VF_PSI_IO] = { "pressure/io" },
	[VF_CPU_ONLINE] = { "online", true }, [VF_CPU_POSSIBLE] = { "possible", true },
	[VF_CPU_PRESENT] = { "present", true }, [VF_VMSTAT] = { "vmstat" },
	/* per-object files have no single host file: name NULL */
};

static int sys_fd = -EBADF;
static bool host_ready; /* host_fini runs after a failed start too */

static void text_free_rcu(struct rcu_head *h)
{
	free(caa_container_of(h, struct host_text, rcu));
}

static struct host_text *text_read(struct host_file *f)
{
	size_t cap = 16384;

	if (f->fd < 0)
		return NULL;
	for (;;) {
		struct host_text *t = malloc(sizeof(*t) + cap);
		ssize_t n;

		if (!t)
			return NULL;
		n = read_fd_buf(f->fd, t->data, cap);
		if (n >= 0) {
			t->len = (size_t)n;
			t->taken_ns = now_ns();
			return t;
		}
		free(t);
		if (n != -EFBIG || cap > (64u << 20))
			return NULL;
		cap *= 4;
	}
}

const char *host_text(enum vfile which, size_t *len)
{
	struct host_file *f = &files[which];
	struct host_text *t = rcu_dereference(f->text);
	uint64_t now = now_ns();

	if (!t || now - t->taken_ns >= views_ctx->cfg.cache_ms * 1000000) {
		if (t ? pthread_mutex_trylock(&f->lock) == 0 : pthread_mutex_lock(&f->lock) == 0) {
			t = rcu_dereference(f->text);
			if (!t || now - t->taken_ns >= views_ctx->cfg.cache_ms * 1000000) {
				struct host_text *fresh = text_read(f);

				if (fresh) {
					struct host_text *old = rcu_xchg_pointer(&f->text, fresh);

					if (old)
						urcu_memb_call_rcu(&old->rcu, text_free_rcu);
					t = fresh;
				}
			}
			pthread_mutex_unlock(&f->lock);
		}
	}
	if (!t) {
		*len = 0;
		return "";
	}
	*len = t->len;
	return t->data;
}

uint64_t host_meminfo_kb(const char *key)
{
	size_t len;
	const char *text = host_text(VF_MEMINFO, &len);
	size_t klen = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, klen) && l[klen] == ':')
			return strtoull(l + klen + 1, NULL, 10);
	return 0;
}

int host_init(void)
{
	char buf[4096];

	for (int i = 0; i < VF_NFILES; i++) {
		struct host_file *f = &files[i];

		pthread_mutex_init(&f->lock, NULL);
		f->fd = -EBADF;
		if (!f->name)
			continue;
		f->fd = openat(f->in_sys ? views_ctx->sys_cpu_fd : views_ctx->proc_fd, f->name,
			       O_RDONLY | O_CLOEXEC);
		if (f->fd < 0 && i != VF_PSI_CPU && i != VF_PSI_MEM && i != VF_PSI_IO)
			log_warn("host file %s: %s", f->name, strerror(errno));
	}
	/* The cpu directory is SYS/devices/system/cpu. */
	sys_fd = openat(views_ctx->sys_cpu_fd, "../../..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sys_fd < 0)
		log_warn("host sysfs root: %s", strerror(errno));
	if (read_at_buf(views_ctx->sys_cpu_fd, "online", buf, sizeof(buf)) < 0 ||
	    cpulist_parse(buf, views_ctx->host_online) < 0) {
		log_warn("cannot read the host's online cpus; assuming cpu0");
		memset(views_ctx->host_online, 0, sizeof(views_ctx->host_online));
		cpuset_set(views_ctx->host_online, 0);
	}
	views_ctx->host_ncpus = cpuset_count(views_ctx->host_online);
	host_ready = true;
	return 0;
}

void host_fini(void)
{
	if (!host_ready)
		return;
	host_ready = false;
	for (int i = 0; i < VF_NFILES; i++) {
		struct host_file *f = &files[i];

		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		free(f->text);
		f->text = NULL;
	}
	if (sys_fd >= 0)
		close(sys_fd);
	sys_fd = -EBADF;
}

int host_sys_fd(void)
{
	return sys_fd;
}

ssize_t host_sys_read(const char *rel, char *buf, size_t size)
{
	if (sys_fd < 0)
		return -ENOENT;
	return read_at_buf(sys_fd, rel, buf, size);
}

bool host_node_exists(unsigned node)
{
	char rel[64];
	struct stat st;

	snprintf(rel, sizeof(rel), "devices/system/node/node%u", node);
	return sys_fd >= 0 && fstatat(sys_fd, rel, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

/* Block device names, append-only: an index is published (release) after
 * its name, so block_name() needs no lock. Bounded by the names the host
 * has had. */
#define BLOCK_MAX 4096
static char *block_names[BLOCK_MAX];
static unsigned block_count;
static pthread_mutex_t block_lock = PTHREAD_MUTEX_INITIALIZER;

const char *block_name(unsigned idx)
{
	if (idx >= __atomic_load_n(&block_count, __ATOMIC_ACQUIRE))
		return NULL;
	return block_names[idx];
}

int block_index(const char *name)
{
	int r = -ENOSPC;

	pthread_mutex_lock(&block_lock);
	for (unsigned i = 0; i < block_count; i++)
		if (!strcmp(block_names[i], name)) {
			r = (int)i;
			goto out;
		}
	if (block_count < BLOCK_MAX) {
		block_names[block_count] = strdup(name);
		if (!block_names[block_count]) {
			r = -ENOMEM;
			goto out;
		}
		r = (int)block_count;
		ids_note(IDS_BLOCK, block_count, name);
		__atomic_store_n(&block_count, block_count + 1, __ATOMIC_RELEASE);
	}
out:
	pthread_mutex_unlock(&block_lock);
	return r;
}

int host_copy(enum vfile f, struct sbuf *out)
{
	size_t len;
	const char *t = host_text(f, &len);

	sbuf_add(out, t, len);
	return sbuf_error(out);
}

int host_sys_copy(const char *rel, struct sbuf *out)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	if (sys_fd < 0)
		return -ENOENT;
	r = read_file_alloc(sys_fd, rel, &text, &len);
	if (r < 0)
		return r;
	sbuf_add(out, text, len);
	return sbuf_error(out);
}

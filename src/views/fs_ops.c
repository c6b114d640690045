/* FUSE low-level operations of the two view sessions. */
#include "fs.h"
#include "sysctl.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LONG_TIMEOUT 86400.0

/* What an open file of the shared tree holds: the bytes rendered for its
 * opener, or an fd of a real sysfs file. */
/* Every open file and directory handle is on one list: a handle the kernel
 * still holds when the daemon stops (a reader kept its fd open) never gets
 * its RELEASE, and is freed from here once no session thread can use it. */
struct open_handle {
	struct open_handle *prev, *next;
	void (*free_fn)(struct open_handle *);
};

static struct open_handle open_handles = { &open_handles, &open_handles, NULL };
static pthread_mutex_t open_handles_lock = PTHREAD_MUTEX_INITIALIZER;

static void handle_track(struct open_handle *h, void (*free_fn)(struct open_handle *))
{
	h->free_fn = free_fn;
	pthread_mutex_lock(&open_handles_lock);
	h->next = &open_handles;
	h->prev = open_handles.prev;
	open_handles.prev->next = h;
	open_handles.prev = h;
	pthread_mutex_unlock(&open_handles_lock);
}

static void handle_untrack(struct open_handle *h)
{
	pthread_mutex_lock(&open_handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&open_handles_lock);
}

void fs_handles_free_all(void)
{
	pthread_mutex_lock(&open_handles_lock);
	while (open_handles.next != &open_handles) {
		struct open_handle *h = open_handles.next;

		h->prev->next = h->next;
		h->next->prev = h->prev;
		h->free_fn(h);
	}
	pthread_mutex_unlock(&open_handles_lock);
}

struct fhandle {
	struct open_handle link; /* first: the list's free_fn casts back */
	int fd;
	int t;
	unsigned arg;
	pthread_mutex_t lock; /* protects data, len, served */
	bool served;
	size_t len;
	char *data;
};

static void fhandle_free(struct fhandle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->lock);
	free(h->data);
	free(h);
}

struct dirbuf {
	struct open_handle link; /* first, as in fhandle */
	char *p;
	size_t size;
};

static void dirbuf_free(struct dirbuf *b)
{
	free(b->p);
	free(b);
}

static void fhandle_free_tracked(struct open_handle *h)
{
	fhandle_free((struct fhandle *)h);
}

static void dirbuf_free_tracked(struct open_handle *h)
{
	dirbuf_free((struct dirbuf *)h);
}

/* fi->fh: the handle's address, tagged with the server's generation in
 * bits 48..62, so that a handle a dead server made is recognised (and
 * answered without it), never followed (issue 17). */
#define FH_GEN_SHIFT 48
static uint64_t fh_gen;

void fs_set_generation(unsigned gen)
{
	fh_gen = (uint64_t)(gen & 0x7fff) << FH_GEN_SHIFT;
}

static uint64_t fh_pack(void *p)
{
	return (uint64_t)(uintptr_t)p | fh_gen;
}

/* NULL for a handle of another server. */
static void *fh_ptr(uint64_t fh)
{
	return (fh & ~((1ULL << FH_GEN_SHIFT) - 1)) == fh_gen
		       ? (void *)(uintptr_t)(fh & ((1ULL << FH_GEN_SHIFT) - 1))
		       : NULL;
}

static unsigned ino_view(fuse_ino_t ino)
{
	return (unsigned)((ino >> 8) & 0xffffff);
}

static int ino_tnode(fuse_ino_t ino)
{
	return (int)(ino & 0xff) - 1;
}

static unsigned ino_arg(fuse_ino_t ino)
{
	return (unsigned)((ino & ~PASS_BIT) >> 32);
}

static void take_first(pid_t tid, void *arg)
{
	pid_t *p = arg;

	if (!*p)
		*p = tid;
}

/* Fill who for a request; call inside an RCU read-side section. A ct view
 * is rendered for its cgroup whoever reads it; its PID namespace is the
 * reader's when the reader is inside, else that of a task of the cgroup. */
static void caller_for(fuse_req_t req, unsigned view, struct view_caller *who)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct ct *ct;

	memset(who, 0, sizeof(*who));
	who->pidns_start = PIDNS_UNKNOWN;
	if (view == 0) {
		who->pid = pid;
		who->c = container_of_pid(pid, &who->pidns_start);
	} else if ((ct = ct_get(view))) {
		who->c = container_of_paths(&ct->paths);
		if (ct->anon) {
			who->pidns_start = ct->pidns_start;
		} else if (who->c && pid_in_cgroup(pid, who->c)) {
			who->pid = pid;
		} else if (who->c) {
			pid_t t = 0;

			cg_for_each_task(&who->c->cg, take_first, &t);
			who->pid = t;
		}
	}
	if (who->c)
		who->snap = container_current(&who->c); /* may move to a re-created cgroup */
	if (!who->snap)
		who->c = NULL;
}

static int render_for(fuse_req_t req, unsigned view, enum vfile f, unsigned arg,
		      struct sbuf *out)
{
	struct view_caller who;
	int r;

	views_read_lock();
	caller_for(req, view, &who);
	r = render_file_arg(f, arg, &who, out);
	urcu_memb_read_unlock();
	return r;
}

/* The shared tree's proc/FILE is one symlink inode whose target depends on
 * the reader (symlink bodies are not cached): a limited reader is sent into
 * its own per-container tree, whose pages the kernel keeps, so a read costs
 * one READLINK round trip; others, and every bind mount they make, reach
 * the generic file that renders at open for whoever opens it. The dentry
 * never changes, so concurrent readers of different containers cannot race
 * on it. proc/ must not be bound as a directory elsewhere: the links are
 * relative to the mount. */
static void caller_link(fuse_req_t req, int t, char *buf, size_t size)
{
	struct view_caller who;
	unsigned id = 0;

	views_read_lock();
	caller_for(req, 0, &who);
	if (who.c && caller_limited(&who))
		id = ct_for_container(who.c, caller_pidns_start(&who));
	urcu_memb_read_unlock();
	sym_target(id, t, buf, size);
}

/* ---- per-container file content, shared by getattr and read ---- */

/* The page-cache lifetime of a per-container file (ms); 0 for live files. */
static uint64_t ct_file_ttl_ms(enum vfile f)
{
	if (vfile_live(f))
		return 0;
	return vfile_counters(f) ? MIN(V->cfg.cache_ms, V->cfg.ct_ttl_ms) : V->cfg.ct_ttl_ms;
}

/* Is the render cf still good for an attribute request? Other files
 * re-render once a quarter of their page-cache lifetime has passed. A live
 * file's attributes never stay in the kernel (timeout 0), so every read(2)
 * asks: it gets a new render once the last is LIVE_NS old and the file was
 * not asked for within LIVE_NS -- a reader going on to its next read(2) of
 * the same pass (to EOF, or `dd bs=1`) must not find the content changed
 * under it -- and at the latest once the render is cache_ms old. */
static bool ct_file_fresh(struct ct_file *cf, enum vfile f, uint64_t now)
{
	uint64_t age = now - cf->rendered_ns, quiet = now - cf->asked_ns;

	if (!vfile_live(f))
		return age < ct_file_ttl_ms(f) * 1000000 / 4;
	cf->asked_ns = now;
	return age < LIVE_NS || (quiet < LIVE_NS && age < V->cfg.cache_ms * 1000000);
}

static int ct_file_refresh(fuse_req_t req, struct ct *ct, enum vfile f, unsigned arg,
			   bool only_if_empty)
{
	struct ct_file *cf;
	uint64_t now = now_ns();
	_cleanup_sbuf_ struct sbuf b;
	struct timespec rt;
	int r = 0;

	sbuf_init(&b);
	pthread_mutex_lock(&ct->lock);
	cf = ct_file_slot(ct, f, arg);
	if (!cf) {
		r = -ENOMEM;
		goto out;
	}
	if (cf->data && (only_if_empty || ct_file_fresh(cf, f, now)))
		goto out;
	cf->asked_ns = now;
	r = render_for(req, ct->id, f, arg, &b);
	if (r < 0)
		goto out;
	free(cf->data);
	cf->data = sbuf_take(&b, &cf->len);
	cf->rendered_ns = now;
	clock_gettime(CLOCK_REALTIME, &rt);
	cf->mtime_ns = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
out:
	pthread_mutex_unlock(&ct->lock);
	return r;
}

static int ct_file_attr(fuse_req_t req, unsigned view, enum vfile f, unsigned arg,
			struct stat *st)
{
	struct ct *ct;
	int r = -ESTALE;

	views_read_lock();
	ct = ct_get(view);
	if (ct)
		r = ct_file_refresh(req, ct, f, arg, false);
	else
		log_debug("getattr: per-container tree @%u is gone", view);
	if (r == 0) {
		const struct ct_file *cf;

		pthread_mutex_lock(&ct->lock);
		cf = ct_file_slot(ct, f, arg); /* exists: refreshed above */
		st->st_size = (off_t)cf->len;
		st->st_mtim.tv_sec = (time_t)(cf->mtime_ns / 1000000000ULL);
		st->st_mtim.tv_nsec = (long)(cf->mtime_ns % 1000000000ULL);
		st->st_ctim = st->st_mtim;
		pthread_mutex_unlock(&ct->lock);
	}
	urcu_memb_read_unlock();
	return r;
}

/* ---- attributes and lookup ---- */

static int pass_stat(const struct pnode *p, fuse_ino_t ino, struct stat *st)
{
	if (fstatat(V->sys_cpu_fd, p->rel, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	st->st_ino = ino;
	return 0;
}

static int node_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st, bool ct_session)
{
	unsigned view = ino_view(ino);
	int t = ino_tnode(ino);

	if (ct_session && sysctl_node(ino))
		return sysctl_attr(req, ino, st);
	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);

		return p ? pass_stat(p, ino, st) : -ESTALE;
	}
	if (t < 0 || t >= T_COUNT)
		return -ESTALE;
	if (is_proc_link(ct_session, view, t)) {
		char target[PATH_MAX];

		caller_link(req, t, target, sizeof(target));
		memset(st, 0, sizeof(*st));
		st->st_ino = ino;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(target);
		return 0;
	}
	tnode_attr(ino, t, st);
	if (ct_session && view && tree[t].kind == TN_FILE)
		return ct_file_attr(req, view, tree[t].file, ino_arg(ino), st);
	return 0;
}

static double attr_timeout(fuse_ino_t ino, bool ct_session)
{
	int t = ino_tnode(ino);

	if (ct_session && sysctl_node(ino))
		return 0; /* owner per reader; written values show at once */
	if (ct_session && !(ino & PASS_BIT) && ino_view(ino) && tree[t].kind == TN_FILE)
		return (double)ct_file_ttl_ms(tree[t].file) / 1000.0;
	if (!(ino & PASS_BIT) && is_proc_link(ct_session, ino_view(ino), t))
		return 0; /* its size depends on the reader */
	if (ino & PASS_BIT)
		return ct_session ? (double)V->cfg.ct_ttl_ms / 1000.0 : 1.0;
	return LONG_TIMEOUT;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, double entry_timeout, bool ct_session)
{
	struct fuse_entry_param e = { .ino = ino, .generation = 1 };
	int r = node_attr(req, ino, &e.attr, ct_session);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	e.attr_timeout = attr_timeout(ino, ct_session);
	e.entry_timeout = entry_timeout;
	fuse_reply_entry(req, &e);
}

static void reply_noent(fuse_req_t req, double timeout)
{
	struct fuse_entry_param e = { .ino = 0, .entry_timeout = timeout };

	fuse_reply_entry(req, &e); /* a cacheable negative entry */
}

static void lookup_pass(fuse_req_t req, unsigned view, const char *parent_rel,
			const char *name, bool ct_session)
{
	char rel[PATH_MAX];
	struct stat st;
	fuse_ino_t ino;

	if (snprintf(rel, sizeof(rel), "%s%s%s", parent_rel, *parent_rel ? "/" : "", name) >=
	    (int)sizeof(rel)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (fstatat(V->sys_cpu_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ino = pnode_intern(view, rel);
	if (!ino) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_entry(req, ino, ct_session ? LONG_TIMEOUT : 1.0, ct_session);
}

static void lookup_cpudir(fuse_req_t req, unsigned view, int pt, const char *name,
			  bool ct_session)
{
	int t = tnode_child(pt, name);
	struct view_caller who;
	bool visible;

	if (t >= 0) {
		/* No symlinks here: this directory is bound as a whole, where a
		 * relative link into ct/ would not resolve. */
		reply_entry(req, tnode_ino(view, t), LONG_TIMEOUT, ct_session);
		return;
	}
	views_read_lock();
	caller_for(req, view, &who);
	visible = cpu_entry_visible(&who, name);
	urcu_memb_read_unlock();
	if (!visible) {
		/* Caller-dependent: the shared tree must ask again next time. */
		reply_noent(req, ct_session ? 1.0 : 0);
		return;
	}
	/* cpuN entries differ per caller in the shared tree: no dentry caching. */
	if (!ct_session) {
		char rel[PATH_MAX];
		struct stat st;
		fuse_ino_t ino;

		snprintf(rel, sizeof(rel), "%s", name);
		if (fstatat(V->sys_cpu_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		ino = pnode_intern(view, rel);
		if (!ino) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		reply_entry(req, ino, 0, false);
		return;
	}
	lookup_pass(req, view, "", name, ct_session);
}

/* A host block device or NUMA node: devices come and go (loop, hotplug),
 * so neither the entry nor its absence is cached for long. */
static void lookup_obj(fuse_req_t req, unsigned view, int pt, const char *name,
		       bool ct_session)
{
	int arg = obj_lookup(pt, name);
	int t = tree[pt].kind == TN_BLOCKDIR ? T_BLOCKDEV : T_NODEN;

	if (arg < 0)
		reply_noent(req, 1.0);
	else
		reply_entry(req, tnode_ino_arg(view, t, (unsigned)arg), 1.0, ct_session);
}

static void lookup_sysctl(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = sysctl_dir_ino(ino_view(parent));
	int r = sysctl_node(parent) ? sysctl_lookup(parent, name, &ino) : 0;

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, ino, 1.0, true);
}

static void do_lookup(fuse_req_t req, fuse_ino_t parent, const char *name, bool ct_session)
{
	unsigned view = ino_view(parent);
	int pt = ino_tnode(parent), t;

	log_debug("lookup %s in %#llx by pid %d", name, (unsigned long long)parent,
		  fuse_req_ctx(req)->pid);
	if (ct_session && (sysctl_node(parent) || (view && pt == T_ROOT &&
						   !strcmp(name, SYSCTL_DIR_NAME)))) {
		lookup_sysctl(req, parent, name);
		return;
	}
	if (parent & PASS_BIT) {
		struct pnode *p = pnode_get(parent);

		if (!p)
			fuse_reply_err(req, ESTALE);
		else
			lookup_pass(req, p->view, p->rel, name, ct_session);
		return;
	}
	if (ct_session && parent == FUSE_ROOT_ID) {
		struct ct *ct = NULL;
		unsigned id = 0;

		if (name[0] == '@') {
			views_read_lock();
			ct = ct_get((unsigned)strtoul(name + 1, NULL, 10));
			id = ct && ct->anon ? ct->id : 0;
			urcu_memb_read_unlock();
		} else if (ct_cgroup_exists(name)) {
			ct = ct_intern(name);
			id = ct ? ct->id : 0;
		}
		if (!id) {
			log_debug("lookup %s in ct/: no such tree", name);
			reply_noent(req, 0);
		}
		else
			reply_entry(req, tnode_ino(id, T_ROOT), 1.0, true);
		return;
	}
	if (tree[pt].kind == TN_CPUDIR) {
		lookup_cpudir(req, view, pt, name, ct_session);
		return;
	}
	if (tree[pt].kind == TN_BLOCKDIR || tree[pt].kind == TN_NODEDIR) {
		lookup_obj(req, view, pt, name, ct_session);
		return;
	}
	t = tnode_child(pt, name);
	if (t < 0 || ((t == T_CTMOUNT || t == T_GENERIC) && (ct_session || view))) {
		reply_noent(req, LONG_TIMEOUT);
		return;
	}
	reply_entry(req, tnode_ino_arg(view, t, ino_arg(parent)), LONG_TIMEOUT, ct_session);
}

static void shared_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_lookup(req, parent, name, false);
}

static void ct_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_lookup(req, parent, name, true);
}

static void do_getattr(fuse_req_t req, fuse_ino_t ino, bool ct_session)
{
	struct stat st;
	int r = node_attr(req, ino, &st, ct_session);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, attr_timeout(ino, ct_session));
}

static void shared_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	do_getattr(req, ino, false);
}

static void ct_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	do_getattr(req, ino, true);
}

static void do_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct pnode *p = (ino & PASS_BIT) ? pnode_get(ino) : NULL;
	char buf[PATH_MAX];
	ssize_t n;

	if (!(ino & PASS_BIT) && ino_tnode(ino) >= 0 && ino_tnode(ino) < T_COUNT &&
	    is_proc_link(false, ino_view(ino), ino_tnode(ino))) {
		caller_link(req, ino_tnode(ino), buf, sizeof(buf));
		fuse_reply_readlink(req, buf);
		return;
	}
	if (!p) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = readlinkat(V->sys_cpu_fd, p->rel, buf, sizeof(buf) - 1);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- file content ---- */

static int render_into(fuse_req_t req, struct fhandle *h)
{
	_cleanup_sbuf_ struct sbuf b;
	int r;

	sbuf_init(&b);
	r = render_for(req, 0, tree[h->t].file, h->arg, &b);
	if (r < 0)
		return r;
	free(h->data);
	h->data = sbuf_take(&b, &h->len);
	return 0;
}

static void shared_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fhandle *h;
	int t = ino_tnode(ino), r = 0;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (!(ino & PASS_BIT) && (t < 0 || t >= T_COUNT || tree[t].kind != TN_FILE)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->fd = -1;
	h->t = t;
	h->arg = ino_arg(ino);
	pthread_mutex_init(&h->lock, NULL);
	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);

		h->fd = p ? openat(V->sys_cpu_fd, p->rel, O_RDONLY | O_CLOEXEC) : -1;
		if (h->fd < 0)
			r = p ? -errno : -ESTALE;
	} else {
		r = render_into(req, h);
	}
	if (r < 0) {
		fhandle_free(h);
		fuse_reply_err(req, -r);
		return;
	}
	fi->direct_io = 1; /* every open renders for its own caller */
	fi->noflush = 1;
	fi->fh = fh_pack(h);
	handle_track(&h->link, fhandle_free_tracked);
	if (fuse_reply_open(req, fi) == -ENOENT) { /* interrupted: the kernel forgot it */
		handle_untrack(&h->link);
		fhandle_free(h);
	}
}

/* Reply with a private copy: once the kernel has the bytes, the reader may
 * close at once, and RELEASE on another thread frees the handle while this
 * thread is still returning from writev. */
static void reply_copy(fuse_req_t req, const char *data, size_t n)
{
	char stackbuf[8192];
	_cleanup_free_ char *heap = NULL;
	char *copy = stackbuf;

	if (n > sizeof(stackbuf)) {
		heap = malloc(n);
		if (!heap) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		copy = heap;
	}
	memcpy(copy, data, n);
	fuse_reply_buf(req, copy, n);
}

static void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		reply_copy(req, data + off, MIN(size, len - (size_t)off));
}

static void reply_pread(fuse_req_t req, int fd, size_t size, off_t off)
{
	_cleanup_free_ char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread(fd, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

/* A file opened by a dead server: read as if opened now. */
static void read_unopened(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct fhandle h = { .fd = -1, .t = ino_tnode(ino), .arg = ino_arg(ino) };
	int r = 0;

	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);

		h.fd = p ? openat(V->sys_cpu_fd, p->rel, O_RDONLY | O_CLOEXEC) : -1;
		if (h.fd < 0)
			r = p ? -errno : -ESTALE;
		else
			reply_pread(req, h.fd, size, off);
	} else if (h.t < 0 || h.t >= T_COUNT || tree[h.t].kind != TN_FILE) {
		r = -ESTALE;
	} else if ((r = render_into(req, &h)) == 0) {
		reply_slice(req, h.data, h.len, size, off);
	}
	if (h.fd >= 0)
		close(h.fd);
	free(h.data);
	if (r < 0)
		fuse_reply_err(req, -r);
}

/* Render at open, serve later offsets from that snapshot; a new read at
 * offset 0 (top and procps keep the fd and seek back) renders afresh. */
static void shared_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct fhandle *h = fh_ptr(fi->fh);
	_cleanup_free_ char *copy = NULL;
	size_t copied = 0;
	int r = 0;

	if (!h) {
		read_unopened(req, ino, size, off);
		return;
	}
	if (h->fd >= 0) {
		reply_pread(req, h->fd, size, off);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (off == 0 && h->served)
		r = render_into(req, h);
	h->served = true;
	if (r == 0 && (size_t)off < h->len) {
		size_t n = MIN(size, h->len - (size_t)off);

		copy = malloc(n);
		if (copy) {
			memcpy(copy, h->data + off, n);
			copied = n;
		} else {
			r = -ENOMEM;
		}
	}
	/* Unlock before replying: once the reader has its bytes it may close,
	 * and RELEASE frees h on another thread. */
	pthread_mutex_unlock(&h->lock);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, copy, copied);
}

static void shared_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fhandle *h = fh_ptr(fi->fh);

	(void)ino;
	if (h) {
		handle_untrack(&h->link);
		fhandle_free(h);
	}
	fuse_reply_err(req, 0);
}

/* The ct session refuses open with ENOSYS once: the kernel then stops
 * sending OPEN and RELEASE, keeps pages, and drops them when a refreshed
 * attribute shows a new mtime (auto_inval_data). */
static void ct_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void ct_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	int t = ino_tnode(ino);
	struct ct *ct;
	int r;

	(void)fi;
	if (sysctl_node(ino)) {
		char text[128];

		r = sysctl_read(req, ino, text, sizeof(text));
		if (r < 0)
			fuse_reply_err(req, -r);
		else
			reply_slice(req, text, (size_t)r, size, off);
		return;
	}
	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);
		_cleanup_close_ int fd = p ? openat(V->sys_cpu_fd, p->rel, O_RDONLY | O_CLOEXEC) : -1;

		if (fd < 0)
			fuse_reply_err(req, p ? errno : ESTALE);
		else
			reply_pread(req, fd, size, off);
		return;
	}
	if (t < 0 || t >= T_COUNT || tree[t].kind != TN_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	views_read_lock();
	ct = ct_get(ino_view(ino));
	r = ct ? ct_file_refresh(req, ct, tree[t].file, ino_arg(ino), true) : -ESTALE;
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		struct ct_file *cf;

		pthread_mutex_lock(&ct->lock);
		cf = ct_file_slot(ct, tree[t].file, ino_arg(ino));
		cf->asked_ns = now_ns();
		reply_slice(req, cf->data, cf->len, size, off);
		pthread_mutex_unlock(&ct->lock);
	}
	urcu_memb_read_unlock();
}

/* ---- directories ---- */

static void dir_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino,
		    mode_t mode)
{
	struct stat st = { .st_ino = ino, .st_mode = mode };
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
	char *p = realloc(b->p, b->size + need);

	if (!p)
		return;
	b->p = p;
	fuse_add_direntry(req, b->p + b->size, need, name, &st, (off_t)(b->size + need));
	b->size += need;
}

static void list_real(fuse_req_t req, struct dirbuf *b, unsigned view, const char *rel,
		      int cpudir, const struct view_caller *who)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(V->sys_cpu_fd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		char child[PATH_MAX];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (who) { /* the cpu dir itself: virtual lists and hidden cpus */
			if (tnode_child(cpudir, e->d_name) >= 0 || !cpu_entry_visible(who, e->d_name))
				continue;
		}
		snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		dir_add(req, b, e->d_name, pnode_intern(view, child), (mode_t)(DTTOIF(e->d_type)));
	}
}

static void list_cts(fuse_req_t req, struct dirbuf *b)
{
	for (int r = 0; r < CG_NRES; r++) {
		_cleanup_closedir_ DIR *d = NULL;
		int fd;
		struct dirent *e;

		if (V->layout.hier_fd[r] < 0)
			continue;
		fd = openat(V->layout.hier_fd[r], V->cfg.ct_parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(d = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			return;
		}
		while ((e = readdir(d))) {
			struct ct *ct;

			if (e->d_type != DT_DIR || e->d_name[0] == '.')
				continue;
			ct = ct_intern(e->d_name);
			if (ct)
				dir_add(req, b, e->d_name, tnode_ino(ct->id, T_ROOT), S_IFDIR);
		}
		return;
	}
}

struct obj_dir {
	fuse_req_t req;
	struct dirbuf *b;
	unsigned view;
	int t;
};

static void obj_add(const char *name, unsigned arg, void *ctx)
{
	struct obj_dir *od = ctx;

	dir_add(od->req, od->b, name, tnode_ino_arg(od->view, od->t, arg), S_IFDIR);
}

static void sysctl_add(void *ctx, const char *name, fuse_ino_t ino, mode_t mode)
{
	struct obj_dir *od = ctx;

	dir_add(od->req, od->b, name, ino, mode);
}

static void build_dir(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b, bool ct_session)
{
	unsigned view = ino_view(ino);
	int pt = ino_tnode(ino);

	dir_add(req, b, ".", ino, S_IFDIR);
	dir_add(req, b, "..", FUSE_ROOT_ID, S_IFDIR);
	if (ct_session && sysctl_node(ino)) {
		struct obj_dir od = { req, b, 0, 0 };

		sysctl_list(ino, sysctl_add, &od);
		return;
	}
	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);

		if (p)
			list_real(req, b, p->view, p->rel, -1, NULL);
		return;
	}
	if (ct_session && ino == FUSE_ROOT_ID) {
		list_cts(req, b);
		return;
	}
	if (tree[pt].kind == TN_BLOCKDIR || tree[pt].kind == TN_NODEDIR) {
		struct obj_dir od = { req, b, view, tree[pt].kind == TN_BLOCKDIR ? T_BLOCKDEV : T_NODEN };

		obj_list(pt, obj_add, &od);
		return;
	}
	for (int t = 1; t < T_COUNT; t++) {
		if (tree[t].parent != pt || !tree[t].name[0] ||
		    ((t == T_CTMOUNT || t == T_GENERIC) && (ct_session || view)))
			continue;
		dir_add(req, b, tree[t].name, tnode_ino_arg(view, t, ino_arg(ino)),
			is_proc_link(ct_session, view, t) ? S_IFLNK :
			tree[t].kind == TN_FILE ? S_IFREG : S_IFDIR);
	}
	if (ct_session && view && pt == T_ROOT)
		dir_add(req, b, SYSCTL_DIR_NAME, sysctl_dir_ino(view), S_IFDIR);
	if (tree[pt].kind == TN_CPUDIR) {
		struct view_caller who;

		views_read_lock();
		caller_for(req, view, &who);
		list_real(req, b, view, "", pt, &who);
		urcu_memb_read_unlock();
	}
}

static void do_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, bool ct_session)
{
	struct dirbuf *b = calloc(1, sizeof(*b));

	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	build_dir(req, ino, b, ct_session);
	fi->fh = fh_pack(b);
	handle_track(&b->link, dirbuf_free_tracked);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		handle_untrack(&b->link);
		dirbuf_free(b);
	}
}

static void shared_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	do_opendir(req, ino, fi, false);
}

static void ct_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	do_opendir(req, ino, fi, true);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool ct_session)
{
	struct dirbuf fresh = { 0 }, *b = fh_ptr(fi->fh);
	_cleanup_free_ char *fresh_p = NULL;
	size_t start = (size_t)off;

	if (!b) { /* opened by a dead server: listed again */
		build_dir(req, ino, &fresh, ct_session);
		b = &fresh;
		fresh_p = fresh.p;
	}
	if (start >= b->size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* Entries are packed; cut at an entry boundary no larger than size. */
	size_t end = start, next;

	while (end < b->size) {
		struct fuse_dirent_hdr {
			uint64_t ino, off;
			uint32_t namelen, type;
		} *d = (void *)(b->p + end);

		next = (size_t)d->off;
		if (next - start > size)
			break;
		end = next;
	}
	reply_copy(req, b->p + start, end - start);
}

static void do_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *b = fh_ptr(fi->fh);

	(void)ino;
	if (b) {
		handle_untrack(&b->link);
		dirbuf_free(b);
	}
	fuse_reply_err(req, 0);
}

/* Writes reach only the sysctl files: every other file is read-only. */
static void ct_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	int r = sysctl_node(ino) ? sysctl_write(req, ino, buf, size, off) : -EROFS;

	(void)fi;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* open(O_TRUNC) of a sysctl file: its value stays until the write that
 * follows. Owner and mode never change (EPERM, as /proc/sys says). */
static void ct_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)attr;
	(void)fi;
	if (!sysctl_node(ino))
		fuse_reply_err(req, EROFS);
	else if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		fuse_reply_err(req, EPERM);
	else
		do_getattr(req, ino, true);
}

static void shared_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void ct_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void shared_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	views_thread_enter();
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	/* proc/ link bodies depend on the reader: never cache them. */
	conn->want &= ~(unsigned)FUSE_CAP_CACHE_SYMLINKS;
}

static void ct_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	views_thread_enter();
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
}

const struct fuse_lowlevel_ops shared_ops = {
	.init = shared_init,
	.lookup = shared_lookup,
	.getattr = shared_getattr,
	.readlink = do_readlink,
	.open = shared_open,
	.read = shared_read,
	.release = shared_release,
	.opendir = shared_opendir,
	.readdir = shared_readdir,
	.releasedir = do_releasedir,
};

const struct fuse_lowlevel_ops ct_ops = {
	.init = ct_init,
	.lookup = ct_lookup,
	.getattr = ct_getattr,
	.readlink = do_readlink,
	.open = ct_open,
	.read = ct_read,
	.write = ct_write,
	.setattr = ct_setattr,
	.opendir = ct_opendir,
	.readdir = ct_readdir,
	.releasedir = do_releasedir,
};

/* What the two trees' FUSE operations share: file-handle bookkeeping
 * across server generations, who a request is for, the walk of the node
 * layout (lookup, attributes, listings) and the replies. Each tree
 * (fs_ops_shared.c, fs_ops_ct.c) handles its own nodes first and passes
 * its struct fs_tree for the rest. */
#include "fs.h"

#include "cvmfs/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every open file and directory handle is on one list: a handle the kernel
 * still holds when the daemon stops (a reader kept its fd open) never gets
 * its RELEASE, and is freed from here once no session thread can use it. */
static struct fs_handle open_handles = { &open_handles, &open_handles, NULL };
static pthread_mutex_t open_handles_lock = PTHREAD_MUTEX_INITIALIZER;

static void handle_track(struct fs_handle *h, void (*free_fn)(struct fs_handle *))
{
	h->free_fn = free_fn;
	pthread_mutex_lock(&open_handles_lock);
	h->next = &open_handles;
	h->prev = open_handles.prev;
	open_handles.prev->next = h;
	open_handles.prev = h;
	pthread_mutex_unlock(&open_handles_lock);
}

static void handle_untrack(struct fs_handle *h)
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
		struct fs_handle *h = open_handles.next;

		h->prev->next = h->next;
		h->next->prev = h->prev;
		h->free_fn(h);
	}
	pthread_mutex_unlock(&open_handles_lock);
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

void *fs_fh_ptr(uint64_t fh)
{
	return (fh & ~((1ULL << FH_GEN_SHIFT) - 1)) == fh_gen
		       ? (void *)(uintptr_t)(fh & ((1ULL << FH_GEN_SHIFT) - 1))
		       : NULL;
}

/* Replies on a handle a dead server made, or after the kernel forgot an
 * interrupted open, must not leak it. */
void fs_reply_open(fuse_req_t req, struct fuse_file_info *fi, struct fs_handle *h,
		   void (*free_fn)(struct fs_handle *))
{
	fi->fh = fh_pack(h);
	handle_track(h, free_fn);
	if (fuse_reply_open(req, fi) == -ENOENT) { /* interrupted: the kernel forgot it */
		handle_untrack(h);
		free_fn(h);
	}
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_fh_ptr(fi->fh);

	(void)ino;
	if (h) {
		handle_untrack(h);
		h->free_fn(h);
	}
	fuse_reply_err(req, 0);
}

/* ---- who a request is for ---- */

static void take_first(pid_t tid, void *arg)
{
	pid_t *p = arg;

	if (!*p)
		*p = tid;
}

/* A per-container tree renders for its cgroup whoever reads it; its PID
 * namespace is the reader's when the reader is inside, else that of a
 * task of the cgroup (an anonymous tree has its own). */
void fs_caller(fuse_req_t req, unsigned view, struct view_caller *who)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct ct *ct;

	if (view == 0) {
		caller_of_pid(pid, who);
		return;
	}
	memset(who, 0, sizeof(*who));
	who->pidns_start = PIDNS_UNKNOWN;
	if ((ct = ct_get(view))) {
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
	caller_settle(who);
}

int fs_render(fuse_req_t req, unsigned view, enum vfile f, unsigned arg, struct sbuf *out)
{
	struct view_caller who;
	int r;

	views_read_lock();
	fs_caller(req, view, &who);
	r = render_file_arg(f, arg, &who, out);
	urcu_memb_read_unlock();
	return r;
}

/* ---- attributes and lookup ---- */

int fs_attr(fuse_ino_t ino, struct stat *st)
{
	int t = ino_tnode(ino);

	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);

		if (!p)
			return -ESTALE;
		if (fstatat(views_ctx->sys_cpu_fd, p->rel, st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		st->st_ino = ino;
		return 0;
	}
	if (t < 0 || t >= T_COUNT)
		return -ESTALE;
	tnode_attr(ino, t, st);
	return 0;
}

void fs_getattr(fuse_req_t req, fuse_ino_t ino, const struct fs_tree *tr)
{
	struct stat st;
	int r = tr->attr(req, ino, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, tr->attr_timeout(ino));
}

void fs_reply_entry(fuse_req_t req, fuse_ino_t ino, double entry_timeout,
		    const struct fs_tree *tr)
{
	struct fuse_entry_param e = { .ino = ino, .generation = 1 };
	int r = tr->attr(req, ino, &e.attr);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	e.attr_timeout = tr->attr_timeout(ino);
	e.entry_timeout = entry_timeout;
	fuse_reply_entry(req, &e);
}

void fs_reply_noent(fuse_req_t req, double timeout)
{
	struct fuse_entry_param e = { .ino = 0, .entry_timeout = timeout };

	fuse_reply_entry(req, &e); /* a cacheable negative entry */
}

static void lookup_pass(fuse_req_t req, unsigned view, const char *parent_rel,
			const char *name, double timeout, const struct fs_tree *tr)
{
	char rel[PATH_MAX];
	struct stat st;
	fuse_ino_t ino;

	if (snprintf(rel, sizeof(rel), "%s%s%s", parent_rel, *parent_rel ? "/" : "", name) >=
	    (int)sizeof(rel)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (fstatat(views_ctx->sys_cpu_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	ino = pnode_intern(view, rel);
	if (!ino)
		fuse_reply_err(req, ENOMEM);
	else
		fs_reply_entry(req, ino, timeout, tr);
}

/* cpuN entries are shown only to readers that see the CPU. No symlinks
 * here: this directory is bound as a whole, where a relative link into
 * ct/ would not resolve. */
static void lookup_cpudir(fuse_req_t req, unsigned view, int pt, const char *name,
			  const struct fs_tree *tr)
{
	int t = tnode_child(pt, name);
	struct view_caller who;
	bool visible;

	if (t >= 0) {
		fs_reply_entry(req, tnode_ino(view, t), LONG_TIMEOUT, tr);
		return;
	}
	views_read_lock();
	fs_caller(req, view, &who);
	visible = cpu_entry_visible(&who, name);
	urcu_memb_read_unlock();
	if (!visible)
		fs_reply_noent(req, tr->cpu_noent_s);
	else
		lookup_pass(req, view, "", name, tr->cpu_entry_s, tr);
}

/* A host block device or NUMA node: devices come and go (loop, hotplug),
 * so neither the entry nor its absence is cached for long. */
static void lookup_obj(fuse_req_t req, unsigned view, int pt, const char *name,
		       const struct fs_tree *tr)
{
	int arg = obj_lookup(pt, name);
	int t = views_tree[pt].kind == TN_BLOCKDIR ? T_BLOCKDEV : T_NODEN;

	if (arg < 0)
		fs_reply_noent(req, 1.0);
	else
		fs_reply_entry(req, tnode_ino_arg(view, t, (unsigned)arg), 1.0, tr);
}

/* ct/ and .generic/ exist only at the shared tree's root (view 0). */
static bool tnode_hidden(unsigned view, int t)
{
	return (t == T_CTMOUNT || t == T_GENERIC) && view;
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name, const struct fs_tree *tr)
{
	unsigned view = ino_view(parent);
	int pt = ino_tnode(parent), t;

	if (parent & PASS_BIT) {
		struct pnode *p = pnode_get(parent);

		if (!p)
			fuse_reply_err(req, ESTALE);
		else
			lookup_pass(req, p->view, p->rel, name, tr->pass_entry_s, tr);
	} else if (views_tree[pt].kind == TN_CPUDIR) {
		lookup_cpudir(req, view, pt, name, tr);
	} else if (views_tree[pt].kind == TN_BLOCKDIR || views_tree[pt].kind == TN_NODEDIR) {
		lookup_obj(req, view, pt, name, tr);
	} else if ((t = tnode_child(pt, name)) < 0 || tnode_hidden(view, t)) {
		fs_reply_noent(req, LONG_TIMEOUT);
	} else {
		fs_reply_entry(req, tnode_ino_arg(view, t, ino_arg(parent)), LONG_TIMEOUT, tr);
	}
}

void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct pnode *p = (ino & PASS_BIT) ? pnode_get(ino) : NULL;
	char buf[PATH_MAX];
	ssize_t n;

	if (!p) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = readlinkat(views_ctx->sys_cpu_fd, p->rel, buf, sizeof(buf) - 1);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- file content ---- */

int fs_open_pass(fuse_ino_t ino)
{
	struct pnode *p = pnode_get(ino);
	int fd;

	if (!p)
		return -ESTALE;
	fd = openat(views_ctx->sys_cpu_fd, p->rel, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
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

void fs_reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		reply_copy(req, data + off, MIN(size, len - (size_t)off));
}

void fs_reply_pread(fuse_req_t req, int fd, size_t size, off_t off)
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

void fs_read_pass(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	_cleanup_close_ int fd = fs_open_pass(ino);

	if (fd < 0)
		fuse_reply_err(req, -fd);
	else
		fs_reply_pread(req, fd, size, off);
}

/* ---- directories ---- */

struct dirbuf {
	struct fs_handle link; /* first: the list's free_fn casts back */
	char *p;
	size_t size;
};

static void dirbuf_free(struct fs_handle *h)
{
	struct dirbuf *b = (struct dirbuf *)h;

	free(b->p);
	free(b);
}

void fs_dir_add(fuse_req_t req, struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t mode)
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

/* A real sysfs directory; in the cpu directory itself (who set) the
 * virtual files replace their real namesakes and hidden cpus are left out. */
static void list_real(fuse_req_t req, struct dirbuf *b, unsigned view, const char *rel,
		      int cpudir, const struct view_caller *who)
{
	_cleanup_closedir_ DIR *d = NULL;
	int fd = openat(views_ctx->sys_cpu_fd, *rel ? rel : ".",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
		if (who && (tnode_child(cpudir, e->d_name) >= 0 || !cpu_entry_visible(who, e->d_name)))
			continue;
		snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		fs_dir_add(req, b, e->d_name, pnode_intern(view, child), (mode_t)(DTTOIF(e->d_type)));
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

	fs_dir_add(od->req, od->b, name, tnode_ino_arg(od->view, od->t, arg), S_IFDIR);
}

void fs_list(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b)
{
	unsigned view = ino_view(ino);
	int pt = ino_tnode(ino);
	struct view_caller who;

	if (ino & PASS_BIT) {
		struct pnode *p = pnode_get(ino);

		if (p)
			list_real(req, b, p->view, p->rel, -1, NULL);
		return;
	}
	if (views_tree[pt].kind == TN_BLOCKDIR || views_tree[pt].kind == TN_NODEDIR) {
		struct obj_dir od = { req, b, view,
				      views_tree[pt].kind == TN_BLOCKDIR ? T_BLOCKDEV : T_NODEN };

		obj_list(pt, obj_add, &od);
		return;
	}
	for (int t = 1; t < T_COUNT; t++) {
		if (views_tree[t].parent != pt || !views_tree[t].name[0] || tnode_hidden(view, t))
			continue;
		fs_dir_add(req, b, views_tree[t].name, tnode_ino_arg(view, t, ino_arg(ino)),
			   tnode_is_link(view, t) ? S_IFLNK :
			   views_tree[t].kind == TN_FILE ? S_IFREG : S_IFDIR);
	}
	if (views_tree[pt].kind != TN_CPUDIR)
		return;
	views_read_lock();
	fs_caller(req, view, &who);
	list_real(req, b, view, "", pt, &who);
	urcu_memb_read_unlock();
}

static void build_dir(fuse_req_t req, fuse_ino_t ino, struct dirbuf *b, const struct fs_tree *tr)
{
	fs_dir_add(req, b, ".", ino, S_IFDIR);
	fs_dir_add(req, b, "..", FUSE_ROOT_ID, S_IFDIR);
	tr->list(req, ino, b);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirbuf *b = calloc(1, sizeof(*b));

	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	build_dir(req, ino, b, fuse_req_userdata(req));
	fs_reply_open(req, fi, &b->link, dirbuf_free);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct dirbuf fresh = { 0 }, *b = fs_fh_ptr(fi->fh);
	_cleanup_free_ char *fresh_p = NULL;
	size_t start = (size_t)off, end = start, next;

	if (!b) { /* opened by a dead server: listed again */
		build_dir(req, ino, &fresh, fuse_req_userdata(req));
		b = &fresh;
		fresh_p = fresh.p;
	}
	/* Entries are packed; cut at an entry boundary no larger than size. */
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
	if (start >= b->size)
		fuse_reply_buf(req, NULL, 0);
	else
		reply_copy(req, b->p + start, end - start);
}

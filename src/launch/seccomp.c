/* The CVM's default seccomp filter: a short deny-list in the spirit of
 * Docker's default profile, written as classic BPF and installed by the
 * inner child right before exec, after no_new_privs (which is what lets an
 * unprivileged task install one). It is inherited by everything in the
 * CVM and cannot be removed; filters the CVM installs itself (systemd's,
 * runc's for Docker's containers) stack on top and can only refuse more.
 *
 * Denied, EPERM (the caller is not allowed; programs handle it as such):
 *   kexec_load kexec_file_load reboot into another kernel
 *   init_module finit_module delete_module   kernel modules
 *   open_by_handle_at               opens any inode of a file system by its
 *                                   handle, escaping bind mounts ("shocker")
 *   perf_event_open                 kernel profiling; leaks and a long CVE
 *                                   history
 *   bpf (without user namespace)    loading kernel programs; inside a user
 *                                   namespace the kernel itself refuses all
 *                                   but unprivileged programs, so it is left
 *                                   to it
 *   userfaultfd                     widens kernel race windows (exploits)
 *   acct swapon swapoff             host-wide accounting file, swap
 *   settimeofday clock_settime clock_adjtime adjtimex   the host's clock
 *                                   (adjtimex cannot be told apart from its
 *                                   read-only form)
 *   iopl ioperm                     raw port I/O
 *   quotactl quotactl_fd            host file system quotas
 *   syslog                          the host kernel's log buffer
 *   personality with flags other than PER_LINUX32, UNAME26 and
 *   ADDR_NO_RANDOMIZE (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO...)
 * Denied, ENOSYS (absent: programs fall back as on a kernel without them):
 *   add_key request_key keyctl      keyrings are not namespaced: the keys
 *                                   of the host's uid (root's without a
 *                                   user namespace) would be the CVM's.
 *                                   ENOSYS, as a kernel without keys says:
 *                                   runc joins a new session keyring for
 *                                   every container and goes on without one
 *                                   on ENOSYS only (EPERM fails the start)
 *   io_uring_setup io_uring_enter io_uring_register   a second way into
 *                                   most of the kernel's I/O paths, with a
 *                                   long record of privilege escalations
 *                                   (Docker's and containerd's default
 *                                   profiles and Google's production hosts
 *                                   leave it out too); ENOSYS, on which
 *                                   liburing users fall back to plain I/O
 *   every system call of another ABI: the 32-bit x86 one (int $0x80 or a
 *   32-bit program) and x32, whose numbers differ and would bypass the list
 *   above; lookup_dcookie and nfsservctl, gone from current kernels.
 * Allowed on purpose: reboot (in the CVM's PID namespace it only ends the
 * CVM's init: systemd's poweroff), ptrace (safe since Linux 4.8),
 * unshare/clone with CLONE_NEWUSER (rootless tools, Docker, systemd's
 * PrivateUsers=), mount and the new mount API (systemd, dockerd),
 * name_to_handle_at (systemd uses it to find mount points; without
 * open_by_handle_at a handle opens nothing).
 *
 * Handed to the views daemon's supervisor (SECCOMP_RET_USER_NOTIF, when
 * one answers at start: notif.c), answered for the calling container:
 *   sysinfo                         memory, uptime, loads as the views
 *   sched_getaffinity               of the caller itself (pid 0, its own
 *                                   pid or tid): its mask cut to ⌈quota⌉
 *                                   CPUs; of another process (taskset -p,
 *                                   ps): the real mask, natively, which
 *                                   the scheduler keeps whole
 * The listener comes from SECCOMP_FILTER_FLAG_NEW_LISTENER; the kernel
 * allows one listener per filter chain, so programs in the CVM cannot add
 * their own (EBUSY): runc, dockerd and systemd do not use one. */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#define X32_SYSCALL_BIT 0x40000000U
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp.c: add this architecture's AUDIT_ARCH"
#endif

/* personality(2) flags that only change what uname and the address
 * layout of the caller itself look like. */
#define PERSONALITY_SAFE (0x0008U /* PER_LINUX32 */ | 0x0020000U /* UNAME26 */ |          \
			  0x0040000U /* ADDR_NO_RANDOMIZE */)
#define PERSONALITY_QUERY 0xffffffffU

struct denied {
	int nr;
	int err;
};

static const struct denied deny_list[] = {
	{ SYS_add_key, ENOSYS },      { SYS_request_key, ENOSYS },
	{ SYS_keyctl, ENOSYS },	      { SYS_kexec_load, EPERM },
#ifdef SYS_kexec_file_load
	{ SYS_kexec_file_load, EPERM },
#endif
	{ SYS_init_module, EPERM },   { SYS_finit_module, EPERM },
	{ SYS_delete_module, EPERM }, { SYS_open_by_handle_at, EPERM },
	{ SYS_perf_event_open, EPERM }, { SYS_userfaultfd, EPERM },
	{ SYS_acct, EPERM },	      { SYS_swapon, EPERM },
	{ SYS_swapoff, EPERM },	      { SYS_settimeofday, EPERM },
	{ SYS_clock_settime, EPERM }, { SYS_clock_adjtime, EPERM },
	{ SYS_adjtimex, EPERM },      { SYS_syslog, EPERM },
	{ SYS_quotactl, EPERM },
#ifdef SYS_quotactl_fd
	{ SYS_quotactl_fd, EPERM },
#endif
#ifdef SYS_iopl
	{ SYS_iopl, EPERM },	      { SYS_ioperm, EPERM },
#endif
#ifdef SYS_lookup_dcookie
	{ SYS_lookup_dcookie, ENOSYS },
#endif
#ifdef SYS_nfsservctl
	{ SYS_nfsservctl, ENOSYS },
#endif
#ifdef SYS_io_uring_setup
	{ SYS_io_uring_setup, ENOSYS }, { SYS_io_uring_enter, ENOSYS },
	{ SYS_io_uring_register, ENOSYS },
#endif
};

/* Jump targets, resolved once the program is laid out. */
enum label { L_NEXT, L_ALLOW, L_EPERM, L_ENOSYS, L_NOTIF, L_N };

#define FILTER_MAX 96

struct filter {
	struct sock_filter f[FILTER_MAX];
	uint8_t jt[FILTER_MAX], jf[FILTER_MAX]; /* enum label of each jump */
	unsigned pos[L_N];
	unsigned n;
};

static void op(struct filter *b, uint16_t code, uint32_t k)
{
	b->f[b->n] = (struct sock_filter)BPF_STMT(code, k);
	b->jt[b->n] = b->jf[b->n] = L_NEXT;
	b->n++;
}

static void jump(struct filter *b, uint16_t code, uint32_t k, enum label t, enum label f)
{
	b->f[b->n] = (struct sock_filter)BPF_JUMP(code, k, 0, 0);
	b->jt[b->n] = (uint8_t)t;
	b->jf[b->n] = (uint8_t)f;
	b->n++;
}

static void place(struct filter *b, enum label l, uint32_t ret)
{
	b->pos[l] = b->n;
	op(b, BPF_RET | BPF_K, ret);
}

#define ARG0_LOW                                                               \
	(offsetof(struct seccomp_data, args[0]) +                              \
	 (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0))

/* sysinfo and sched_getaffinity to the supervisor, by number alone (the
 * supervisor lets a query about another process run natively). */
static void build_trap(struct filter *b)
{
	jump(b, BPF_JMP | BPF_JEQ | BPF_K, SYS_sysinfo, L_NOTIF, L_NEXT);
	jump(b, BPF_JMP | BPF_JEQ | BPF_K, SYS_sched_getaffinity, L_NOTIF, L_NEXT);
}

/* Only forward jumps exist in classic BPF: the returns come last. */
static void build(struct filter *b, bool deny_bpf, bool trap)
{
	b->n = 0;
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	jump(b, BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, L_NEXT, L_ENOSYS);
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef X32_SYSCALL_BIT
	jump(b, BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, L_ENOSYS, L_NEXT);
#endif
	for (size_t i = 0; i < ARRAY_SIZE(deny_list); i++)
		jump(b, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)deny_list[i].nr,
		     deny_list[i].err == EPERM ? L_EPERM : L_ENOSYS, L_NEXT);
	if (deny_bpf)
		jump(b, BPF_JMP | BPF_JEQ | BPF_K, SYS_bpf, L_EPERM, L_NEXT);
	if (trap)
		build_trap(b);
	/* Every other call but personality(2) leaves here, its verdict
	 * depending on the number alone: the kernel caches such verdicts
	 * and skips the filter for them. */
	jump(b, BPF_JMP | BPF_JEQ | BPF_K, SYS_personality, L_NEXT, L_ALLOW);
	op(b, BPF_LD | BPF_W | BPF_ABS, ARG0_LOW);
	jump(b, BPF_JMP | BPF_JEQ | BPF_K, PERSONALITY_QUERY, L_ALLOW, L_NEXT);
	op(b, BPF_ALU | BPF_AND | BPF_K, ~PERSONALITY_SAFE);
	jump(b, BPF_JMP | BPF_JEQ | BPF_K, 0, L_ALLOW, L_EPERM);
	place(b, L_ALLOW, SECCOMP_RET_ALLOW);
	place(b, L_EPERM, SECCOMP_RET_ERRNO | EPERM);
	place(b, L_ENOSYS, SECCOMP_RET_ERRNO | ENOSYS);
	if (trap)
		place(b, L_NOTIF, SECCOMP_RET_USER_NOTIF);
	for (unsigned i = 0; i < b->n; i++) {
		if (b->jt[i] != L_NEXT)
			b->f[i].jt = (uint8_t)(b->pos[b->jt[i]] - i - 1);
		if (b->jf[i] != L_NEXT)
			b->f[i].jf = (uint8_t)(b->pos[b->jf[i]] - i - 1);
	}
}

/* Step "validate": --seccomp default|unconfined (default when absent). */
int seccomp_parse(struct launch *L)
{
	if (!L->o.seccomp || !strcmp(L->o.seccomp, "default"))
		return 0;
	if (strcmp(L->o.seccomp, "unconfined"))
		return step_error(L, -EINVAL, "--seccomp '%s': default or unconfined expected",
				  L->o.seccomp);
	log_warn("--seccomp unconfined: CVM %s runs without a seccomp filter: keyrings, "
		 "kernel modules, kexec, perf and the 32-bit system call ABI are reachable",
		 L->o.name);
	return 0;
}

/* With trap, returns the listener fd (SECCOMP_FILTER_FLAG_NEW_LISTENER). */
static int install(bool deny_bpf, bool trap)
{
	static struct filter b;
	struct sock_fprog prog;
	long r;

	build(&b, deny_bpf, trap);
	prog = (struct sock_fprog){ .len = (unsigned short)b.n, .filter = b.f };
	if (!trap)
		return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -errno : 0;
	/* Once the supervisor has a call, only a fatal signal ends the wait:
	 * else a signal would make sysinfo fail with EINTR (a handler without
	 * SA_RESTART), which it never does natively. Linux 5.19+. */
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		    SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
		    &prog);
	if (r < 0 && errno == EINVAL) {
		log_info("seccomp: the kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
			 "(Linux 5.19+): a signal may end an answered sysinfo with EINTR");
		r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			    SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	}
	return r < 0 ? -errno : (int)r;
}

/* With a supervisor (notif.c): the filter that traps, its listener sent to
 * the launcher (or cvmctl). Where the kernel refuses a listener (EBUSY: the
 * process already runs under one), the plain filter; the parent sees no
 * listener come and traps nothing. */
static int install_trap(bool deny_bpf, int sock, const char *name)
{
	_cleanup_close_ int listener = install(deny_bpf, true);

	if (listener == -EBUSY || listener == -EINVAL) {
		log_warn("seccomp: no listener (%s): sysinfo and sched_getaffinity show the "
			 "host's in CVM %s", strerror(-listener), name);
		return install(deny_bpf, false);
	}
	if (listener < 0)
		return listener;
	return notif_send_fd(sock, listener, name);
}

/* The filter, trapping where a notif_open() found a supervisor. */
static int install_for(bool deny_bpf, const char *name)
{
	int sock = notif_child_fd(), r;

	r = sock >= 0 ? install_trap(deny_bpf, sock, name) : install(deny_bpf, false);
	if (sock >= 0)
		close(sock); /* the parent's thread sees EOF if nothing came */
	return r;
}

/* The inner child, after no_new_privs, right before exec. */
int seccomp_install(struct launch *L)
{
	int r;

	if (L->o.seccomp && !strcmp(L->o.seccomp, "unconfined"))
		return 0;
	r = install_for(!L->o.userns, L->o.name);
	if (r < 0)
		return step_error(L, r, "install the seccomp filter (--seccomp unconfined "
				  "runs without)");
	return 0;
}

/* Also cvmctl exec's, which gives its process the CVM's filter. */
int seccomp_install_filter(bool deny_bpf, const char *name)
{
	int r = install_for(deny_bpf, name);

	return r < 0 ? r : 0;
}

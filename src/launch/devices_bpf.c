/* The cgroup2 device program: the allow-list of devices.c as a
 * BPF_PROG_TYPE_CGROUP_DEVICE program, written as raw eBPF instructions
 * and loaded with bpf(2) (no library: the program is a few instructions
 * per rule). The kernel runs it at every open and mknod of a device node
 * by a process below the cgroup it is attached to; it returns 1 (allow)
 * or 0 (EPERM).
 *
 * Context (struct bpf_cgroup_dev_ctx): access_type = access << 16 | type,
 * major, minor. Registers: r2 access bits, r3 type, r4 major, r5 minor;
 * each rule is a run of "jump to the next rule unless it matches", then
 * "return 1"; after the last rule, "return 0". */
#include "launch.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PROG_MAX 512

struct prog {
	struct bpf_insn insn[PROG_MAX];
	unsigned n;
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	if (p->n < PROG_MAX)
		p->insn[p->n] = (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src,
						   .off = off, .imm = imm };
	p->n++;
}

/* r_dst = *(u32 *)(r1 + off) */
static void load_ctx(struct prog *p, uint8_t dst, int16_t off)
{
	emit(p, BPF_LDX | BPF_MEM | BPF_W, dst, BPF_REG_1, off, 0);
}

/* "if reg != imm goto next rule": the offset is patched once the rule's
 * length is known. */
static void skip_unless(struct prog *p, uint8_t reg, int32_t imm)
{
	emit(p, BPF_JMP | BPF_JNE | BPF_K, reg, 0, 0, imm);
}

static void emit_rule(struct prog *p, const struct dev_rule *d)
{
	unsigned start = p->n;
	unsigned acc = (d->access & DEV_M ? BPF_DEVCG_ACC_MKNOD : 0) |
		       (d->access & DEV_R ? BPF_DEVCG_ACC_READ : 0) |
		       (d->access & DEV_W ? BPF_DEVCG_ACC_WRITE : 0);

	if (d->type != 'a')
		skip_unless(p, BPF_REG_3,
			    d->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
	if (d->major >= 0)
		skip_unless(p, BPF_REG_4, (int32_t)d->major);
	if (d->minor >= 0)
		skip_unless(p, BPF_REG_5, (int32_t)d->minor);
	if (d->access != DEV_RWM) {
		/* the access asked for must be within the rule's */
		emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_2, 0, 0);
		emit(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_6, 0, 0, (int32_t)~acc);
		skip_unless(p, BPF_REG_6, 0);
	}
	emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
	emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	for (unsigned i = start; i < p->n && p->n <= PROG_MAX; i++)
		if (p->insn[i].code == (BPF_JMP | BPF_JNE | BPF_K))
			p->insn[i].off = (int16_t)(p->n - i - 1);
}

static int build(struct prog *p, const struct dev_rule *rules, size_t n)
{
	p->n = 0;
	load_ctx(p, BPF_REG_2, offsetof(struct bpf_cgroup_dev_ctx, access_type));
	emit(p, BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_3, BPF_REG_2, 0, 0);
	emit(p, BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_3, 0, 0, 0xffff);
	emit(p, BPF_ALU64 | BPF_RSH | BPF_K, BPF_REG_2, 0, 0, 16);
	load_ctx(p, BPF_REG_4, offsetof(struct bpf_cgroup_dev_ctx, major));
	load_ctx(p, BPF_REG_5, offsetof(struct bpf_cgroup_dev_ctx, minor));
	for (size_t i = 0; i < n; i++) {
		emit_rule(p, &rules[i]);
		/* "a *:* rwm" matches everything: what follows would be
		 * unreachable, which the verifier refuses. */
		if (rules[i].type == 'a' && rules[i].major < 0 && rules[i].minor < 0 &&
		    rules[i].access == DEV_RWM)
			return p->n <= PROG_MAX ? 0 : -E2BIG;
	}
	emit(p, BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
	emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return p->n <= PROG_MAX ? 0 : -E2BIG;
}

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	long r = syscall(SYS_bpf, cmd, attr, sizeof(*attr));

	return r < 0 ? -errno : (int)r;
}

static int load(const struct prog *p)
{
	static char verifier_log[4096];
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)p->insn;
	attr.insn_cnt = p->n;
	attr.license = (uint64_t)(uintptr_t)"GPL";
	fd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (fd != -EINVAL && fd != -EACCES)
		return fd;
	/* Again with the verifier's log, for the error line. */
	attr.log_buf = (uint64_t)(uintptr_t)verifier_log;
	attr.log_size = sizeof(verifier_log);
	attr.log_level = 1;
	if (sys_bpf(BPF_PROG_LOAD, &attr) < 0 && verifier_log[0])
		log_error("device program refused by the verifier: %.200s", verifier_log);
	return fd;
}

/* Programs a crashed launcher left on a reused cvmfs/NAME would go on
 * binding it (they stay with the cgroup, not with an fd): detach them. */
static void detach_old(int cgroup_fd)
{
	uint32_t ids[64];
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = (uint32_t)cgroup_fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
	attr.query.prog_cnt = ARRAY_SIZE(ids);
	if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
		return;
	for (uint32_t i = 0; i < attr.query.prog_cnt && i < ARRAY_SIZE(ids); i++) {
		union bpf_attr get = { .prog_id = ids[i] };
		_cleanup_close_ int fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &get);
		union bpf_attr det = { .target_fd = (uint32_t)cgroup_fd,
				       .attach_type = BPF_CGROUP_DEVICE };

		if (fd < 0)
			continue;
		det.attach_bpf_fd = (uint32_t)fd;
		sys_bpf(BPF_PROG_DETACH, &det);
	}
}

/* Load the program for rules and attach it to the cgroup2 directory
 * cgroup_fd (BPF_F_ALLOW_MULTI: programs below are allowed and ANDed).
 * It stays attached as long as the cgroup exists. */
int devices_bpf_attach(int cgroup_fd, const struct dev_rule *rules, size_t n)
{
	static struct prog p;
	_cleanup_close_ int fd = -EBADF;
	union bpf_attr attr;
	int r;

	if ((r = build(&p, rules, n)) < 0)
		return r;
	if ((fd = load(&p)) < 0)
		return fd;
	detach_old(cgroup_fd);
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (uint32_t)cgroup_fd;
	attr.attach_bpf_fd = (uint32_t)fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	r = sys_bpf(BPF_PROG_ATTACH, &attr);
	return r < 0 ? r : 0;
}

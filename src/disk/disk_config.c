/* cvmfsd disk: options from the command line and the config file.
 *
 * Precedence: command line, then [disk NAME], then [disk], then built-in
 * defaults. The workspace section can only be chosen once NAME is known, so
 * the command line is parsed first with no config section wanted, then
 * each section is read into its own copy and the copies are merged field by
 * field. SIGHUP re-reads both sections; their limit and inodes replace the
 * running values (the file is what admins edit), unless cvm-launch asked
 * for a limit (RUN_DIR/disk/NAME.limit), which wins as a command line
 * would. Without an inodes value anywhere, the inode limit follows the
 * byte limit. */
#include "disk.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/config.h"
#include "cvmfs/fileio.h"
#include "cvmfs/log.h"
#include "cvmfs/paths.h"
#include "cvmfs/size.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define O(field) offsetof(struct disk_config, field)
/* The help texts are doc/cvmfsd-disk.md's, shortened. */
static const struct opt_def disk_opts[] = {
	{ "config", 'c', OPT_STR, O(config), true, "FILE",
	  "config file (default " CVMFS_CONFIG_FILE ", optional)" },
	{ "foreground", 'f', OPT_BOOL, O(foreground), false, NULL,
	  "stay in the foreground, log to stderr (else syslog)" },
	{ "debug", 'd', OPT_BOOL, O(debug), false, NULL, "per-request tracing" },
	{ "name", 0, OPT_STR, O(name), false, "NAME",
	  "workspace name: letters, digits, '.', '_', '-'; not starting with '.' (required)" },
	{ "data", 0, OPT_STR, O(data), false, "DATA",
	  "workspace directory: upper/, work/, state, lock (created if missing; required)" },
	{ "limit", 0, OPT_SIZE, O(limit), false, "SIZE",
	  "byte limit; K, M, G, T suffixes are powers of 1024 (required)" },
	{ "inodes", 0, OPT_UINT, O(inodes), false, "N",
	  "inode limit, image included; 0: none (default: one per 16 KiB of --limit)" },
	{ "image", 0, OPT_LIST, O(image), false, "DIR[:DIR...]",
	  "image layers, top first; repeated options append" },
	{ "run-dir", 0, OPT_STR, O(run_dir), false, "DIR",
	  "live figures and pid file under DIR/disk/ (default " CVMFS_RUN_DIR ")" },
	{ "options", 'o', OPT_LIST, O(fuse_opts), false, "FUSEOPTS",
	  "extra FUSE mount options (allow_other,default_permissions are always set)" },
	{ "stat-group", 0, OPT_STR, O(stat_group), false, "GROUP",
	  "make the live figures file 0640 with this group (default 0600, root only)" },
	{ "image-idmap", 0, OPT_STR, O(image_idmap), false, "UID:GID:COUNT",
	  "show image files owned by uid/gid N < COUNT as owned by UID+N / GID+N" },
	{ "no-passthrough", 0, OPT_BOOL, O(no_passthrough), false, NULL,
	  "never hand reads to the kernel (FUSE passthrough): every read goes through the daemon" },
	{ "volume", 0, OPT_STR, O(volume), false, "loop|block:PATH|none",
	  "none (default): DATA is a plain directory; loop or block:PATH: an ext4 volume at DATA" },
	{ "volume-dir", 0, OPT_STR, O(volume_dir), false, "DIR",
	  "where loop volumes live (default " CVMFS_STATE_DIR "/volumes)" },
	{ "volume-alloc", 0, OPT_STR, O(volume_alloc), false, "sparse|full",
	  "a loop volume's file: allocated as the workspace writes (sparse, default) or whole" },
	{ "lanes", 0, OPT_STR, O(lanes), false, "PATHS",
	  "':'-separated union paths served straight from the volume (default /home:/var/lib/docker)" },
	{ "persist", 0, OPT_LIST, O(persist), false, "PATHS",
	  "':'-separated union paths --discard-upper keeps" },
	/* once, for a rebuild: a config key would discard at every start */
	{ "discard-upper", 0, OPT_BOOL, O(discard_upper), true, NULL,
	  "before serving, empty DATA/upper except the lanes' and --persist paths, and recount" },
	{ "restart-ms", 0, OPT_UINT, O(restart_ms), false, "N",
	  "wait N ms before restarting a crashed server (default 0)" },
	{ "max-crashes", 0, OPT_UINT, O(max_crashes), false, "N",
	  "give up after N crashes within --crash-window-s (default 10, at most 64)" },
	{ "crash-window-s", 0, OPT_UINT, O(crash_window_s), false, "N",
	  "the window of --max-crashes (default 60)" },
	OPT_END,
};

#define PROG "cvmfsd disk"

static void cfg_init(struct disk_config *c)
{
	memset(c, 0, sizeof(*c));
	c->limit = UNSET;
	c->inodes = UNSET;
	c->restart_ms = c->max_crashes = c->crash_window_s = UNSET;
}

static int load_section(const char *path, bool must_exist, const char *section,
			struct disk_config *c)
{
	const char *const sections[] = { section, NULL };
	struct opt_spec spec = { PROG, disk_opts, sections, CVMFS_CONFIG_FILE };

	cfg_init(c);
	return opts_load_file(&spec, c, path, must_exist);
}

static void take_str(char **dst, char **a, char **b)
{
	if (*dst)
		return;
	if (*a) {
		*dst = *a;
		*a = NULL;
	} else if (*b) {
		*dst = *b;
		*b = NULL;
	}
}

static void take_u64(uint64_t *dst, uint64_t a, uint64_t b)
{
	if (*dst == UNSET)
		*dst = a != UNSET ? a : b;
}

static void merge(struct disk_config *c, struct disk_config *ws, struct disk_config *def)
{
	take_str(&c->data, &ws->data, &def->data);
	take_str(&c->image, &ws->image, &def->image);
	take_str(&c->run_dir, &ws->run_dir, &def->run_dir);
	take_str(&c->fuse_opts, &ws->fuse_opts, &def->fuse_opts);
	take_str(&c->stat_group, &ws->stat_group, &def->stat_group);
	take_str(&c->image_idmap, &ws->image_idmap, &def->image_idmap);
	take_str(&c->volume, &ws->volume, &def->volume);
	take_str(&c->volume_dir, &ws->volume_dir, &def->volume_dir);
	take_str(&c->volume_alloc, &ws->volume_alloc, &def->volume_alloc);
	take_str(&c->lanes, &ws->lanes, &def->lanes);
	take_str(&c->persist, &ws->persist, &def->persist);
	take_u64(&c->limit, ws->limit, def->limit);
	take_u64(&c->inodes, ws->inodes, def->inodes);
	take_u64(&c->restart_ms, ws->restart_ms, def->restart_ms);
	take_u64(&c->max_crashes, ws->max_crashes, def->max_crashes);
	take_u64(&c->crash_window_s, ws->crash_window_s, def->crash_window_s);
	c->foreground |= ws->foreground || def->foreground;
	c->debug |= ws->debug || def->debug;
	c->no_passthrough |= ws->no_passthrough || def->no_passthrough;
}

/* Names become file names under RUN_DIR: keep them plain. */
static bool name_ok(const char *name)
{
	if (!name[0] || name[0] == '.' || strlen(name) > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
			return false;
	return true;
}

/* Like ext4's default: one inode per 16 KiB of limit, unless set (0: no
 * inode limit). An empty file costs a few bytes of the byte limit only,
 * so without it a small workspace could make hundreds of millions of
 * inodes on the host's file system. */
#define BYTES_PER_INODE (16u << 10)

uint64_t disk_inode_limit(uint64_t limit, uint64_t inodes)
{
	if (inodes != UNSET)
		return inodes;
	return limit / BYTES_PER_INODE ? limit / BYTES_PER_INODE : 1;
}

static int validate(struct disk_config *c)
{
	if (!c->name)
		return log_error("missing --name"), -EINVAL;
	if (!name_ok(c->name))
		return log_error("bad value for --name: '%s' (letters, digits, '.', '_', '-')",
			       c->name), -EINVAL;
	if (!c->data)
		return log_error("missing --data"), -EINVAL;
	if (c->limit == UNSET || c->limit == 0)
		return log_error("missing --limit (a positive SIZE)"), -EINVAL;
	c->inodes = disk_inode_limit(c->limit, c->inodes);
	c->restart_ms = c->restart_ms == UNSET ? 0 : c->restart_ms;
	c->max_crashes = c->max_crashes == UNSET ? 10 : c->max_crashes;
	c->crash_window_s = c->crash_window_s == UNSET ? 60 : c->crash_window_s;
	if (!c->run_dir && !(c->run_dir = strdup(CVMFS_RUN_DIR)))
		return -ENOMEM;
	return 0;
}

static char *section_name(const char *name)
{
	char *s;

	return asprintf(&s, "disk %s", name) < 0 ? NULL : s;
}

/* 0, a negative errno after one line on stderr, or OPTS_HELP after --help
 * (the caller exits 0). */
int disk_config_load(struct disk_config *c, int argc, char **argv, char **mountpoint)
{
	const char *const none[] = { NULL };
	struct opt_spec spec = {
		PROG, disk_opts, none, CVMFS_CONFIG_FILE,
		"[OPTION...] --name NAME --data DATA --limit SIZE MOUNTPOINT",
		"The quota-enforced union file system of a workspace: the image layers and\n"
		"DATA/upper at MOUNTPOINT, every byte and inode charged against the limit.\n"
		"Config file sections [disk NAME], then [disk]; the command line wins.\n"
		"See doc/cvmfsd-disk.md.\n",
	};
	struct disk_config ws, def;
	char *path = NULL, *sect = NULL;
	int pos, r;

	cfg_init(c);
	r = opts_parse(&spec, c, argc, argv, &pos, &path);
	c->inodes_cli = c->inodes;
	if (r == 0 && pos != argc - 1) {
		log_error("%s", pos >= argc ? "missing MOUNTPOINT" : "too many arguments");
		r = -EINVAL;
	}
	if (r == 0)
		*mountpoint = argv[pos];
	if (r == 0 && !c->config && !(c->config = strdup(path)))
		r = -ENOMEM;
	if (r == 0)
		r = load_section(path, c->config && strcmp(path, CVMFS_CONFIG_FILE), "disk", &def);
	if (r == 0 && c->name && name_ok(c->name) && !(sect = section_name(c->name)))
		r = -ENOMEM;
	if (r == 0)
		r = load_section(path, false, sect ? sect : "disk", &ws);
	if (r == 0) {
		merge(c, &ws, &def);
		opts_free(disk_opts, &ws);
		opts_free(disk_opts, &def);
		r = validate(c);
	}
	free(path);
	free(sect);
	return r;
}

/* The limit cvm-launch --disk asks of the running daemon: one size in
 * RUN_DIR/disk/NAME.limit, put there by rename (never seen half written)
 * and removed by the publisher once the status answers it (publish.c).
 * 1 with *limit, 0 without a request, or a negative errno (logged). */
static int limit_request(const struct disk_config *c, uint64_t *limit)
{
	_cleanup_free_ char *path = cvmfs_disk_file(c->run_dir, c->name, CVMFS_DISK_LIMIT);
	char buf[32];
	ssize_t n;

	if (!path)
		return -ENOMEM;
	n = read_regular_buf(AT_FDCWD, path, buf, sizeof(buf));
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return log_error_errno((int)n, "SIGHUP: %s: %s", path, file_strerror((int)n));
	buf[strcspn(buf, "\n")] = '\0';
	if (size_parse(buf, limit) < 0 || *limit == 0)
		return log_error_errno(-EINVAL, "SIGHUP: %s: not a size: '%s'", path, buf);
	return 1;
}

int disk_config_reload(struct disk_config *c, uint64_t *limit, uint64_t *inodes, bool *request)
{
	struct disk_config ws, def;
	_cleanup_free_ char *sect = section_name(c->name);
	uint64_t want;
	int req = limit_request(c, &want), r;

	*request = req != 0;
	if (!sect || req < 0)
		return sect ? req : -ENOMEM;
	/* A request needs no config file: the daemon may have none. */
	r = load_section(c->config, !req, "disk", &def);
	if (r == 0)
		r = load_section(c->config, !req, sect, &ws);
	if (r < 0)
		return r;
	if (req)
		*limit = want;
	else if (ws.limit != UNSET || def.limit != UNSET)
		*limit = ws.limit != UNSET ? ws.limit : def.limit;
	/* The file's inodes, else the command line's, else the default for
	 * the (new) limit. */
	*inodes = disk_inode_limit(*limit, ws.inodes != UNSET    ? ws.inodes
					   : def.inodes != UNSET ? def.inodes
								 : c->inodes_cli);
	opts_free(disk_opts, &ws);
	opts_free(disk_opts, &def);
	return *limit ? 0 : -EINVAL;
}

void disk_config_free(struct disk_config *c)
{
	opts_free(disk_opts, c);
}

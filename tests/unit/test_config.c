/* opts_parse: command line and config file share option names; the command
 * line wins; errors name FILE:LINE on stderr and return -EINVAL. */
#include "check.h"
#include "fixture.h"

#include "cvmfs/config.h"
#include "cvmfs/log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct topts {
	char *config;
	char *name;
	uint64_t limit;
	uint64_t count;
	bool verbose;
	bool quiet;
	char *list;
};

#define O(f) offsetof(struct topts, f)
static const struct opt_def defs[] = {
	{ "config", 'c', OPT_STR, O(config), true },
	{ "name", 'n', OPT_STR, O(name), false },
	{ "limit", 'l', OPT_SIZE, O(limit), false },
	{ "count", 0, OPT_UINT, O(count), false },
	{ "verbose", 'v', OPT_BOOL, O(verbose), false },
	{ "quiet", 0, OPT_BOOL, O(quiet), false },
	{ "options", 'o', OPT_LIST, O(list), false },
	OPT_END,
};
static const char *const sections[] = { "test", "shared", NULL };

static char *dir;
static char default_conf[512];

static struct opt_spec spec(void)
{
	return (struct opt_spec){ "tprog", defs, sections, default_conf };
}

/* Write a config file in the temp dir and return its path (static buffer). */
static const char *conf(const char *name, const char *text)
{
	static char path[512];

	fx_write(dir, name, text);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* Run opts_parse on a NULL-terminated argv; stderr captured into *err. */
static int parse(struct topts *o, char **argv, int *pos, char **cfg, char **err)
{
	struct opt_spec s = spec();
	int argc = 0, r;

	while (argv[argc])
		argc++;
	memset(o, 0, sizeof(*o));
	fx_stderr_begin();
	r = opts_parse(&s, o, argc, argv, pos, cfg);
	*err = fx_stderr_end();
	return r;
}

static bool contains(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle);
}

static void test_cli_only(void)
{
	char *argv[] = { "tprog", "-n", "x", "--limit", "10M", "--count", "5", "-v",
			 "-o", "a", "--options", "b", "-o", "c", "mnt", "extra", NULL };
	struct topts o;
	char *err, *cfg = NULL;
	int pos = -1;

	CHECK_EQ_INT(parse(&o, argv, &pos, &cfg, &err), 0);
	CHECK_STR(err, "");
	CHECK_STR(o.name, "x");
	CHECK_EQ_U64(o.limit, 10ULL << 20);
	CHECK_EQ_U64(o.count, 5);
	CHECK(o.verbose);
	CHECK(!o.quiet);
	CHECK_STR(o.list, "a:b:c"); /* repeated list options accumulate */
	CHECK_EQ_INT(pos, 14);
	CHECK_STR(argv[pos], "mnt");
	CHECK_STR(cfg, default_conf); /* the absent default is not an error */
	free(cfg);
	free(err);
	opts_free(defs, &o);
}

static void test_positional_stops_options(void)
{
	char *argv[] = { "tprog", "mnt", "-v", NULL };
	struct topts o;
	char *err;
	int pos = -1;

	CHECK_EQ_INT(parse(&o, argv, &pos, NULL, &err), 0);
	CHECK_EQ_INT(pos, 1);
	CHECK(!o.verbose);
	free(err);
	opts_free(defs, &o);

	char *argv2[] = { "tprog", "-v", "--", "-n", NULL };

	CHECK_EQ_INT(parse(&o, argv2, &pos, NULL, &err), 0);
	CHECK_EQ_INT(pos, 3);
	CHECK(o.verbose);
	CHECK(!o.name);
	free(err);
	opts_free(defs, &o);
}

static const char good_conf[] =
	"# a comment\n"
	"; another comment\n"
	"[other]\n"
	"not_ours = 1\n"
	"\n"
	"[test]\n"
	"name = fromfile\n"
	"limit = 2G\n"
	"count = 7\n"
	"verbose = yes\n"
	"quiet = off\n"
	"options = x\n"
	"options = y\n"
	"[shared]\n"
	"options = w\n";

static void test_file(void)
{
	const char *path = conf("good.conf", good_conf);
	char *argv[] = { "tprog", "-c", (char *)path, "mnt", NULL };
	struct topts o;
	char *err, *cfg = NULL;
	int pos = -1;

	CHECK_EQ_INT(parse(&o, argv, &pos, &cfg, &err), 0);
	CHECK_STR(err, "");
	CHECK_STR(o.name, "fromfile");
	CHECK_EQ_U64(o.limit, 2ULL << 30);
	CHECK_EQ_U64(o.count, 7);
	CHECK(o.verbose);
	CHECK(!o.quiet);
	CHECK_STR(o.list, "x:y:w"); /* every wanted section, in file order */
	CHECK_STR(o.config, path);
	CHECK_STR(cfg, path);
	CHECK_EQ_INT(pos, 3);
	free(cfg);
	free(err);
	opts_free(defs, &o);
}

static void test_cli_beats_file(void)
{
	const char *path = conf("good.conf", good_conf);
	char *argv[] = { "tprog", "--name", "cli", "-c", (char *)path, "-o", "z",
			 "--count=9", "mnt", NULL };
	struct topts o;
	char *err;
	int pos = -1;

	CHECK_EQ_INT(parse(&o, argv, &pos, NULL, &err), 0);
	CHECK_STR(err, "");
	CHECK_STR(o.name, "cli");
	CHECK_EQ_U64(o.count, 9);
	CHECK_EQ_U64(o.limit, 2ULL << 30); /* not on the command line: the file's */
	CHECK_STR(o.list, "z");            /* the command line's list replaces the file's */
	CHECK(o.verbose);
	free(err);
	opts_free(defs, &o);

	/* A flag given on the command line is not undone by the file. */
	const char *p2 = conf("no.conf", "[test]\nverbose = no\nquiet = true\n");
	char *argv2[] = { "tprog", "-v", "-c", (char *)p2, NULL };

	CHECK_EQ_INT(parse(&o, argv2, &pos, NULL, &err), 0);
	CHECK(o.verbose);
	CHECK(o.quiet);
	free(err);
	opts_free(defs, &o);
}

static void test_default_config(void)
{
	char *argv[] = { "tprog", "mnt", NULL };
	struct topts o;
	char *err, *cfg = NULL;
	int pos = -1;

	fx_write(dir, "default.conf", "[test]\nname = dflt\n");
	CHECK_EQ_INT(parse(&o, argv, &pos, &cfg, &err), 0);
	CHECK_STR(o.name, "dflt");
	CHECK_STR(cfg, default_conf);
	free(cfg);
	free(err);
	opts_free(defs, &o);
	fx_unlink(dir, "default.conf");
}

/* A config error: -EINVAL, one message naming FILE:LINE. */
static void expect_conf_error(const char *text, int line, const char *what,
			      const char *file, int cline)
{
	const char *path = conf("bad.conf", text);
	char *argv[] = { "tprog", "-c", (char *)path, NULL };
	char want[600];
	struct topts o;
	char *err;
	int pos;
	int r = parse(&o, argv, &pos, NULL, &err);

	check_i64(r, -EINVAL, "opts_parse(bad config)", file, cline);
	snprintf(want, sizeof(want), "tprog: %s:%d: ", path, line);
	if (!check_bool(contains(err, want), "stderr names FILE:LINE", file, cline))
		fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", want, err);
	if (!check_bool(contains(err, what), "stderr names the problem", file, cline))
		fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", what, err);
	free(err);
	opts_free(defs, &o);
}

#define CONF_ERROR(text, line, what) expect_conf_error((text), (line), (what), __FILE__, __LINE__)

static void test_file_errors(void)
{
	CONF_ERROR("[test]\nname = a\nbogus = 1\n", 3, "bogus");
	CONF_ERROR("# c\n\n[test]\n\n\nnaem = typo\n", 6, "naem");
	CONF_ERROR("[test]\nconfig = /etc/other.conf\n", 2, "config"); /* command line only */
	CONF_ERROR("[test]\n\nlimit = 10X\n", 3, "limit");
	CONF_ERROR("[test]\ncount = -3\n", 2, "count");
	CONF_ERROR("[test]\ncount = 12abc\n", 2, "count");
	CONF_ERROR("[test]\nverbose = maybe\n", 2, "verbose");
	CONF_ERROR("[test]\nname = ok\nthis line has no equals sign\n", 3, "syntax");
	/* An overflowing size is a bad value like any other: -EINVAL. */
	CONF_ERROR("[test]\nlimit = 99999999999999999999\n", 2, "limit");
	CONF_ERROR("[test]\nlimit = 16777216T\n", 2, "limit");
}

/* A line of n copies of c (malloc'ed), for lines longer than any buffer. */
static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Lines of any length parse as one line: a fixed line buffer used to cut a
 * long comment so that its tail "limit = 1T" became a setting. */
static void test_long_lines(void)
{
	char *pad = repeat('x', 5000), *text, *err;
	char *argv[] = { "tprog", "-c", NULL, NULL };
	struct topts o;
	int pos;

	CHECK(asprintf(&text, "[test]\n# %s limit = 1T\n; %s limit = 1T\n"
			      "   # %s limit = 1T\ncount = 3\n", pad, pad, pad) > 0);
	argv[2] = (char *)conf("long.conf", text);
	CHECK_EQ_INT(parse(&o, argv, &pos, NULL, &err), 0);
	CHECK_STR(err, "");
	CHECK_EQ_U64(o.limit, 0); /* the comments' tails set nothing */
	CHECK_EQ_U64(o.count, 3);
	free(err);
	opts_free(defs, &o);
	free(text);

	/* A long value (a many-layer image list) arrives whole. */
	CHECK(asprintf(&text, "[test]\noptions = /a%s:/b%s\nname = n%s ; comment\n", pad,
		       pad, pad) > 0);
	argv[2] = (char *)conf("long.conf", text);
	CHECK_EQ_INT(parse(&o, argv, &pos, NULL, &err), 0);
	CHECK_STR(err, "");
	CHECK(o.list && strlen(o.list) == 2 * 5002 + 1 && !strncmp(o.list, "/a", 2) &&
	      !strncmp(o.list + 5002, ":/b", 3));
	CHECK(o.name && strlen(o.name) == 5001 && o.name[5000] == 'x');
	free(err);
	opts_free(defs, &o);
	free(text);

	/* Line numbers after a long line are right. */
	CHECK(asprintf(&text, "[test]\n# %s\nname = %s\n\nbogus = 1\n", pad, pad) > 0);
	CONF_ERROR(text, 5, "unknown key 'bogus'");
	free(text);
	free(pad);
}

static void test_syntax(void)
{
	struct topts o;
	char *err;
	int pos;
	const char *p = conf("syn.conf", "\xef\xbb\xbf[ test ]\r\n  name:  spaced  \r\n"
					  "limit = 1K ; a comment\n[test] ; ok\n");
	char *argv[] = { "tprog", "-c", (char *)p, NULL };

	CHECK_EQ_INT(parse(&o, argv, &pos, NULL, &err), 0);
	CHECK_STR(err, "");
	CHECK_STR(o.name, "spaced");
	CHECK_EQ_U64(o.limit, 1024);
	free(err);
	opts_free(defs, &o);
	/* ';' without a blank before it is part of the value. */
	CONF_ERROR("[test]\ncount=4;x\n", 2, "count");
	CONF_ERROR("[test\nname = a\n", 1, "syntax error");
	/* Text after a section header used to be dropped silently. */
	CONF_ERROR("[test] limit = 1T\n", 1, "text after [test]");
	CONF_ERROR("[test]\n = 5\n", 2, "no name");
	/* A NUL byte would hide the rest of its line from a C-string parser. */
	static const char nul[] = "[test]\nname = a\n\0limit = 1T\n";
	char path[600], want[700];
	FILE *f;

	snprintf(path, sizeof(path), "%s/nul.conf", dir);
	f = fopen(path, "w");
	CHECK(f && fwrite(nul, 1, sizeof(nul) - 1, f) == sizeof(nul) - 1);
	if (f)
		fclose(f);
	char *argv2[] = { "tprog", "-c", path, NULL };

	CHECK_EQ_INT(parse(&o, argv2, &pos, NULL, &err), -EINVAL);
	snprintf(want, sizeof(want), "tprog: %s:3: binary data", path);
	CHECK(contains(err, want));
	free(err);
	opts_free(defs, &o);
	fx_unlink(dir, "nul.conf");
}

/* A config path that names a special file or a huge file: one line naming
 * it, an error, and never a hang (a FIFO with no writer blocks a plain
 * open; /dev/zero never ends). alarm() turns a hang into a failure. */
static void expect_refused(const char *path, bool must_exist, const char *what)
{
	struct opt_spec s = spec();
	struct topts o = { 0 };
	char want[700];
	char *err;
	int r;

	alarm(20);
	fx_stderr_begin();
	r = opts_load_file(&s, &o, path, must_exist);
	err = fx_stderr_end();
	alarm(0);
	CHECK(r < 0);
	snprintf(want, sizeof(want), "tprog: %s: %s\n", path, what);
	if (!CHECK(contains(err, want)))
		fprintf(stderr, "  wanted \"%s\" in \"%s\"\n", want, err);
	CHECK(err && strchr(err, '\n') == err + strlen(err) - 1); /* one line */
	free(err);
	opts_free(defs, &o);
}

static void test_special_files(void)
{
	char fifo[600], big[600];
	char *pad = repeat('#', (1U << 20) + 1);

	snprintf(fifo, sizeof(fifo), "%s/fifo.conf", dir);
	CHECK_EQ_INT(mkfifo(fifo, 0600), 0);
	expect_refused("/dev/zero", true, "not a regular file");
	expect_refused("/dev/full", true, "not a regular file");
	/* The one device allowed: /dev/null, the usual "no config file". */
	struct opt_spec s = spec();
	struct topts o = { 0 };

	CHECK_EQ_INT(opts_load_file(&s, &o, "/dev/null", true), 0);
	expect_refused(fifo, true, "not a regular file");
	expect_refused(fifo, false, "not a regular file"); /* even as the default */
	expect_refused(dir, true, "Is a directory");
	fx_write(dir, "big.conf", pad);
	snprintf(big, sizeof(big), "%s/big.conf", dir);
	expect_refused(big, true, "larger than 1024 KiB: not a config file");
	fx_unlink(dir, "big.conf");
	fx_unlink(dir, "fifo.conf");
	free(pad);
}

static void test_cli_errors(void)
{
	struct topts o;
	char *err;
	int pos;

	char *a1[] = { "tprog", "--bogus", "mnt", NULL };
	CHECK_EQ_INT(parse(&o, a1, &pos, NULL, &err), -EINVAL);
	CHECK(contains(err, "tprog: unknown option '--bogus'"));
	free(err);
	opts_free(defs, &o);

	char *a2[] = { "tprog", "-x", NULL };
	CHECK_EQ_INT(parse(&o, a2, &pos, NULL, &err), -EINVAL);
	CHECK(contains(err, "unknown option"));
	free(err);
	opts_free(defs, &o);

	char *a3[] = { "tprog", "--name", NULL };
	CHECK_EQ_INT(parse(&o, a3, &pos, NULL, &err), -EINVAL);
	CHECK(contains(err, "missing argument"));
	free(err);
	opts_free(defs, &o);

	char *a4[] = { "tprog", "--limit", "5Q", NULL };
	CHECK_EQ_INT(parse(&o, a4, &pos, NULL, &err), -EINVAL);
	CHECK(contains(err, "bad value for --limit: '5Q'"));
	free(err);
	opts_free(defs, &o);

	char *a5[] = { "tprog", "--count", "99999999999999999999", NULL };
	CHECK_EQ_INT(parse(&o, a5, &pos, NULL, &err), -EINVAL);
	CHECK(contains(err, "bad value for --count"));
	free(err);
	opts_free(defs, &o);

	/* A flag takes no value. */
	char *a6[] = { "tprog", "--verbose=yes", NULL };
	CHECK_EQ_INT(parse(&o, a6, &pos, NULL, &err), -EINVAL);
	free(err);
	opts_free(defs, &o);

	/* An explicit -c must exist. */
	char missing[600];

	snprintf(missing, sizeof(missing), "%s/nope.conf", dir);
	char *a7[] = { "tprog", "-c", missing, NULL };
	CHECK(parse(&o, a7, &pos, NULL, &err) < 0);
	CHECK(contains(err, missing));
	free(err);
	opts_free(defs, &o);
}

/* Two parses in one process must not leak getopt state into each other,
 * even when the first stopped in the middle of "-zv". */
static void test_parse_twice(void)
{
	struct topts o;
	char *err;
	int pos = -1;

	char *a1[] = { "tprog", "-zv", NULL };
	CHECK_EQ_INT(parse(&o, a1, &pos, NULL, &err), -EINVAL);
	free(err);
	opts_free(defs, &o);

	char *a2[] = { "tprog", "mnt", NULL };
	CHECK_EQ_INT(parse(&o, a2, &pos, NULL, &err), 0);
	CHECK(!o.verbose);
	CHECK_EQ_INT(pos, 1);
	free(err);
	opts_free(defs, &o);

	char *a3[] = { "tprog", "-vn", "again", "mnt", NULL };
	CHECK_EQ_INT(parse(&o, a3, &pos, NULL, &err), 0);
	CHECK(o.verbose);
	CHECK_STR(o.name, "again");
	CHECK_EQ_INT(pos, 3);
	free(err);
	opts_free(defs, &o);
}

static void test_load_file(void)
{
	struct opt_spec s = spec();
	struct topts o = { 0 };
	char missing[600];
	char *err;

	snprintf(missing, sizeof(missing), "%s/nope.conf", dir);
	CHECK_EQ_INT(opts_load_file(&s, &o, missing, false), 0);
	fx_stderr_begin();
	CHECK(opts_load_file(&s, &o, missing, true) < 0);
	err = fx_stderr_end();
	CHECK(contains(err, "nope.conf"));
	free(err);
	CHECK_EQ_INT(opts_load_file(&s, &o, conf("good.conf", good_conf), true), 0);
	CHECK_STR(o.name, "fromfile");
	CHECK_EQ_U64(o.count, 7);
	opts_free(defs, &o);
	CHECK(!o.name && !o.list);
}

static void test_bool_words(void)
{
	static const char *const yes[] = { "1", "yes", "true", "on", "YES", "True", "On" };
	static const char *const no[] = { "0", "no", "false", "off", "NO", "False", "OFF" };
	static const char *const bad[] = { "", "2", "y", "n", "yess", "enable", " yes", "yes " };
	bool v;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		v = false;
		CHECK_EQ_INT(bool_parse(yes[i], &v), 0);
		CHECK(v);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		v = true;
		CHECK_EQ_INT(bool_parse(no[i], &v), 0);
		CHECK(!v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = true;
		CHECK_EQ_INT(bool_parse(bad[i], &v), -EINVAL);
		CHECK(v);
	}
}

int main(void)
{
	/* The errors are logged: under the program's name, as in every program. */
	log_setup("tprog", false, false);
	dir = fx_tmpdir("config");
	snprintf(default_conf, sizeof(default_conf), "%s/default.conf", dir);
	test_cli_only();
	test_positional_stops_options();
	test_file();
	test_cli_beats_file();
	test_default_config();
	test_file_errors();
	test_long_lines();
	test_syntax();
	test_special_files();
	test_cli_errors();
	test_parse_twice();
	test_load_file();
	test_bool_words();
	fx_rm_tree(dir);
	free(dir);
	return check_done();
}

#include "cvmfs/config.h"
#include "cvmfs/log.h"
#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"
#include "cvmfs/size.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int bool_parse(const char *text, bool *v)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(text, yes[i])) {
			*v = true;
			return 0;
		}
		if (!strcasecmp(text, no[i])) {
			*v = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* One more value at the end of a NULL-terminated array. */
static int strv_add(char ***v, const char *value)
{
	size_t n = 0;
	char **grown, *copy = strdup(value);

	while (*v && (*v)[n])
		n++;
	grown = copy ? realloc(*v, (n + 2) * sizeof(char *)) : NULL;
	if (!grown) {
		free(copy);
		return -ENOMEM;
	}
	grown[n] = copy;
	grown[n + 1] = NULL;
	*v = grown;
	return 0;
}

static int opt_apply(const struct opt_def *d, void *opts, const char *value)
{
	char *base = opts;
	int r;

	switch (d->type) {
	case OPT_STR:
	case OPT_LIST: {
		char **dst = (char **)(base + d->offset);
		char *v;

		if (d->type == OPT_LIST && *dst) {
			if (asprintf(&v, "%s:%s", *dst, value) < 0)
				return -ENOMEM;
		} else {
			v = strdup(value);
		}
		if (!v)
			return -ENOMEM;
		free(*dst);
		*dst = v;
		return 0;
	}
	case OPT_STRV:
		return strv_add((char ***)(base + d->offset), value);
	case OPT_SIZE:
		r = size_parse(value, (uint64_t *)(base + d->offset));
		return r;
	case OPT_UINT:
		return uint_parse(value, (uint64_t *)(base + d->offset));
	case OPT_BOOL:
		return bool_parse(value, (bool *)(base + d->offset));
	}
	return -EINVAL;
}

static const struct opt_def *opt_find(const struct opt_def *defs, const char *name)
{
	for (; defs->name; defs++)
		if (!strcmp(defs->name, name))
			return defs;
	return NULL;
}

/* The config file is read whole (bounded, regular files only) and handed
 * to inih one whole line per reader call, so that a line is never cut: a
 * cut line would make a long comment ending in "limit = 1T" a setting and
 * put every later line number off. Debian's inih lets its line buffer grow
 * at run time (HAVE_INI_RUNTIME_SWITCHES): lines of any length then parse.
 * An inih built without the switches has a fixed buffer: a comment too long
 * for it is passed on as an empty comment, any other long line is refused
 * with its number. Leading blanks are dropped before inih sees a line, so
 * an indented line is never taken as the continuation of the previous
 * value (inih's multi-line values would turn "  limit = 1T" into a value
 * of the key above). */
#define CONFIG_MAX_BYTES (1U << 20)

#ifdef HAVE_INI_RUNTIME_SWITCHES
#define INI_LINE_GROWS 1
#else
#define INI_LINE_GROWS 0
#endif
/* inih keeps a section name in 50 bytes, cutting "[launch NAME]" for a long
 * NAME: the reader hands it "[N]" instead, N indexing the names kept here. */
#define MAX_SECTIONS 4096

struct ini_ctx {
	const struct opt_spec *spec;
	void *opts;
	const char *path;
	const bool *on_cli; /* indexed like spec->defs; NULL for none */
	const char *next;   /* the reader's position in the text */
	int lineno;         /* of the line inih is parsing */
	bool mid_line;      /* the reader is continuing a line inih grew for */
	int error;          /* set by the reader or the handler; stops the parse */
	char **sections;    /* section names, by the index the reader gave inih */
	size_t n_sections;
	char alias[24];     /* "[N]\n" for the header being read */
};

static bool section_wanted(const struct opt_spec *spec, const char *section)
{
	for (const char *const *s = spec->sections; s && *s; s++)
		if (!strcmp(*s, section))
			return true;
	return false;
}

/* One line naming FILE:LINE; returns -EINVAL. */
static int __attribute__((format(printf, 2, 3)))
config_error(struct ini_ctx *ctx, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%d: %s", ctx->path, ctx->lineno, msg);
	ctx->error = -EINVAL;
	return -EINVAL;
}

/* "[name]": records name (blanks trimmed) and sets ctx->alias to what inih
 * gets instead. Text after the header, which inih would drop without a
 * word, is refused. */
static int section_header(struct ini_ctx *ctx, const char *line, size_t len)
{
	const char *close = memchr(line, ']', len), *b = line + 1, *e, *p;
	char **grown;

	if (!close)
		return 0; /* inih reports the syntax error itself */
	for (p = close + 1; p < line + len && isspace((unsigned char)*p); p++)
		;
	if (p < line + len && *p != ';' && *p != '#')
		return config_error(ctx, "syntax error: text after [%.*s]",
				    (int)MIN(close - line - 1, 40), line + 1);
	for (e = close; e > b && isspace((unsigned char)e[-1]); e--)
		;
	while (b < e && isspace((unsigned char)*b))
		b++;
	if (ctx->n_sections == MAX_SECTIONS)
		return config_error(ctx, "more than %d sections", MAX_SECTIONS);
	grown = realloc(ctx->sections, (ctx->n_sections + 1) * sizeof(*grown));
	if (!grown || !(grown[ctx->n_sections] = strndup(b, (size_t)(e - b)))) {
		if (grown)
			ctx->sections = grown;
		return config_error(ctx, "out of memory");
	}
	ctx->sections = grown;
	snprintf(ctx->alias, sizeof(ctx->alias), "[%zu]\n", ctx->n_sections++);
	return 1;
}

/* Skips the rest of the current line, newline included. */
static void line_skip(struct ini_ctx *ctx)
{
	ctx->next = strchrnul(ctx->next, '\n');
	ctx->next += *ctx->next == '\n';
}

/* Starts the next line: skips its leading blanks and counts it. Returns
 * what inih gets in its place when that is not the line itself (a section
 * alias; an empty comment for a comment too long for a fixed buffer), ""
 * for the line itself, or NULL after an error. */
static const char *line_start(struct ini_ctx *ctx, size_t room)
{
	const char *nl;
	size_t len;
	int r;

	while (*ctx->next == ' ' || *ctx->next == '\t')
		ctx->next++;
	ctx->lineno++;
	nl = strchr(ctx->next, '\n');
	len = nl ? (size_t)(nl - ctx->next) : strlen(ctx->next);
	if (*ctx->next == '[' && (r = section_header(ctx, ctx->next, len)) != 0)
		return r < 0 ? NULL : ctx->alias;
	if (!INI_LINE_GROWS && len + 1 >= room) {
		if (*ctx->next == ';' || *ctx->next == '#')
			return "#\n";
		config_error(ctx, "line longer than %zu bytes", room - 2);
		return NULL;
	}
	return "";
}

/* inih's reader (fgets-like): one line per call, or the rest of the line
 * inih has just grown its buffer for. */
static char *ini_text_reader(char *buf, int size, void *stream)
{
	struct ini_ctx *ctx = stream;
	size_t room = (size_t)size, n;

	if (ctx->error || (!*ctx->next && !ctx->mid_line))
		return NULL;
	if (!ctx->mid_line) {
		const char *instead = line_start(ctx, room);

		if (!instead)
			return NULL;
		if (*instead) {
			line_skip(ctx);
			snprintf(buf, room, "%s", instead);
			return buf;
		}
	}
	n = strcspn(ctx->next, "\n") + (strchr(ctx->next, '\n') ? 1 : 0);
	n = MIN(n, room - 1);
	memcpy(buf, ctx->next, n);
	buf[n] = '\0';
	ctx->next += n;
	ctx->mid_line = n && buf[n - 1] != '\n' && *ctx->next;
	return buf;
}

static int on_ini_value(void *user, const char *section, const char *name,
			const char *value)
{
	struct ini_ctx *ctx = user;
	const struct opt_def *d;
	char *end;
	unsigned long i = strtoul(section, &end, 10);

	/* Before any header inih passes "", else the reader's "N". */
	section = *section && !*end && i < ctx->n_sections ? ctx->sections[i] : "";
	if (!*name) {
		config_error(ctx, "syntax error: no name before '='");
		return 0;
	}
	if (!section_wanted(ctx->spec, section))
		return 1; /* other programs' sections */
	d = opt_find(ctx->spec->defs, name);
	if (!d || d->cli_only) {
		config_error(ctx, "unknown key '%.64s' in [%.64s]", name, section);
		return 0;
	}
	if (ctx->on_cli && ctx->on_cli[d - ctx->spec->defs])
		return 1;
	if (opt_apply(d, ctx->opts, value) < 0) {
		config_error(ctx, "bad value for '%.64s': '%.100s'", name, value);
		return 0;
	}
	return 1;
}

static void ini_setup(void)
{
#if INI_LINE_GROWS
	/* The file is bounded: a line never outgrows CONFIG_MAX_BYTES. */
	ini_use_stack = false;
	ini_allow_realloc = true;
	ini_max_line = (int)CONFIG_MAX_BYTES + 2;
	ini_allow_multiline = false;
#endif
}

/* Parses text (len bytes, NUL-terminated) with inih. */
static int parse_text(struct ini_ctx *ctx, const char *text, size_t len)
{
	int r;

	if (strlen(text) != len) {
		ctx->lineno = 1;
		for (const char *q = text; *q; q++)
			ctx->lineno += *q == '\n';
		return config_error(ctx, "binary data (a NUL byte)");
	}
	/* A UTF-8 BOM: skipped here, so that line 1 is read like the others. */
	ctx->next = text + (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? 3 : 0);
	ini_setup();
	r = ini_parse_stream(ini_text_reader, ctx, on_ini_value, ctx);
	for (size_t i = 0; i < ctx->n_sections; i++)
		free(ctx->sections[i]);
	free(ctx->sections);
	if (ctx->error)
		return ctx->error;
	if (r > 0) {
		ctx->lineno = r;
		return config_error(ctx, "syntax error");
	}
	if (r < 0)
		return config_error(ctx, "cannot parse (out of memory)");
	return 0;
}

static int load_file(const struct opt_spec *spec, void *opts, const char *path,
		     bool must_exist, const bool *on_cli)
{
	_cleanup_free_ char *text = NULL;
	struct ini_ctx ctx = { .spec = spec, .opts = opts, .path = path, .on_cli = on_cli };
	size_t len;
	int r;

	/* The one device allowed: "-c /dev/null" is the usual "no config". */
	if (!strcmp(path, "/dev/null"))
		return 0;
	r = read_regular_alloc(AT_FDCWD, path, CONFIG_MAX_BYTES, &text, &len);
	if (r == -ENOENT && !must_exist)
		return 0;
	if (r == -EFBIG) {
		log_error("%s: larger than %u KiB: not a config file", path, CONFIG_MAX_BYTES >> 10);
		return -EFBIG;
	}
	if (r < 0) {
		log_error("%s: %s", path, file_strerror(r));
		return r;
	}
	return parse_text(&ctx, text, len);
}

int opts_load_file(const struct opt_spec *spec, void *opts, const char *path,
		   bool must_exist)
{
	return load_file(spec, opts, path, must_exist, NULL);
}

static size_t count_defs(const struct opt_def *defs)
{
	size_t n = 0;

	while (defs[n].name)
		n++;
	return n;
}

/* The table's options, then -h/--help. */
static void build_getopt(const struct opt_def *defs, size_t n,
			 struct option *lo, char *shorts)
{
	size_t s = 0;

	shorts[s++] = '+';
	shorts[s++] = ':';
	for (size_t i = 0; i < n; i++) {
		bool arg = defs[i].type != OPT_BOOL;

		lo[i] = (struct option){ defs[i].name, arg ? required_argument : no_argument,
					 NULL, (int)(256 + i) };
		if (defs[i].short_name) {
			shorts[s++] = defs[i].short_name;
			if (arg)
				shorts[s++] = ':';
		}
	}
	lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[n + 1] = (struct option){ 0 };
	shorts[s++] = 'h';
	shorts[s] = '\0';
}

/* Width of "-c, --config FILE" in --help: the descriptions line up after it. */
#define HELP_LEFT 28

/* "  -c, --config FILE   text": built from the table, so that no option is
 * left out of --help. */
static void help_line(const struct opt_def *d)
{
	static const char *const value_names[] = {
		[OPT_STR] = "VALUE", [OPT_SIZE] = "SIZE", [OPT_UINT] = "N",
		[OPT_BOOL] = NULL, [OPT_LIST] = "VALUE", [OPT_STRV] = "VALUE",
	};
	const char *arg = d->arg ? d->arg : value_names[d->type];
	char left[128];

	snprintf(left, sizeof(left), "%c%c%c --%s%s%s", d->short_name ? '-' : ' ',
		 d->short_name ? d->short_name : ' ', d->short_name ? ',' : ' ', d->name,
		 arg ? " " : "", arg ? arg : "");
	printf("  %-*s  %s\n", HELP_LEFT, left, d->help ? d->help : "");
}

static void print_help(const struct opt_spec *spec)
{
	const char *sep = "";

	printf("usage: %s %s\n", spec->prog, spec->usage ? spec->usage : "[OPTION...]");
	if (spec->about)
		printf("%s", spec->about);
	printf("\nOptions:\n");
	for (const struct opt_def *d = spec->defs; d->name; d++)
		help_line(d);
	help_line(&(struct opt_def){ "help", 'h', OPT_BOOL, 0, true, NULL,
				     "print this help and exit" });
	printf("\nEvery option but ");
	for (const struct opt_def *d = spec->defs; d->name; d++) {
		if (d->cli_only) {
			printf("%s--%s", sep, d->name);
			sep = ", ";
		}
	}
	printf("%s--help is also a config key of the same name.\n", sep);
	fflush(stdout);
}

static int short_to_index(const struct opt_def *defs, size_t n, int c)
{
	for (size_t i = 0; i < n; i++)
		if (defs[i].short_name == c)
			return (int)i;
	return -1;
}

int opts_parse(const struct opt_spec *spec, void *opts, int argc, char **argv,
	       int *first_pos, char **config_path)
{
	size_t n = count_defs(spec->defs);
	_cleanup_free_ struct option *lo = calloc(n + 2, sizeof(*lo));
	_cleanup_free_ char *shorts = calloc(2 * n + 5, 1);
	_cleanup_free_ const char **vals = calloc(n, sizeof(*vals));
	_cleanup_free_ bool *on_cli = calloc(n ? n : 1, sizeof(*on_cli));
	const char *cfg = NULL;
	int c, r;

	if (!lo || !shorts || !vals || !on_cli)
		return -ENOMEM;
	build_getopt(spec->defs, n, lo, shorts);
	optind = 0; /* 0, not 1: also resets glibc's state inside "-abc" */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		int idx = c >= 256 ? c - 256 : short_to_index(spec->defs, n, c);

		if (c == 'h' && idx < 0) {
			print_help(spec);
			return OPTS_HELP;
		}
		if (c == '?' || c == ':' || idx < 0) {
			const char *bad = argv[optind - 1];

			log_error("%s option '%s'", c == ':' ? "missing argument for" : "unknown", bad);
			return -EINVAL;
		}
		vals[idx] = spec->defs[idx].type == OPT_BOOL ? "1" : optarg;
		if (!strcmp(spec->defs[idx].name, "config"))
			cfg = optarg;
		/* Repeated list options accumulate, so apply them now. */
		if (spec->defs[idx].type == OPT_LIST || spec->defs[idx].type == OPT_STRV) {
			r = opt_apply(&spec->defs[idx], opts, optarg);
			if (r < 0)
				return r;
			vals[idx] = NULL;
			on_cli[idx] = true;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!vals[i])
			continue;
		on_cli[i] = true;
		r = opt_apply(&spec->defs[i], opts, vals[i]);
		if (r < 0) {
			log_error("bad value for --%s: '%s'", spec->defs[i].name, vals[i]);
			return -EINVAL;
		}
	}
	r = load_file(spec, opts, cfg ? cfg : spec->default_config, cfg != NULL,
		      on_cli);
	if (r < 0)
		return r;
	if (config_path) {
		*config_path = strdup(cfg ? cfg : spec->default_config);
		if (!*config_path)
			return -ENOMEM;
	}
	*first_pos = optind;
	return 0;
}

void opts_free(const struct opt_def *defs, void *opts)
{
	for (; defs->name; defs++) {
		if (defs->type == OPT_STR || defs->type == OPT_LIST) {
			char **p = (char **)((char *)opts + defs->offset);

			free(*p);
			*p = NULL;
		} else if (defs->type == OPT_STRV) {
			char ***v = (char ***)((char *)opts + defs->offset);

			for (char **e = *v; e && *e; e++)
				free(*e);
			free(*v);
			*v = NULL;
		}
	}
}

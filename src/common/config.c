#include "cvmfs/config.h"
#include "cvmfs/cleanup.h"
#include "cvmfs/size.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
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

struct ini_ctx {
	FILE *f;
	int lineno; /* counted by ini_line_reader; inih calls the handler per line */
	const struct opt_spec *spec;
	void *opts;
	const char *path;
	int error;
	const bool *on_cli; /* indexed like spec->defs; NULL for none */
};

static bool section_wanted(const struct opt_spec *spec, const char *section)
{
	for (const char *const *s = spec->sections; s && *s; s++)
		if (!strcmp(*s, section))
			return true;
	return false;
}

static char *ini_line_reader(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->f);

	if (r)
		ctx->lineno++;
	return r;
}

static int on_ini_value(void *user, const char *section, const char *name,
			const char *value)
{
	struct ini_ctx *ctx = user;
	int lineno = ctx->lineno;
	const struct opt_def *d;
	int r;

	if (!section_wanted(ctx->spec, section))
		return 1; /* other programs' sections */
	d = opt_find(ctx->spec->defs, name);
	if (!d || d->cli_only) {
		fprintf(stderr, "%s: %s:%d: unknown key '%s' in [%s]\n",
			ctx->spec->prog, ctx->path, lineno, name, section);
		ctx->error = -EINVAL;
		return 0;
	}
	if (ctx->on_cli && ctx->on_cli[d - ctx->spec->defs])
		return 1;
	r = opt_apply(d, ctx->opts, value);
	if (r < 0) {
		fprintf(stderr, "%s: %s:%d: bad value for '%s': '%s'\n",
			ctx->spec->prog, ctx->path, lineno, name, value);
		ctx->error = -EINVAL;
		return 0;
	}
	return 1;
}

static int load_file(const struct opt_spec *spec, void *opts, const char *path,
		     bool must_exist, const bool *on_cli)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	struct ini_ctx ctx = { f, 0, spec, opts, path, 0, on_cli };
	int r;

	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "%s: %s: %s\n", spec->prog, path, strerror(errno));
		return -errno;
	}
	r = ini_parse_stream(ini_line_reader, &ctx, on_ini_value, &ctx);
	if (ctx.error)
		return ctx.error;
	if (r > 0) {
		fprintf(stderr, "%s: %s:%d: syntax error\n", spec->prog, path, r);
		return -EINVAL;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s: cannot parse\n", spec->prog, path);
		return -EINVAL;
	}
	return 0;
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
	lo[n] = (struct option){ 0 };
	shorts[s] = '\0';
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
	_cleanup_free_ struct option *lo = calloc(n + 1, sizeof(*lo));
	_cleanup_free_ char *shorts = calloc(2 * n + 4, 1);
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

		if (c == '?' || c == ':' || idx < 0) {
			const char *bad = argv[optind - 1];

			fprintf(stderr, "%s: %s option '%s'\n", spec->prog,
				c == ':' ? "missing argument for" : "unknown", bad);
			return -EINVAL;
		}
		vals[idx] = spec->defs[idx].type == OPT_BOOL ? "1" : optarg;
		if (!strcmp(spec->defs[idx].name, "config"))
			cfg = optarg;
		/* Repeated list options accumulate, so apply them now. */
		if (spec->defs[idx].type == OPT_LIST) {
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
			fprintf(stderr, "%s: bad value for --%s: '%s'\n", spec->prog,
				spec->defs[i].name, vals[i]);
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
		}
	}
}

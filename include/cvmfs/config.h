/* Options shared by the command line and the config file (inih's format,
 * parsed in config.c: lines of any length, regular files only).
 * Every option has a config key of the same name; the command line wins. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum opt_type {
	OPT_STR,   /* char *, strdup'ed */
	OPT_SIZE,  /* uint64_t, K/M/G/T suffixes */
	OPT_UINT,  /* uint64_t */
	OPT_BOOL,  /* bool; on the command line a flag, in the file yes/no/true/false/1/0 */
	OPT_LIST,  /* char *, repeated options join with ':' */
	OPT_STRV,  /* char **, NULL-terminated: each occurrence adds one, as given */
};

struct opt_def {
	const char *name;  /* long option and config key */
	char short_name;   /* 0 if none */
	enum opt_type type;
	size_t offset;     /* into the caller's options struct */
	bool cli_only;     /* not a config key (e.g. -c itself) */
	const char *arg;   /* --help: the value's name ("FILE"); NULL for OPT_BOOL */
	const char *help;  /* --help: one line; the program's doc/ page says more */
};

#define OPT_END { NULL, 0, OPT_STR, 0, false }

struct opt_spec {
	const char *prog;            /* for error messages */
	const struct opt_def *defs;  /* terminated by OPT_END */
	const char *const *sections; /* config sections this program reads */
	const char *default_config;  /* read if present and no -c given */
	const char *usage;           /* --help: what follows "usage: PROG " */
	const char *about;           /* --help: lines between usage and options */
};

/* opts_parse's answer to -h/--help, which every program takes (it is in no
 * table, and no config key): the help is on stdout, the caller exits 0. */
#define OPTS_HELP 1

/* Parse argv (after the program/subcommand words) into opts. Positional
 * arguments are returned via *first_pos (index into argv). On a bad option
 * or config line prints one line naming it and returns -EINVAL. At -h or
 * --help prints the usage and every option of spec->defs on stdout and
 * returns OPTS_HELP at once: no config file is read, and options the
 * program requires need not be there. */
int opts_parse(const struct opt_spec *spec, void *opts, int argc, char **argv,
	       int *first_pos, char **config_path);
/* Re-read only the config file (for SIGHUP); command-line values given in
 * cli_mask stay. */
int opts_load_file(const struct opt_spec *spec, void *opts, const char *path,
		   bool must_exist);
/* Parse a boolean word. */
int bool_parse(const char *text, bool *v);
/* Free every OPT_STR/OPT_LIST/OPT_STRV value. */
void opts_free(const struct opt_def *defs, void *opts);

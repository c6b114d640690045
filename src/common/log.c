#include "cvmfs/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static const char *log_prog = "cvmfs";
static bool log_syslog;
static bool log_dbg;

void log_setup(const char *progname, bool use_syslog, bool debug)
{
	log_prog = progname;
	log_syslog = use_syslog;
	log_dbg = debug;
	if (use_syslog)
		openlog(progname, LOG_PID, LOG_DAEMON);
}

bool log_debug_enabled(void)
{
	return log_dbg;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[lvl], "%s", line);
		return;
	}
	/* One write per line so concurrent threads never interleave. */
	fprintf(stderr, "%s: %s\n", log_prog, line);
}

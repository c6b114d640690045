/* Logging: stderr in the foreground, syslog when daemonised.
 * Error convention (see doc/architecture.md): functions return a negative
 * errno; the place that decides logs it once, with context. */
#pragma once

#include <stdbool.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_setup(const char *progname, bool use_syslog, bool debug);
bool log_debug_enabled(void);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_debug_enabled())                                       \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                   \
	} while (0)

/* Log an error with strerror(-r) appended and return r (negative errno). */
#define log_error_errno(r, fmt, ...)                                           \
	({                                                                     \
		int _r = (r);                                                  \
		log_msg(LOG_LVL_ERR, fmt ": %s", ##__VA_ARGS__,                \
			strerror(-_r));                                        \
		_r;                                                            \
	})

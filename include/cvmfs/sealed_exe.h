/* Running from a sealed copy of our own binary (the runc fix of
 * CVE-2019-5736), for programs that start processes inside a CVM. */
#pragma once

#include <stdbool.h>

/* Re-executes the program from a sealed memfd copy of /proc/self/exe with
 * the same argv and environment, unless it already runs from one (true
 * then). Returns only on failure (a negative errno): the caller goes on
 * from its file and must not enter a CVM whose root is host root. */
int exe_reexec_sealed(char **argv);
bool exe_is_sealed(void);

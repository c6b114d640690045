/* The supervisor's copies of the launchers' connections (survive.h):
 * kept while a server runs, inherited by the next one, carried over an
 * upgrade's exec in the environment. */
#pragma once

#include "survive.h"

void conns_keep(const struct survive_conn *c);
void conns_drop(uint64_t key);
/* Exec: the list into the environment, fds kept open (0 or -errno); the
 * exec'd supervisor reads it back. */
int conns_to_env(void);
void conns_from_env(void);

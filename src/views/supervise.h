/* cvmfsd views: the system-call supervisor (supervise.c), the views'
 * answers to sysinfo(2) and sched_getaffinity(2) for callers that a CVM's
 * seccomp filter hands over (doc/cvmfsd-views.md). */
#pragma once

/* The unix socket where launchers hand over their CVM's seccomp listener:
 * next to the views' mountpoint, MOUNT.sock (cvm-launch derives the same
 * name from --views: src/launch/notif.c). */
#define SUPERVISE_SOCK_SUFFIX ".sock"

/* Bind MOUNT.sock (or use SOCK, bound by the views' supervisor) and start
 * the supervisor thread. */
int supervise_start(const char *mountpoint, int sock);
/* The views' supervisor: bind MOUNT.sock (the fd, or -1), and unlink and
 * close it at the end. */
int supervise_sock_open(const char *mountpoint);
void supervise_sock_close(void);
/* The same, for a socket inherited over an upgrade's exec. */
void supervise_sock_adopt(const char *mountpoint, int sock);
/* Stop the thread, close every listener (the launchers keep their copies
 * and answer natively until a views daemon takes them again). */
void supervise_stop(void);

/* supervise_calls.c: fill resp for one notification. 0 when resp holds
 * the answer (a result or the errno the kernel would give); -ESRCH when
 * the caller is gone (nothing to send); other negative errno: an internal
 * failure, the caller gets the native call (logged by the caller). */
struct seccomp_notif;
struct seccomp_notif_resp;
int supervise_answer(int listener, const struct seccomp_notif *req,
		     struct seccomp_notif_resp *resp);

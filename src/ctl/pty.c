/* cvmctl exec -t: the host side of CMD's pty. Copies stdin to the master
 * and the master to stdout, keeps the window size of our terminal on it,
 * passes signals on to CMD. With stdin a terminal it is put in raw mode
 * (the CVM's pty does the line editing); otherwise the end of stdin is
 * sent as the pty's end-of-file character. */
#include "ctl.h"

#include "cvmfs/cleanup.h"
#include "cvmfs/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

struct relay {
	int master;
	pid_t child;
	int status;
	bool exited, in_open, master_open;
	char last; /* the last byte sent to the master */
};

int pty_winsize(int master)
{
	struct winsize ws;

	if (!isatty(STDIN_FILENO) || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
		return 0;
	return ioctl(master, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

/* Everything, waiting while the pty's buffer is full. */
static void put(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { fd, POLLOUT, 0 };

			if (poll(&p, 1, 1000) <= 0 && errno != EINTR)
				return;
			continue;
		}
		if (n <= 0)
			return; /* the other side is gone: the rest is lost */
		buf += n;
		len -= (size_t)n;
	}
}

static void from_master(struct relay *r)
{
	char buf[4096];
	ssize_t n = read(r->master, buf, sizeof(buf));

	if (n > 0)
		put(STDOUT_FILENO, buf, (size_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		r->master_open = false; /* EIO: no slave is open any more */
}

static void from_stdin(struct relay *r)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

	if (n > 0) {
		put(r->master, buf, (size_t)n);
		r->last = buf[n - 1];
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	r->in_open = false;
	if (!isatty(STDIN_FILENO)) {
		struct termios t;
		char eof = 4; /* ^D */

		if (tcgetattr(r->master, &t) == 0)
			eof = (char)t.c_cc[VEOF];
		/* A partial line needs one to end it, one more for the EOF. */
		if (r->last && r->last != '\n')
			put(r->master, &eof, 1);
		put(r->master, &eof, 1);
	}
}

static void on_signals(struct relay *r, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH)
			pty_winsize(r->master);
		else if (si.ssi_signo != SIGCHLD && !r->exited)
			kill(r->child, (int)si.ssi_signo);
	}
	if (!r->exited && waitpid(r->child, &r->status, WNOHANG) == r->child)
		r->exited = true;
}

static void loop(struct relay *r, int sfd)
{
	while (r->master_open) {
		struct pollfd p[3] = { { sfd, POLLIN, 0 },
				       { r->master, POLLIN, 0 },
				       { r->in_open ? STDIN_FILENO : -1, POLLIN, 0 } };
		/* Once CMD is gone, what it wrote is read until EIO, or until
		 * a quiet 200 ms when something it started keeps the pty. */
		int n = poll(p, 3, r->exited ? 200 : -1);

		if (n < 0 && errno != EINTR)
			break;
		if (n == 0 && r->exited)
			break;
		if (p[1].revents)
			from_master(r);
		if (p[2].revents)
			from_stdin(r);
		if (p[0].revents)
			on_signals(r, sfd);
	}
}

int pty_relay(int master, pid_t child, int sfd)
{
	struct relay r = { master, child, 0, false, true, true, 0 };
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;

	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	on_signals(&r, sfd);
	loop(&r, sfd);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (!r.exited && waitpid(child, &r.status, 0) < 0)
		return -errno;
	return r.status;
}

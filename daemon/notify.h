/*
 * notify.h - the service manager's protocols, without libsystemd.
 *
 * Readiness and status are one datagram each to $NOTIFY_SOCKET, and socket
 * activation is LISTEN_PID/LISTEN_FDS with the sockets from fd 3: stable,
 * documented interfaces (sd_notify(3), sd_listen_fds(3)) that systemd says
 * may be implemented without its library. Doing so keeps libsystemd and the
 * six libraries it drags in (libgcrypt, liblzma, libzstd, liblz4, libcap,
 * libgpg-error: 1.07 MiB of a 3.2 MiB idle daemon, and most of its start-up
 * time) out of the process: the path by which the xz backdoor reached sshd.
 *
 * The watchdog pets only while the loop runs (its timer fires) and the
 * thread pool is alive by its own account (busy with long calls counts as
 * alive: a probe queued behind them would only measure their length), and
 * never blocks: the datagram is sent with MSG_DONTWAIT, so a notify socket
 * nobody reads cannot stall the loop.
 */
#ifndef LMMS_NOTIFY_H
#define LMMS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct notify {
	uv_loop_t *loop;
	bool enabled; /* NOTIFY_SOCKET is set and usable */
	char addr[108]; /* sun_path; a leading '\0' for the abstract namespace */
	size_t addr_len;
	uint64_t sent; /* datagrams sent */

	uv_timer_t watchdog;
	bool watchdog_open;
	uint64_t interval_ms; /* of the petting, 0 without a watchdog */

	/* Writes the STATUS= text (without the key) into buf. */
	void (*status)(void *ud, char *buf, size_t n);
	/* Is the thread pool alive? (The loop is: the timer fired.) */
	bool (*alive)(void *ud);
	void *ud;
} notify;

/* Reads NOTIFY_SOCKET. Nothing to undo when it is unset. */
void notify_init(notify *n, uv_loop_t *loop, void (*status)(void *ud, char *buf, size_t n),
		 bool (*alive)(void *ud), void *ud);
void notify_fini(notify *n);
/* Send one newline-separated assignment list. 0, or a negative errno. */
int notify_send(notify *n, const char *text);
void notify_ready(notify *n);
void notify_status(notify *n);
void notify_stopping(notify *n);
/* WATCHDOG_USEC (and WATCHDOG_PID, when set) enable petting at half of it. */
void notify_watchdog_start(notify *n);

/* The socket the service manager passed (LISTEN_PID/LISTEN_FDS), made
 * close-on-exec and checked to be a listening Unix stream socket, or -1.
 * The variables are removed, so children do not inherit them. */
int notify_listen_fd(void);

#endif

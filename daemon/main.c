/*
 * main.c - lmmsd's command line (DESIGN.md §6), configuration, socket and
 * module directory resolution, and the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "lmms-build-config.h"
#include "log.h"
#include "worker.h"

static lmmsd daemon_instance;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: lmmsd [OPTION]...\n"
		"Serve module operations over MessagePack-RPC on a Unix socket.\n\n"
		"  -s, --socket PATH      listen on PATH (default: $LMMS_SOCKET, [server] socket,\n"
		"                         /run/lmms/lmmsd.sock for root, else\n"
		"                         $XDG_RUNTIME_DIR/lmms/lmmsd.sock)\n"
		"  -c, --config FILE      configuration file (default: %s)\n"
		"  -m, --module-dir DIR   modules (default: $LMMS_MODULE_DIR, [ligs] module_dir,\n"
		"                         %s)\n"
		"      --set SECTION.KEY=VALUE  override one configuration key (repeatable)\n"
		"      --eager            load every module at start and never unload (baseline)\n"
		"      --check-config     validate the configuration, print it and exit\n"
		"      --version          print the version and exit\n"
		"  -h, --help             this help\n",
		LMMS_CONFIG_FILE_DEFAULT, LMMS_MODULE_DIR_DEFAULT);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "module-dir", required_argument, NULL, 'm' },
		{ "set", required_argument, NULL, 'S' },
		{ "eager", no_argument, NULL, 'E' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	lmmsd *d = &daemon_instance;
	const char *socket_arg = NULL, *module_dir_arg = NULL, *env;
	bool check_only = false;
	char err[1024];
	uv_loop_t *loop;
	int opt, r, listen_fd;

	/* lmmsd re-executed as the worker of an isolated module (worker.h) */
	if (argc > 1 && strcmp(argv[1], "--worker") == 0)
		return worker_main(argc, argv);
	while ((opt = getopt_long(argc, argv, "s:c:m:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_arg = optarg;
			break;
		case 'c':
			d->config_path = optarg;
			break;
		case 'm':
			module_dir_arg = optarg;
			break;
		case 'S':
			if (d->n_overrides >= LMMSD_MAX_OVERRIDES) {
				fprintf(stderr, "lmmsd: too many --set options (at most %d)\n",
					LMMSD_MAX_OVERRIDES);
				return 2;
			}
			d->overrides[d->n_overrides++] = optarg;
			break;
		case 'E':
			d->eager = true;
			break;
		case 'C':
			check_only = true;
			break;
		case 'V':
			printf("lmmsd %s\n", LMMS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "lmmsd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	r = config_load(&d->cfg, d->config_path, d->overrides, d->n_overrides, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "lmmsd: %s\n", err);
		return 1;
	}
	log_init(d->cfg.server.log_level);

	/* command line > environment > configuration file > built-in default */
	env = getenv("LMMS_SOCKET");
	if (socket_arg)
		r = snprintf(d->socket_path, sizeof(d->socket_path), "%s", socket_arg) >=
				    (int)sizeof(d->socket_path)
			    ? -ENAMETOOLONG
			    : 0;
	else if ((!env || !*env) && d->cfg.server.socket[0])
		r = snprintf(d->socket_path, sizeof(d->socket_path), "%s", d->cfg.server.socket) >=
				    (int)sizeof(d->socket_path)
			    ? -ENAMETOOLONG
			    : 0;
	else
		r = proto_default_socket(d->socket_path, sizeof(d->socket_path));
	if (r < 0) {
		log_err("socket path too long");
		return 1;
	}
	env = getenv("LMMS_MODULE_DIR");
	env = module_dir_arg		   ? module_dir_arg
	      : env && *env		   ? env
	      : d->cfg.ligs.module_dir[0] ? d->cfg.ligs.module_dir
					   : LMMS_MODULE_DIR_DEFAULT;
	if (strlen(env) >= sizeof(d->module_dir)) {
		log_err("module directory path too long");
		return 1;
	}
	strcpy(d->module_dir, env);
	/* lmms.config and --check-config show the values in use, not "" */
	memcpy(d->cfg.server.socket, d->socket_path, sizeof(d->cfg.server.socket));
	memcpy(d->cfg.ligs.module_dir, d->module_dir, sizeof(d->cfg.ligs.module_dir));
	if (check_only) {
		config_print(&d->cfg, stdout);
		return 0;
	}

	/* A client vanishing mid-reply must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Large buffers (a big request's input, a queued call's params, a big
	 * result) are mmapped and go back to the kernel when freed. glibc would
	 * otherwise raise its mmap threshold after the first such free and serve
	 * the next ones from the heap, whose freed space stays resident: RSS
	 * would then follow the peak, not what is in use.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);

	loop = uv_default_loop();
	r = lmmsd_init(d, loop);
	if (r < 0) {
		log_err("cannot start: %s", uv_strerror(r));
		lmmsd_fini(d);
		uv_loop_close(loop);
		return 1;
	}
	listen_fd = notify_listen_fd();
	r = lmmsd_start(d, listen_fd);
	if (r < 0) {
		log_err("cannot listen on %s: %s", d->socket_path, uv_strerror(r));
		lmmsd_fini(d);
		uv_loop_close(loop);
		return 1;
	}

	uv_run(loop, UV_RUN_DEFAULT);
	lmmsd_fini(d);
	if (d->abandoned || d->reg.left_mapped) {
		/* Threads still run module code, or a module's file changed under
		 * it: exit() would run the destructors of what is still mapped. */
		log_info("exiting without running module destructors (%u calls abandoned)",
			 d->abandoned);
		_exit(0);
	}
	r = uv_loop_close(loop);
	if (r < 0)
		log_warn("event loop closed with handles open: %s", uv_strerror(r));
	return 0;
}

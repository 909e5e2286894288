/*
 * main.c - the exchangefs daemon: parse the command line, open the cache,
 * sign in and read the folder list (so errors at start are one clear line
 * and a non-zero exit, never a hang), mount, daemonize, start the sync
 * engine, and run the multi-threaded FUSE loop until unmount, Ctrl-C or
 * SIGTERM, then unmount cleanly.
 */
#include "fs.h"
#include "cache/prefetch.h"
#include "cache/journal.h"
#include "cache/kinds.h"

#include <curl/curl.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

static void syslog_sink(enum log_level lvl, const char *line)
{
	syslog((int)lvl, "%s", line);
}

static bool fs_exiting(void *arg)
{
	struct xfs *fs = arg;
	return fs->se && fuse_session_exited(fs->se);
}

/* The mount point must be a directory without an exchangefs mount on it
 * (a second daemon there would hide the first one's files); one that is
 * not empty is only a warning (its files are hidden while mounted). */
static int check_mountpoint(const char *path)
{
	struct stat st;
	struct statvfs sv;
	if ((stat(path, &st) < 0 || statvfs(path, &sv) < 0) &&
	    errno == ENOTCONN) {   /* stat may be answered from the kernel */
		fprintf(stderr, "exchangefs: %s is the mount of a daemon that "
			"is gone (killed?): fusermount3 -u %s, then mount again\n",
			path, path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		fprintf(stderr, "exchangefs: mount point %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "exchangefs: mount point %s is not a directory\n",
			path);
		return -1;
	}
	char real[PATH_MAX];
	char *source = realpath(path, real) ? unix_mount_source(real) : NULL;
	if (source) {
		fprintf(stderr, "exchangefs: %s is already an exchangefs mount "
			"(%s): unmount it first (exchangefs unmount %s)\n", path,
			source, path);
		free(source);
		return -1;
	}
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			fprintf(stderr, "exchangefs: warning: mount point %s is "
				"not empty: its files are hidden while mounted\n",
				path);
			break;
		}
	if (d)
		closedir(d);
	return 0;
}

/* --prefetch is remembered for the account (in its cache); without it the
 * remembered policy, else the last 30 days (see README: recent mail is
 * what is read and searched, and a first mount of a large mailbox does
 * not start by downloading years of it). */
static void prefetch_policy(struct cache *cache, const struct options *o,
			    struct sync_config *scfg)
{
	scfg->prefetch_days = 30;
	if (o->prefetch) {
		scfg->prefetch_days = o->prefetch_days;
		cache_meta_set(cache, "prefetch", o->prefetch);
		return;
	}
	char *v = cache_meta_get(cache, "prefetch");
	if (v && prefetch_parse(v, &scfg->prefetch_days))
		scfg->prefetch_days = 30;
	free(v);
}

/* A cache holds one account's mail over one protocol (ids and sync states
 * mean nothing to another server or protocol): the first mount writes who
 * it is for, and a mount for someone else is refused (a default cache
 * directory is per account and protocol; only --cache-dir can mix them).
 * The URL may change (a server moved, Autodiscover).  Returns 0 or -1. */
static int cache_account(struct cache *cache, const struct options *o,
			 const char *dir)
{
	char *want = xasprintf("%s %s", o->protocol, o->user ? o->user : "");
	for (char *p = want; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	char *have = cache_meta_get(cache, "account");
	int rc = 0;
	if (!have) {
		cache_meta_set(cache, "account", want);
	} else if (strcmp(have, want)) {
		char *sp = strchr(have, ' ');
		fprintf(stderr, "exchangefs: the cache in %s holds the mail of "
			"%s over %.*s, not of %s over %s: use another "
			"--cache-dir (or remove that one to start again)\n",
			dir, sp ? sp + 1 : have, sp ? (int)(sp - have) : 0,
			have, o->user, o->protocol);
		rc = -1;
	}
	free(have);
	free(want);
	return rc;
}

/* Sign in and read the folder list before mounting.  Returns 0 to go on
 * (online, or offline with a usable cache), -1 to exit. */
static int first_contact(struct cache *cache, const struct sync_config *scfg)
{
	struct sync *s = sync_new(cache, scfg);
	struct be_result r;
	be_result_ok(&r);
	enum be_status st = sync_connect(s, &r);
	int rc = 0;
	if (st != BE_OK) {
		if (be_status_transient(st) && sync_have_cache(s)) {
			fprintf(stderr, "exchangefs: cannot reach %s (%s): serving "
				"the cached copy and retrying in the background\n",
				scfg->be.url, r.msg);
		} else if (be_status_transient(st)) {
			fprintf(stderr, "exchangefs: cannot reach %s: %s (and there "
				"is no cached copy yet)\n", scfg->be.url, r.msg);
			rc = -1;
		} else {
			fprintf(stderr, "exchangefs: %s: %s\n", scfg->be.url, r.msg);
			rc = -1;
		}
	}
	if (scfg->progress && !rc && st == BE_OK && isatty(2))
		fputc('\n', stderr);
	sync_free(s);
	return rc;
}

static char *fuse_options(const struct options *o)
{
	size_t hl;
	const char *h = options_host(o, &hl);
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "fsname=exchangefs:");
	/* commas and backslashes would split or escape the option string */
	for (const char *p = o->user; *p; p++)
		if (*p != ',' && *p != '\\')
			buf_append(&b, p, 1);
	buf_puts(&b, "@");
	buf_append(&b, h, hl);
	buf_puts(&b, ",subtype=exchangefs");
	if (o->fuse_opts && *o->fuse_opts)
		buf_printf(&b, ",%s", o->fuse_opts);
	return b.data;
}

/* Ctrl-C, SIGTERM, SIGHUP: end the FUSE loop.  libfuse's own handler only
 * sets the exit flag; the loop notices when the main thread's wait is
 * interrupted, so a signal taken by any other thread is passed on to the
 * main thread (our threads block these signals - thread_start() - and so
 * do libfuse's workers, but a library's thread might not). */
static struct fuse_session *volatile term_session;
static pthread_t main_thread;

static void on_term(int sig)
{
	int saved = errno;
	struct fuse_session *se = term_session;
	if (se)
		fuse_session_exit(se);
	if (!pthread_equal(pthread_self(), main_thread))
		pthread_kill(main_thread, sig);
	errno = saved;
}

static void term_handlers(struct fuse_session *se)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { 0 };
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = se ? on_term : SIG_DFL;   /* no SA_RESTART */
	main_thread = pthread_self();
	term_session = se;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "status") ||
			  !strcmp(argv[1], "unmount")))
		return unix_command(argc, argv);
	struct options o;
	if (options_parse(argc, argv, &o)) {
		options_free(&o);
		return 2;
	}
	if (o.show_help) {
		options_usage(argv[0]);
		options_free(&o);
		return 0;
	}
	if (o.show_version) {
		printf("exchangefs %s (libfuse %s, %s, SQLite %s)\n",
		       EXCHANGEFS_VERSION, fuse_pkgversion(), curl_version(),
		       sqlite3_libversion());
		options_free(&o);
		return 0;
	}
	log_set_debug(o.debug);
	if (o.login || o.discover) {
		int lrc = o.login ? signin_login(&o) : signin_discover(&o);
		options_free(&o);
		return lrc;
	}
	if (o.lookup) {
		int lrc = lookup_command(&o);
		options_free(&o);
		return lrc;
	}
	if (check_mountpoint(o.mountpoint)) {
		options_free(&o);
		return 1;
	}
	struct signin si;
	if (signin_prepare(&o, &si)) {
		signin_free(&si);
		options_free(&o);
		return 1;
	}
	if (o.insecure)
		fprintf(stderr, "exchangefs: warning: --insecure: TLS certificates "
			"are NOT verified; anyone on the path can read your mail "
			"and password\n");
	else if (!strncmp(o.url, "http://", 7))
		fprintf(stderr, "exchangefs: warning: %s is not encrypted: the "
			"password and mail cross the network in clear text\n", o.url);

	const struct backend_ops *ops = backend_find(o.protocol);
	char *cache_dir = options_cache_dir(&o);
	struct sync_config scfg = {
		.ops = ops,
		.be = {
			.url = o.url, .user = o.user, .password = si.password,
			.auth = si.auth, .oauth2 = si.oauth2,
			.mailbox = o.mailbox, .ca_file = o.ca_file,
			.insecure = o.insecure,
			.connect_timeout_s = o.timeout < 15 ? o.timeout : 15,
			.timeout_s = o.timeout,
			.verbose = log_debug_on(LC_HTTP) ? 1 : 0,
			.state_dir = cache_dir,
		},
		.interval_s = o.sync_interval,
		.notify = !o.no_notify,
		.progress = o.foreground,
	};
	int ret = 1;
	char err[4600] = "";
	struct cache *cache = NULL;
	/* before anything touches the cache: one daemon per cache */
	int lock_fd = cache_lock(cache_dir, o.mountpoint, err, sizeof(err));
	if (lock_fd < 0) {
		fprintf(stderr, "exchangefs: %s\n", err);
		goto out_free;
	}
	cache = cache_open(cache_dir, err, sizeof(err));
	if (!cache) {
		fprintf(stderr, "exchangefs: %s\n", err);
		goto out_free;
	}
	if (cache_account(cache, &o, cache_dir))
		goto out_free;
	cache_set_body_limit(cache, o.cache_size);
	prefetch_policy(cache, &o, &scfg);
	int rc = first_contact(cache, &scfg);
	/* SQLite connections must not cross fork(): reopen after daemonizing */
	cache_close(cache);
	cache = NULL;
	if (rc) {
		signin_forget(&si);   /* a cached Autodiscover answer: ask anew */
		goto out_free;
	}

	struct xfs fs = {
		.uid = getuid(), .gid = getgid(),
		.entry_timeout = 300, .attr_timeout = 300,
		.open_requests = o.open_requests,
		.read_only = o.read_only,
		.reflect = true,
		.mountpoint = o.mountpoint,
	};
	bool stopped_notify = false;
	char *fopts = fuse_options(&o);
	char *fargv[] = { argv[0], "-o", fopts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	fs.se = fuse_session_new(&args, &xfs_ops, sizeof(xfs_ops), &fs);
	free(fopts);
	if (!fs.se) {
		fprintf(stderr, "exchangefs: invalid FUSE options '%s'\n",
			o.fuse_opts ? o.fuse_opts : "");
		goto out_free;
	}
	if (fuse_set_signal_handlers(fs.se)) {
		fprintf(stderr, "exchangefs: cannot install signal handlers\n");
		goto out_session;
	}
	term_handlers(fs.se);
	if (fuse_session_mount(fs.se, o.mountpoint)) {
		fprintf(stderr, "exchangefs: cannot mount on %s (is it already "
			"mounted? is /dev/fuse usable?)\n", o.mountpoint);
		goto out_signals;
	}
	/* in the background: syslog, or a file in the cache directory where
	 * no syslog daemon listens (its lines would be lost) */
	char *log_file = NULL;
	if (!o.foreground && log_syslog_there()) {
		openlog("exchangefs", LOG_PID, LOG_DAEMON);
		log_set_sink(syslog_sink);
	} else if (!o.foreground) {
		log_file = xasprintf("%s/log", cache_dir);
		if (log_to_file(log_file)) {
			fprintf(stderr, "exchangefs: warning: no syslog, and "
				"cannot write %s: %s\n", log_file, strerror(errno));
			free(log_file);
			log_file = NULL;
		}
	}
	fprintf(stderr, "exchangefs: mounted %s on %s%s%s%s\n", o.url,
		o.mountpoint, o.foreground ? " (Ctrl-C to unmount)" : "",
		log_file ? "; log in " : "", log_file ? log_file : "");
	free(log_file);
	if (fuse_daemonize(o.foreground)) {
		fprintf(stderr, "exchangefs: cannot go to the background\n");
		goto out_unmount;
	}
	cache_lock_note(lock_fd, o.mountpoint);   /* the daemon's own pid */
	cache = cache_open(cache_dir, err, sizeof(err));
	if (!cache) {
		log_err("%s", err);
		goto out_unmount;
	}
	cache_set_body_limit(cache, o.cache_size);
	cache_set_trash_delete(cache, o.soft_delete_in_trash ? BE_DEL_SOFT
							     : BE_DEL_HARD);
	if (o.pim && o.protocol && strcmp(o.protocol, "ews"))
		log_warn("--pim: calendars and contacts are read over EWS only "
			 "in this version; over %s their folders show empty",
			 o.protocol);
	if (cache_set_pim(cache, o.pim))
		log_err("cannot show or hide calendars and contacts in %s",
			cache_dir);
	if (journal_recover(cache))
		log_err("cannot tidy up local files in %s", cache_dir);
	if (cache_moves_recover(cache))
		log_err("cannot settle the moves held in %s", cache_dir);
	fs.cache = cache;
	fs.sync = sync_new(cache, &scfg);
	struct sync_hooks hooks = { notify_changes, fs_exiting, notify_status,
				    &fs };
	sync_set_hooks(fs.sync, &hooks);
	if (sync_start(fs.sync)) {
		log_err("cannot start the sync thread");
		goto out_unmount;
	}

	notify_start(&fs);
	unix_notify("READY=1");
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(lc, 16);
	fuse_loop_cfg_set_idle_threads(lc, 4);
	/* 0 after an unmount, the signal number after SIGINT/SIGTERM (both
	 * clean), -errno on a failure */
	ret = fuse_session_loop_mt(fs.se, lc) < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(lc);
	unix_notify("STOPPING=1");
	cache_lock_note(lock_fd, NULL);   /* a new mount may wait for us */
	sync_stop(fs.sync);
	notify_stop();
	stopped_notify = true;

out_unmount:
	fuse_session_unmount(fs.se);
out_signals:
	term_handlers(NULL);
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
	if (stopped_notify)
		notify_finish();
	fuse_opt_free_args(&args);
	if (fs.sync)
		sync_free(fs.sync);
out_free:
	cache_close(cache);
	cache_unlock(lock_fd);
	free(cache_dir);
	signin_free(&si);
	options_free(&o);
	return ret;
}

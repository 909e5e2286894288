/*
 * options.c - the command line of exchangefs: parsing, the help text, where
 * the password comes from (never the command line), and the default cache
 * directory.
 */
#include "fs.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PASSWORD 4096

/* Append the comma-separated FUSE options of one -o to b, except "ro" and
 * "rw": the mount stays read-write underneath, because server changes are
 * reflected through it (fs/notify.c), and a read-only mount refuses the
 * user's changes itself (EROFS). */
static void add_fuse_options(struct buf *b, const char *list, bool *ro)
{
	char *copy = xstrdup(list), *save = NULL;
	for (char *opt = strtok_r(copy, ",", &save); opt;
	     opt = strtok_r(NULL, ",", &save)) {
		if (!strcmp(opt, "ro") || !strcmp(opt, "rw")) {
			*ro = opt[1] == 'o';
			continue;
		}
		if (b->len)
			buf_puts(b, ",");
		buf_puts(b, opt);
	}
	free(copy);
}

void options_usage(const char *prog)
{
	printf(
"usage: %s [options] MOUNTPOINT\n"
"\n"
"Mount a Microsoft Exchange mailbox as a directory tree: folders are\n"
"directories, messages are .eml files (the server's exact MIME).\n"
"\n"
"Server and sign-in:\n"
"  --url URL               EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx\n"
"                          (eas: https://mail.example.com/Microsoft-Server-ActiveSync)\n"
"  --user NAME             user name (user@example.com or DOMAIN\\user)\n"
"  --mailbox ADDRESS       SMTP address of the mailbox (default: --user if it has @)\n"
"  --password-file FILE    read the password from the first line of FILE (mode 0600)\n"
"  --password-command CMD  run CMD with sh -c and use the first line it prints\n"
"                          (otherwise $EXCHANGEFS_PASSWORD, otherwise a prompt)\n"
"  --protocol ews|eas      protocol: ews (Exchange Web Services, the\n"
"                          default) or eas (Exchange ActiveSync)\n"
"  --ca-file FILE          also trust the CA certificates in FILE (PEM)\n"
"  --insecure              do not verify TLS certificates (test servers only!)\n"
"  --timeout SECONDS       network timeout for one request (default 60)\n"
"\n"
"Cache and sync:\n"
"  --cache-dir DIR         default $XDG_CACHE_HOME/exchangefs/<user>@<host>\n"
"  --cache-size SIZE       limit of cached message bodies, e.g. 500M, 4G, 0 = none\n"
"                          (default 4G)\n"
"  --sync-interval SECONDS re-sync every SECONDS (default 60)\n"
"  --no-notify             do not subscribe to server notifications (new mail\n"
"                          then shows at the next re-sync, with no inotify event)\n"
"  --delete-in-trash MODE  what rm inside Deleted Items does: hard (gone for\n"
"                          good, default) or soft (recoverable on the server)\n"
"\n"
"Mount:\n"
"  -f, --foreground        stay in the foreground (progress and log on stderr)\n"
"  -d, --debug[=CATS]      debug log (implies -f); CATS: all (default), main,\n"
"                          http, xml, sync, fs, cache, comma-separated\n"
"  -o OPTIONS              FUSE mount options, e.g. -o allow_other; -o ro refuses\n"
"                          every change with EROFS (server changes still show)\n"
"  --open-requests         have every open go through the daemon instead of\n"
"                          the kernel's zero-message opens (slower; debugging)\n"
"  -h, --help              this text\n"
"  -V, --version           version\n"
"\n"
"Unmount with: fusermount3 -u MOUNTPOINT (or Ctrl-C / SIGTERM with -f).\n"
"Status: cat MOUNTPOINT/.exchangefs/status\n", prog);
}

enum { OPT_URL = 256, OPT_USER, OPT_MAILBOX, OPT_PWFILE, OPT_PWCMD,
       OPT_PROTOCOL, OPT_CACHEDIR, OPT_CACHESIZE, OPT_CAFILE, OPT_INSECURE,
       OPT_INTERVAL, OPT_TIMEOUT, OPT_PASSWORD, OPT_OPENREQ, OPT_TRASHDEL,
       OPT_NONOTIFY };

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	int64_t mult = 1;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': mult = 1LL << 10; end++; break;
	case 'M': mult = 1LL << 20; end++; break;
	case 'G': mult = 1LL << 30; end++; break;
	case 'T': mult = 1LL << 40; end++; break;
	default: return -1;
	}
	if (toupper((unsigned char)*end) == 'B' || toupper((unsigned char)*end) == 'I')
		end++;
	if (*end)
		return -1;
	*out = (int64_t)(v * (double)mult);
	return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

/* Make a relative path absolute against the current directory. */
static int absolutize(char **path)
{
	if (!*path || **path == '/')
		return 0;
	char *cwd = getcwd(NULL, 0);
	if (!cwd) {
		fprintf(stderr, "exchangefs: cannot resolve %s: %s\n", *path,
			strerror(errno));
		return -1;
	}
	char *abs = xasprintf("%s/%s", cwd, *path);
	free(cwd);
	free(*path);
	*path = abs;
	return 0;
}

int options_parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, OPT_URL },
		{ "user", required_argument, NULL, OPT_USER },
		{ "mailbox", required_argument, NULL, OPT_MAILBOX },
		{ "password-file", required_argument, NULL, OPT_PWFILE },
		{ "password-command", required_argument, NULL, OPT_PWCMD },
		{ "password", required_argument, NULL, OPT_PASSWORD },
		{ "protocol", required_argument, NULL, OPT_PROTOCOL },
		{ "cache-dir", required_argument, NULL, OPT_CACHEDIR },
		{ "cache-size", required_argument, NULL, OPT_CACHESIZE },
		{ "ca-file", required_argument, NULL, OPT_CAFILE },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "sync-interval", required_argument, NULL, OPT_INTERVAL },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "open-requests", no_argument, NULL, OPT_OPENREQ },
		{ "delete-in-trash", required_argument, NULL, OPT_TRASHDEL },
		{ "no-notify", no_argument, NULL, OPT_NONOTIFY },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", optional_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->sync_interval = 60;
	o->timeout = 60;
	o->cache_size = 4LL << 30;
	o->protocol = xstrdup("ews");
	struct buf fopts;
	buf_init(&fopts, 0);
	int c;
	unsigned u;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fdho:V", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_URL: set_str(&o->url, optarg); break;
		case OPT_USER: set_str(&o->user, optarg); break;
		case OPT_MAILBOX: set_str(&o->mailbox, optarg); break;
		case OPT_PWFILE: set_str(&o->password_file, optarg); break;
		case OPT_PWCMD: set_str(&o->password_command, optarg); break;
		case OPT_PASSWORD:
			fprintf(stderr, "exchangefs: a password on the command line "
				"is visible to every user (ps); use --password-file, "
				"--password-command or EXCHANGEFS_PASSWORD\n");
			goto fail;
		case OPT_PROTOCOL: set_str(&o->protocol, optarg); break;
		case OPT_CACHEDIR: set_str(&o->cache_dir, optarg); break;
		case OPT_CAFILE: set_str(&o->ca_file, optarg); break;
		case OPT_INSECURE: o->insecure = true; break;
		case OPT_OPENREQ: o->open_requests = true; break;
		case OPT_NONOTIFY: o->no_notify = true; break;
		case OPT_TRASHDEL:
			if (strcmp(optarg, "hard") && strcmp(optarg, "soft")) {
				fprintf(stderr, "exchangefs: --delete-in-trash: '%s' "
					"is not hard or soft\n", optarg);
				goto fail;
			}
			o->soft_delete_in_trash = !strcmp(optarg, "soft");
			break;
		case OPT_CACHESIZE:
			if (parse_size(optarg, &o->cache_size)) {
				fprintf(stderr, "exchangefs: --cache-size: '%s' is not "
					"a size (e.g. 500M, 4G, 0)\n", optarg);
				goto fail;
			}
			break;
		case OPT_INTERVAL:
			if (parse_uint(optarg, 86400, &u) || u == 0) {
				fprintf(stderr, "exchangefs: --sync-interval: '%s' is "
					"not a number of seconds from 1 to 86400\n",
					optarg);
				goto fail;
			}
			o->sync_interval = u;
			break;
		case OPT_TIMEOUT:
			if (parse_uint(optarg, 3600, &u) || u == 0) {
				fprintf(stderr, "exchangefs: --timeout: '%s' is not "
					"a number of seconds from 1 to 3600\n", optarg);
				goto fail;
			}
			o->timeout = u;
			break;
		case 'f': o->foreground = true; break;
		case 'd':
			if (log_parse_debug(optarg ? optarg : "all", &o->debug) ||
			    !o->debug) {
				fprintf(stderr, "exchangefs: --debug: unknown category "
					"in '%s'\n", optarg);
				goto fail;
			}
			o->foreground = true;
			break;
		case 'o':
			add_fuse_options(&fopts, optarg, &o->read_only);
			break;
		case 'h': o->show_help = true; break;
		case 'V': o->show_version = true; break;
		case ':':
			fprintf(stderr, "exchangefs: option %s needs a value\n",
				argv[optind - 1]);
			goto fail;
		default:
			fprintf(stderr, "exchangefs: unknown option %s (see --help)\n",
				argv[optind - 1]);
			goto fail;
		}
	}
	o->fuse_opts = fopts.data;
	if (o->show_help || o->show_version)
		return 0;
	if (optind + 1 != argc) {
		fprintf(stderr, "exchangefs: %s (see --help)\n", optind >= argc
			? "no mount point given" : "more than one mount point given");
		return -1;
	}
	o->mountpoint = xstrdup(argv[optind]);
	if (!o->url) {
		fprintf(stderr, "exchangefs: --url is required (the EWS endpoint, "
			"e.g. https://mail.example.com/EWS/Exchange.asmx)\n");
		return -1;
	}
	if (strncmp(o->url, "https://", 8) && strncmp(o->url, "http://", 7)) {
		fprintf(stderr, "exchangefs: --url '%s' is not an http(s) URL\n",
			o->url);
		return -1;
	}
	if (!o->user) {
		fprintf(stderr, "exchangefs: --user is required\n");
		return -1;
	}
	if (strcmp(o->protocol, "ews") && strcmp(o->protocol, "eas")) {
		fprintf(stderr, "exchangefs: --protocol '%s' is not supported "
			"(supported: ews, eas)\n", o->protocol);
		return -1;
	}
	if (!o->mailbox && strchr(o->user, '@'))
		o->mailbox = xstrdup(o->user);
	/* the daemon changes to / when it goes to the background */
	if (absolutize(&o->cache_dir) || absolutize(&o->ca_file) ||
	    absolutize(&o->mountpoint))
		return -1;
	return 0;
fail:
	buf_free(&fopts);
	return -1;
}

void options_free(struct options *o)
{
	free(o->url);
	free(o->user);
	free(o->mailbox);
	free(o->password_file);
	free(o->password_command);
	free(o->protocol);
	free(o->cache_dir);
	free(o->ca_file);
	free(o->mountpoint);
	free(o->fuse_opts);
	memset(o, 0, sizeof(*o));
}

static char *first_line(char *s)
{
	s[strcspn(s, "\r\n")] = 0;
	return s;
}

static char *password_from_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "exchangefs: cannot read password file %s: %s\n",
			path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "exchangefs: warning: password file %s can be "
			"read by other users (chmod 600 it)\n", path);
	char *line = xcalloc(1, MAX_PASSWORD);
	if (!fgets(line, MAX_PASSWORD, f) || !*first_line(line)) {
		fprintf(stderr, "exchangefs: password file %s is empty\n", path);
		fclose(f);
		free(line);
		return NULL;
	}
	fclose(f);
	return line;
}

static char *password_from_command(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	if (!p) {
		fprintf(stderr, "exchangefs: cannot run --password-command: %s\n",
			strerror(errno));
		return NULL;
	}
	char *line = xcalloc(1, MAX_PASSWORD);
	bool got = fgets(line, MAX_PASSWORD, p) != NULL;
	/* drain the rest so the command does not die of SIGPIPE */
	char sink[256];
	while (fgets(sink, sizeof(sink), p))
		;
	int status = pclose(p);
	if (!got || !*first_line(line) || status == -1 || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "exchangefs: --password-command failed or printed "
			"nothing (exit status %d)\n",
			status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		free(line);
		return NULL;
	}
	return line;
}

static char *password_prompt(const char *user)
{
	if (!isatty(STDIN_FILENO)) {
		fprintf(stderr, "exchangefs: no password: use --password-file, "
			"--password-command or EXCHANGEFS_PASSWORD\n");
		return NULL;
	}
	fprintf(stderr, "Password for %s: ", user);
	struct termios old, quiet;
	bool echo_off = tcgetattr(STDIN_FILENO, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	char *line = xcalloc(1, MAX_PASSWORD);
	bool got = fgets(line, MAX_PASSWORD, stdin) != NULL;
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	if (!got || !*first_line(line)) {
		free(line);
		fprintf(stderr, "exchangefs: no password given\n");
		return NULL;
	}
	return line;
}

char *options_password(const struct options *o)
{
	if (o->password_file)
		return password_from_file(o->password_file);
	if (o->password_command)
		return password_from_command(o->password_command);
	const char *env = getenv("EXCHANGEFS_PASSWORD");
	if (env && *env)
		return xstrdup(env);
	return password_prompt(o->user);
}

const char *options_host(const struct options *o, size_t *len)
{
	const char *h = strstr(o->url, "://");
	h = h ? h + 3 : o->url;
	*len = strcspn(h, "/?#");
	return h;
}

char *options_cache_dir(const struct options *o)
{
	if (o->cache_dir)
		return xstrdup(o->cache_dir);
	/* account = user@host, with characters a path cannot hold mapped */
	size_t hl;
	const char *h = options_host(o, &hl);
	char *acct = xasprintf("%s@%.*s", o->user, (int)hl, h);
	for (char *p = acct; *p; p++)
		if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '_';
	const char *xdg = getenv("XDG_CACHE_HOME");
	char *dir;
	if (xdg && *xdg == '/') {
		dir = xasprintf("%s/exchangefs/%s", xdg, acct);
	} else {
		const char *home = getenv("HOME");
		if (!home || !*home) {
			struct passwd *pw = getpwuid(getuid());
			home = pw ? pw->pw_dir : "/tmp";
		}
		dir = xasprintf("%s/.cache/exchangefs/%s", home, acct);
	}
	free(acct);
	return dir;
}

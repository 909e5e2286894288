/*
 * options.c - the command line of exchangefs: parsing (with the accounts
 * file of config.c underneath: its keys are the long options), the help
 * text, where the password comes from (never the command line), and the
 * default cache directory.
 */
#include "fs.h"
#include "cache/prefetch.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PASSWORD 4096

/* Options of an fstab line that are for mount(8), not for the kernel or
 * libfuse; mount(8) and mount.fuse3 hand some of them on to us. */
static bool fstab_only(const char *opt)
{
	static const char *const words[] = { "auto", "noauto", "user", "users",
		"nouser", "owner", "group", "_netdev", "nofail", "defaults",
		NULL };
	for (const char *const *w = words; *w; w++)
		if (!strcmp(opt, *w))
			return true;
	return !strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8) ||
	       !strncmp(opt, "user=", 5);
}

/* Append the comma-separated FUSE options of one -o to b, except "ro" and
 * "rw": the mount stays read-write underneath, because server changes are
 * reflected through it (fs/notify.c), and a read-only mount refuses the
 * user's changes itself (EROFS).  fstab-only options are dropped. */
static void add_fuse_options(struct buf *b, const char *list, bool *ro)
{
	char *copy = xstrdup(list), *save = NULL;
	for (char *opt = strtok_r(copy, ",", &save); opt;
	     opt = strtok_r(NULL, ",", &save)) {
		if (!strcmp(opt, "ro") || !strcmp(opt, "rw")) {
			*ro = opt[1] == 'o';
			continue;
		}
		if (fstab_only(opt))
			continue;
		if (b->len)
			buf_puts(b, ",");
		buf_puts(b, opt);
	}
	free(copy);
}

void options_usage(const char *prog)
{
	printf(
"usage: %s [options] [ADDRESS] MOUNTPOINT\n"
"       %s [options] ACCOUNT [MOUNTPOINT]    an account of the accounts file\n"
"       %s status MOUNTPOINT                 what a mounted daemon is doing\n"
"       %s login [--browser] [options] ADDRESS   (OAuth2 sign-in)\n"
"       %s autodiscover [options] ADDRESS        (show the server's URLs)\n"
"       %s lookup [options] [ACCOUNT|ADDRESS] NAME  (find people's addresses)\n"
"\n"
"Mount a Microsoft Exchange mailbox as a directory tree: folders are\n"
"directories, messages are .eml files (the server's exact MIME).\n"
"\n"
"Accounts file (every long option is also a key there; see exchangefs(1)):\n"
"  --config FILE           default $XDG_CONFIG_HOME/exchangefs/config\n"
"                          (~/.config/exchangefs/config)\n"
"  --account NAME          use the [NAME] section; the command line overrides it\n"
"\n"
"Server and sign-in:\n"
"  ADDRESS, --email ADDRESS  e-mail address: without --url, Autodiscover finds\n"
"                          the server; also the default --user and --mailbox\n"
"  --url URL               EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx\n"
"                          (eas: https://mail.example.com/Microsoft-Server-ActiveSync)\n"
"  --auth METHOD           basic, ntlm, kerberos (ticket cache, see kinit) or\n"
"                          oauth2 (tokens of exchangefs login); default: oauth2\n"
"                          if signed in with login, else Basic or NTLM\n"
"  --oauth-authority URL   OAuth2 authority (default https://login.microsoftonline.com)\n"
"  --oauth-tenant TENANT   tenant (default organizations)\n"
"  --oauth-client-id ID    application (client) id (default: Microsoft Office)\n"
"  --oauth-scope SCOPES    scopes (default: EWS.AccessAsUser.All offline_access)\n"
"  --autodiscover-trust DOMAINS  hosts under these domains may get the\n"
"                          credentials when an http redirect or DNS SRV record\n"
"                          names them (default: only the address's domain)\n"
"  --user NAME             user name (user@example.com or DOMAIN\\user)\n"
"  --mailbox ADDRESS       SMTP address of the mailbox (default: --user if it has @)\n"
"  --password-file FILE    read the password from the first line of FILE (mode 0600)\n"
"  --password-command CMD  run CMD with sh -c and use the first line it prints\n"
"                          (otherwise $EXCHANGEFS_PASSWORD, otherwise a prompt)\n"
"  --protocol ews|eas      protocol: ews (Exchange Web Services, the\n"
"                          default) or eas (Exchange ActiveSync)\n"
"  --ca-file FILE          also trust the CA certificates in FILE (PEM)\n"
"  --insecure              do not verify TLS certificates (test servers only!)\n"
"  --timeout SECONDS       network timeout for one request, and the longest\n"
"                          a reader waits behind a server's back-off\n"
"                          (then ETIMEDOUT) (default 60)\n"
"\n"
"Cache and sync:\n"
"  --cache-dir DIR         default $XDG_CACHE_HOME/exchangefs/<user>@<host>\n"
"  --cache-size SIZE       limit of cached message bodies, e.g. 500M, 4G, 0 = none\n"
"                          (default 4G)\n"
"  --sync-interval SECONDS re-sync every SECONDS (default 60)\n"
"  --prefetch WHAT         download bodies in the background: all, none, or\n"
"                          Nd (received in the last N days); remembered for\n"
"                          the account (default 30d)\n"
"  --no-notify             do not subscribe to server notifications (new mail\n"
"                          then shows at the next re-sync, with no inotify event)\n"
"  --pim                   show calendars (.ics) and contacts (.vcf) too, for\n"
"                          khal and khard (read-only, EWS, first step)\n"
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
"Unmount with: fusermount3 -u MOUNTPOINT or exchangefs unmount ACCOUNT|MOUNTPOINT\n"
"(or Ctrl-C / SIGTERM with -f).\n"
"Status: exchangefs status MOUNTPOINT (or cat MOUNTPOINT/.exchangefs/status)\n",
	prog, prog, prog, prog, prog, prog);
}

enum { OPT_URL = 256, OPT_USER, OPT_MAILBOX, OPT_PWFILE, OPT_PWCMD,
       OPT_PROTOCOL, OPT_CACHEDIR, OPT_CACHESIZE, OPT_CAFILE, OPT_INSECURE,
       OPT_INTERVAL, OPT_TIMEOUT, OPT_PASSWORD, OPT_OPENREQ, OPT_TRASHDEL,
       OPT_NONOTIFY, OPT_CONFIG, OPT_ACCOUNT, OPT_EMAIL,
       OPT_AUTH, OPT_OAUTH_AUTHORITY, OPT_OAUTH_TENANT, OPT_OAUTH_CLIENT,
       OPT_OAUTH_SCOPE, OPT_BROWSER, OPT_AD_TRUST, OPT_PREFETCH, OPT_PIM };

/* The long options.  Each one is also a key of the accounts file (same
 * name, '_' or '-'), except the ones in not_in_file[]. */
static const struct option longopts[] = {
	{ "url", required_argument, NULL, OPT_URL },
	{ "user", required_argument, NULL, OPT_USER },
	{ "email", required_argument, NULL, OPT_EMAIL },
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
	{ "pim", no_argument, NULL, OPT_PIM },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "account", required_argument, NULL, OPT_ACCOUNT },
	{ "auth", required_argument, NULL, OPT_AUTH },
	{ "oauth-authority", required_argument, NULL, OPT_OAUTH_AUTHORITY },
	{ "oauth-tenant", required_argument, NULL, OPT_OAUTH_TENANT },
	{ "oauth-client-id", required_argument, NULL, OPT_OAUTH_CLIENT },
	{ "oauth-scope", required_argument, NULL, OPT_OAUTH_SCOPE },
	{ "browser", no_argument, NULL, OPT_BROWSER },
	{ "autodiscover-trust", required_argument, NULL, OPT_AD_TRUST },
	{ "prefetch", required_argument, NULL, OPT_PREFETCH },
	{ "foreground", no_argument, NULL, 'f' },
	{ "debug", optional_argument, NULL, 'd' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};
/* -d takes its categories attached (-dsync, and -d=sync,http as --help
 * writes --debug[=CATS]); without "::" getopt read -d=sync,http as a
 * cluster of short options, and its h showed the help */
#define SHORTOPTS ":fd::ho:V"

/* Where the option being applied comes from, for messages: NULL for the
 * command line, "FILE:LINE" for the accounts file. */
static const char *opt_where;

static void __attribute__((format(printf, 1, 2))) opt_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("exchangefs: ", stderr);
	if (opt_where)
		fprintf(stderr, "%s: ", opt_where);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

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

/* Apply one option (from the command line or the accounts file). */
static int apply_option(struct options *o, int c, const char *arg,
			struct buf *fopts)
{
	unsigned u;
	switch (c) {
	case OPT_URL: set_str(&o->url, arg); break;
	case OPT_USER: set_str(&o->user, arg); break;
	case OPT_EMAIL: set_str(&o->address, arg); break;
	case OPT_MAILBOX: set_str(&o->mailbox, arg); break;
	case OPT_PWFILE: set_str(&o->password_file, arg); break;
	case OPT_PWCMD: set_str(&o->password_command, arg); break;
	case OPT_PASSWORD:
		opt_err("a password on the command line is visible to every "
			"user (ps); use --password-file, --password-command or "
			"EXCHANGEFS_PASSWORD");
		return -1;
	case OPT_PROTOCOL: set_str(&o->protocol, arg); break;
	case OPT_CACHEDIR: set_str(&o->cache_dir, arg); break;
	case OPT_CAFILE: set_str(&o->ca_file, arg); break;
	case OPT_CONFIG: set_str(&o->config, arg); break;
	case OPT_ACCOUNT: set_str(&o->account, arg); break;
	case OPT_INSECURE: o->insecure = true; break;
	case OPT_OPENREQ: o->open_requests = true; break;
	case OPT_NONOTIFY: o->no_notify = true; break;
	case OPT_PIM: o->pim = true; break;
	case OPT_AUTH:
		if (strcmp(arg, "basic") && strcmp(arg, "ntlm") &&
		    strcmp(arg, "kerberos") && strcmp(arg, "oauth2")) {
			opt_err("--auth: '%s' is not basic, ntlm, kerberos or "
				"oauth2", arg);
			return -1;
		}
		set_str(&o->auth, arg);
		break;
	case OPT_OAUTH_AUTHORITY: set_str(&o->oauth_authority, arg); break;
	case OPT_OAUTH_TENANT: set_str(&o->oauth_tenant, arg); break;
	case OPT_OAUTH_CLIENT: set_str(&o->oauth_client_id, arg); break;
	case OPT_OAUTH_SCOPE: set_str(&o->oauth_scope, arg); break;
	case OPT_BROWSER: o->browser = true; break;
	case OPT_AD_TRUST: set_str(&o->autodiscover_trust, arg); break;
	case OPT_PREFETCH:
		if (prefetch_parse(arg, &o->prefetch_days)) {
			opt_err("--prefetch: '%s' is not all, none or a number "
				"of days (e.g. 90d)", arg);
			return -1;
		}
		set_str(&o->prefetch, arg);
		break;
	case OPT_TRASHDEL:
		if (strcmp(arg, "hard") && strcmp(arg, "soft")) {
			opt_err("--delete-in-trash: '%s' is not hard or soft", arg);
			return -1;
		}
		o->soft_delete_in_trash = !strcmp(arg, "soft");
		break;
	case OPT_CACHESIZE:
		if (parse_size(arg, &o->cache_size)) {
			opt_err("--cache-size: '%s' is not a size (e.g. 500M, "
				"4G, 0)", arg);
			return -1;
		}
		break;
	case OPT_INTERVAL:
		if (parse_uint(arg, 86400, &u) || u == 0) {
			opt_err("--sync-interval: '%s' is not a number of "
				"seconds from 1 to 86400", arg);
			return -1;
		}
		o->sync_interval = u;
		break;
	case OPT_TIMEOUT:
		if (parse_uint(arg, 3600, &u) || u == 0) {
			opt_err("--timeout: '%s' is not a number of seconds "
				"from 1 to 3600", arg);
			return -1;
		}
		o->timeout = u;
		break;
	case 'f': o->foreground = true; break;
	case 'd':
		if (arg && *arg == '=')
			arg++;   /* -d=CATS */
		if (arg && !strcmp(arg, "f"))
			arg = NULL;   /* -df: -d implies -f anyway */
		if (log_parse_debug(arg ? arg : "all", &o->debug) || !o->debug) {
			opt_err("--debug: unknown category in '%s'", arg);
			return -1;
		}
		o->foreground = true;
		break;
	case 'o':
		add_fuse_options(fopts, arg, &o->read_only);
		break;
	case 'h': o->show_help = true; break;
	case 'V': o->show_version = true; break;
	}
	return 0;
}

/* Keys of the accounts file that are not options, and options that are
 * not keys. */
static const char *const file_only[] = { "mountpoint", "password", "options",
					 NULL };
static const char *const not_in_file[] = { "config", "account", "help",
					   "version", NULL };

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return true;
	return false;
}

/* The option a key stands for, or NULL. */
static const struct option *key_option(const char *key)
{
	if (in_list(not_in_file, key))
		return NULL;
	for (const struct option *l = longopts; l->name; l++)
		if (!strcmp(l->name, key))
			return l;
	return NULL;
}

static int parse_bool(const char *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };
	return in_list(yes, v) ? 1 : in_list(no, v) ? 0 : -1;
}

/* Apply one "key = value" of the accounts file. */
static int apply_entry(struct options *o, const struct cfg_entry *e,
		       struct buf *fopts)
{
	char *value = strcmp(e->key, "password") &&
		      strcmp(e->key, "password-command")
		? config_expand_home(e->value) : xstrdup(e->value);
	int rc = 0;
	if (!strcmp(e->key, "mountpoint")) {
		set_str(&o->mountpoint, value);
	} else if (!strcmp(e->key, "password")) {
		set_str(&o->password, value);
	} else if (!strcmp(e->key, "options")) {
		add_fuse_options(fopts, value, &o->read_only);
	} else {
		const struct option *l = key_option(e->key);
		if (l->has_arg == no_argument) {
			int b = parse_bool(value);
			if (b < 0) {
				opt_err("%s: '%s' is not yes or no", e->key, value);
				rc = -1;
			} else if (b) {
				rc = apply_option(o, l->val, NULL, fopts);
			}
		} else if (l->has_arg == required_argument && !*value) {
			opt_err("%s needs a value", e->key);
			rc = -1;
		} else {
			rc = apply_option(o, l->val, *value ? value : NULL, fopts);
		}
	}
	explicit_bzero(value, strlen(value));
	free(value);
	return rc;
}

/* Check every key of the file, then apply the part before the first
 * section and the account's section. */
static int apply_config(struct options *o, const struct config *cfg,
			struct buf *fopts)
{
	char where[4200];
	int rc = 0;
	for (size_t i = 0; i < cfg->n && !rc; i++) {
		const struct cfg_entry *e = &cfg->e[i];
		snprintf(where, sizeof(where), "%s:%u", cfg->path, e->line);
		opt_where = where;
		if (e->key && !in_list(file_only, e->key) && !key_option(e->key)) {
			opt_err("unknown key '%s' (the keys are the long "
				"options; see man exchangefs)", e->key);
			rc = -1;
		}
	}
	opt_where = NULL;
	if (rc)
		return -1;
	if (cfg->has_password && (cfg->mode & 077)) {
		fprintf(stderr, "exchangefs: %s holds a password and other "
			"users can read it (chmod 600 %s)\n", cfg->path,
			cfg->path);
		return -1;
	}
	for (size_t i = 0; i < cfg->n && !rc; i++) {
		const struct cfg_entry *e = &cfg->e[i];
		if (!e->key || (e->section && (!o->account ||
					       strcmp(e->section, o->account))))
			continue;
		snprintf(where, sizeof(where), "%s:%u", cfg->path, e->line);
		opt_where = where;
		rc = apply_entry(o, e, fopts);
	}
	opt_where = NULL;
	return rc;
}

static bool section_sets(const struct config *cfg, const char *section,
			 const char *key)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (cfg->e[i].key && cfg->e[i].section &&
		    !strcmp(cfg->e[i].section, section) &&
		    !strcmp(cfg->e[i].key, key))
			return true;
	return false;
}

/* Which account: --account, or the first of two arguments when it names
 * a section (otherwise, if it has an @, it is an e-mail address), or a
 * lone argument naming a section that sets its mountpoint (then *npos
 * becomes 0: no mount point on the command line). */
static int choose_account(struct options *o, const struct config *cfg,
			  bool have_cfg, int *npos, char **pos)
{
	if (*npos == 1 && !o->account && have_cfg && !o->lookup &&
	    config_has_section(cfg, pos[0]) &&
	    section_sets(cfg, pos[0], "mountpoint")) {
		set_str(&o->account, pos[0]);
		*npos = 0;
	} else if (*npos == 1 && !o->account && have_cfg && !o->lookup &&
		   config_has_section(cfg, pos[0]) && access(pos[0], F_OK)) {
		fprintf(stderr, "exchangefs: account [%s] of %s sets no "
			"mountpoint: give one (exchangefs %s DIR)\n", pos[0],
			o->config, pos[0]);
		return -1;
	}
	if (*npos == 2) {
		if (o->account) {
			fprintf(stderr, "exchangefs: give the account with "
				"--account or before the mount point, not both\n");
			return -1;
		}
		if (have_cfg && config_has_section(cfg, pos[0]))
			set_str(&o->account, pos[0]);
		else if (strchr(pos[0], '@'))
			set_str(&o->address, pos[0]);
		else
			set_str(&o->account, pos[0]);
	}
	if (!o->account)
		return 0;
	if (!have_cfg) {
		fprintf(stderr, "exchangefs: no account '%s': there is no "
			"accounts file %s\n", o->account, o->config);
		return -1;
	}
	if (!config_has_section(cfg, o->account)) {
		char *names = config_sections(cfg);
		fprintf(stderr, "exchangefs: no account [%s] in %s (accounts: "
			"%s)\n", o->account, o->config, names);
		free(names);
		return -1;
	}
	return 0;
}

int options_parse(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->sync_interval = 60;
	o->timeout = 60;
	o->cache_size = 4LL << 30;
	o->protocol = xstrdup("ews");
	struct buf fopts;
	buf_init(&fopts, 0);
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	int c;
	opterr = 0;
	/* "login ADDRESS" and "autodiscover ADDRESS" take the options too */
	int first = 0;
	if (argc > 1 && !strcmp(argv[1], "login")) {
		o->login = true;
		first = 1;
	} else if (argc > 1 && !strcmp(argv[1], "autodiscover")) {
		o->discover = true;
		first = 1;
	} else if (argc > 1 && !strcmp(argv[1], "lookup")) {
		o->lookup = true;   /* [ACCOUNT|ADDRESS] NAME */
		first = 1;
	}
	argc -= first;
	argv += first;
	/* first pass: which accounts file and account (errors: second pass) */
	optind = 0;
	while ((c = getopt_long(argc, argv, SHORTOPTS, longopts, NULL)) != -1)
		if (c == OPT_CONFIG || c == OPT_ACCOUNT || c == 'h' || c == 'V')
			apply_option(o, c, optarg, &fopts);
	if (o->show_help || o->show_version)
		return 0;
	int npos = argc - optind;
	char **pos = argv + optind;
	if (npos > 2) {
		fprintf(stderr, o->lookup ? "exchangefs: lookup takes "
			"[ACCOUNT|ADDRESS] NAME (quote a name with spaces)\n"
			: "exchangefs: more than one mount point given "
			"(see --help)\n");
		goto fail;
	}
	bool must_exist = o->config != NULL;
	char *path = o->config ? config_expand_home(o->config)
			       : config_default_path();
	free(o->config);
	o->config = path;
	int lr = config_load(o->config, must_exist, &cfg);
	if (lr < 0 || choose_account(o, &cfg, lr == 0, &npos, pos))
		goto fail;
	if (lr == 0 && apply_config(o, &cfg, &fopts))
		goto fail;
	/* second pass: the command line overrides the file */
	optind = 0;
	while ((c = getopt_long(argc, argv, SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case ':':
			fprintf(stderr, "exchangefs: option %s needs a value\n",
				argv[optind - 1]);
			goto fail;
		case '?':
			fprintf(stderr, "exchangefs: unknown option %s (see --help)\n",
				argv[optind - 1]);
			goto fail;
		default:
			if (apply_option(o, c, optarg, &fopts))
				goto fail;
		}
	}
	config_free(&cfg);
	o->fuse_opts = fopts.data;
	if (o->login || o->discover) {   /* login|autodiscover ADDRESS */
		if (npos != 1 || !strchr(pos[0], '@')) {
			fprintf(stderr, "exchangefs: %s needs one e-mail "
				"address (see --help)\n", argv[0]);
			return -1;
		}
		set_str(&o->address, pos[0]);
		if (!o->user)
			o->user = xstrdup(o->address);
		return absolutize(&o->ca_file);
	}
	if (npos >= 1)
		set_str(o->lookup ? &o->query : &o->mountpoint, pos[npos - 1]);
	if (o->lookup && (!o->query || !*o->query)) {
		fprintf(stderr, "exchangefs: lookup needs a name to look up "
			"(see --help)\n");
		return -1;
	}
	if (!o->mountpoint && !o->lookup) {
		fprintf(stderr, "exchangefs: no mount point given (see --help)\n");
		return -1;
	}
	if (!o->address && o->mailbox && strchr(o->mailbox, '@'))
		o->address = xstrdup(o->mailbox);
	if (!o->address && o->user && strchr(o->user, '@'))
		o->address = xstrdup(o->user);
	if (!o->user && o->address)
		o->user = xstrdup(o->address);
	struct stat mst;
	if (!o->url && !o->address && !o->account && !o->lookup &&
	    !o->user && npos == 1 && !strchr(o->mountpoint, '/') &&
	    stat(o->mountpoint, &mst) && errno == ENOENT) {
		/* "exchangefs work": an account meant, but the accounts file
		 * (missing, emptied, damaged) does not have it */
		fprintf(stderr, "exchangefs: no account [%s] in %s%s, and no "
			"--url (see --help)\n", o->mountpoint, o->config,
			lr > 0 ? " (there is no such file)" : "");
		return -1;
	}
	if (!o->url && !o->address) {
		fprintf(stderr, "exchangefs: --url is required (the EWS endpoint, "
			"e.g. https://mail.example.com/EWS/Exchange.asmx), or an "
			"e-mail address to find it with Autodiscover\n");
		return -1;
	}
	if (o->url && strncmp(o->url, "https://", 8) &&
	    strncmp(o->url, "http://", 7)) {
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
	if (!o->mailbox && o->address)
		o->mailbox = xstrdup(o->address);
	if (!o->mailbox && strchr(o->user, '@'))
		o->mailbox = xstrdup(o->user);
	/* the daemon changes to / when it goes to the background */
	if (absolutize(&o->cache_dir) || absolutize(&o->ca_file) ||
	    absolutize(&o->mountpoint) || absolutize(&o->password_file))
		return -1;
	return 0;
fail:
	config_free(&cfg);
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
	free(o->query);
	free(o->fuse_opts);
	free(o->account);
	free(o->config);
	if (o->password) {
		explicit_bzero(o->password, strlen(o->password));
		free(o->password);
	}
	free(o->auth);
	free(o->address);
	free(o->oauth_authority);
	free(o->oauth_tenant);
	free(o->oauth_client_id);
	free(o->oauth_scope);
	free(o->autodiscover_trust);
	free(o->prefetch);
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
	if (o->password)
		return xstrdup(o->password);
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
	/* account = user@host (and the protocol when not EWS: ids and sync
	 * states of two protocols cannot share a cache), with characters a
	 * path cannot hold mapped */
	size_t hl;
	const char *h = options_host(o, &hl);
	bool ews = !o->protocol || !strcmp(o->protocol, "ews");
	char *acct = xasprintf("%s@%.*s%s%s", o->user, (int)hl, h,
			       ews ? "" : ".", ews ? "" : o->protocol);
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

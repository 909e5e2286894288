/*
 * lookup.c - `exchangefs lookup [options] [ACCOUNT|ADDRESS] NAME`: sign in
 * as a mount does (same options, accounts file, password sources) and
 * print the people of the server's address book whose name or address
 * matches NAME (ActiveSync ResolveRecipients, EWS ResolveNames), one
 * "Display Name <address>" per line, what Outlook's "Check Names" does.
 *
 * Exit status: 0 someone matched, 1 no one did (said on stderr), 2 usage
 * error, 3 the server could not be asked (sign-in, network, refusal).
 */
#include "fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOOKUP_MAX 50     /* matches asked for */
#define LOOKUP_NAME_MAX 1024  /* what both backends take */
#define EXIT_NO_MATCH 1
#define EXIT_FAILED 3

/* Print s with control characters (a terminal's escape sequences) shown
 * as '?'. */
static void put_clean(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
}

/* A display name as RFC 5322 wants it before <address>: quoted when it
 * holds a special character ("Doe, Jane"). */
static void put_name(const char *name)
{
	if (!strpbrk(name, ",;:<>@\"()[]\\")) {
		put_clean(name);
		return;
	}
	putchar('"');
	for (const char *p = name; *p; p++) {
		char one[2] = { *p, 0 };
		if (*p == '"' || *p == '\\')
			putchar('\\');
		put_clean(one);
	}
	putchar('"');
}

static void print_person(const struct be_person *p)
{
	if (p->name && p->address && strcmp(p->name, p->address)) {
		put_name(p->name);
		fputs(" <", stdout);
		put_clean(p->address);
		putchar('>');
	} else if (p->address) {
		put_clean(p->address);
	} else {
		put_name(p->name);
	}
	putchar('\n');
}

/* The account's cache directory when a mount made it (an ActiveSync
 * device id and policy key live there: the lookup is the same device);
 * NULL otherwise (nothing is created for a lookup). */
static char *existing_cache_dir(const struct options *o)
{
	char *dir = options_cache_dir(o);
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		free(dir);
		return NULL;
	}
	return dir;
}

int lookup_command(struct options *o)
{
	if (strlen(o->query) > LOOKUP_NAME_MAX) {
		fprintf(stderr, "exchangefs: a name to look up has at most %d "
			"bytes\n", LOOKUP_NAME_MAX);
		return 2;
	}
	const struct backend_ops *ops = backend_find(o->protocol);
	if (!ops || !ops->resolve_names) {
		fprintf(stderr, "exchangefs: lookup is not available over "
			"--protocol %s\n", o->protocol);
		return EXIT_FAILED;
	}
	struct signin si;
	if (signin_prepare(o, &si)) {
		signin_free(&si);
		return EXIT_FAILED;
	}
	if (o->insecure)
		fprintf(stderr, "exchangefs: warning: --insecure: TLS certificates "
			"are NOT verified\n");
	char *state_dir = existing_cache_dir(o);
	struct be_config cfg = {
		.url = o->url, .user = o->user, .password = si.password,
		.auth = si.auth, .oauth2 = si.oauth2,
		.mailbox = o->mailbox, .ca_file = o->ca_file,
		.insecure = o->insecure,
		.connect_timeout_s = o->timeout < 15 ? o->timeout : 15,
		.timeout_s = o->timeout,
		.verbose = log_debug_on(LC_HTTP) ? 1 : 0,
		.state_dir = state_dir,
	};
	struct be_result r;
	struct be_person *v = NULL;
	size_t n = 0;
	int rc = EXIT_FAILED;
	be_result_ok(&r);
	/* a command of its own: its one session gets an account of its own */
	cfg.account = ops->account_new ? ops->account_new(&cfg) : NULL;
	struct be_session *s = ops->open(&cfg, &r);
	if (s) {
		ops->resolve_names(s, o->query, LOOKUP_MAX, &v, &n, &r);
		ops->close(s);
	}
	if (cfg.account)
		ops->account_free(cfg.account);
	if (r.status == BE_OK) {
		for (size_t i = 0; i < n; i++)
			print_person(&v[i]);
		if (fflush(stdout)) {
			perror("exchangefs: stdout");
		} else if (n) {
			rc = 0;
		} else {
			fprintf(stderr, "exchangefs: no one in the address book "
				"matches '");
			for (const char *p = o->query; *p; p++)
				fputc((unsigned char)*p < 0x20 ? '?' : *p, stderr);
			fprintf(stderr, "'\n");
			rc = EXIT_NO_MATCH;
		}
	} else if (be_status_transient(r.status)) {
		fprintf(stderr, "exchangefs: cannot reach %s: %s\n", o->url, r.msg);
	} else {
		fprintf(stderr, "exchangefs: %s: %s\n", o->url, r.msg);
	}
	be_people_free(v, n);
	if (rc == EXIT_FAILED && !s)
		signin_forget(&si);  /* a cached Autodiscover answer: ask anew */
	signin_free(&si);
	free(state_dir);
	return rc;
}

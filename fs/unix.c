/*
 * unix.c - how exchangefs fits a Unix system beside the daemon itself: the
 * "status" and "unmount" subcommands (the control entry of a running
 * mount, printed nicely; the unmount a systemd unit's ExecStop runs), and
 * the readiness message to systemd (Type=notify, no libsystemd needed).
 */
#include "fs.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define STATUS_MAX (1 << 20)

void unix_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = 0;   /* abstract socket */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("cannot tell systemd %s: %s", state, strerror(errno));
	close(fd);
}

/* Undo the octal escapes of /proc/self/mountinfo (\040 for a space). */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' &&
		    r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 |
				      (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

/* The source ("exchangefs:user@host") of the exchangefs mount on path
 * (a real path), or NULL if none is mounted there.  Owned. */
char *unix_mount_source(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return NULL;
	char *line = NULL, *found = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = 0;
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = 0;
		char *save = NULL, *mnt = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		mnt = tok;
		char *save2 = NULL;
		char *type = strtok_r(sep + 3, " ", &save2);
		char *source = strtok_r(NULL, " ", &save2);
		if (!mnt || !type || !source || strcmp(type, "fuse.exchangefs"))
			continue;
		unescape(mnt);
		if (strcmp(mnt, path))
			continue;
		unescape(source);
		free(found);          /* the last one is on top */
		found = xstrdup(source);
	}
	free(line);
	fclose(f);
	return found;
}

/* Print "key: value" lines with the values lined up; other lines (the
 * indented per-folder ones) as they are. */
static void print_aligned(const char *text)
{
	int width = 0;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *colon = memchr(p, ':', n);
		if (colon && *p != ' ' && colon + 1 < p + n && colon[1] == ' ' &&
		    colon - p < 40 && colon - p + 1 > width)
			width = (int)(colon - p + 1);
		p += n + (p[n] == '\n');
	}
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *colon = memchr(p, ':', n);
		if (colon && *p != ' ' && colon + 1 < p + n && colon[1] == ' ' &&
		    colon - p < 40) {
			int k = (int)(colon - p + 1);
			printf("  %-*.*s %.*s\n", width, k, p,
			       (int)(n - (size_t)k - 1), colon + 2);
		} else {
			printf("  %.*s\n", (int)n, p);
		}
		p += n + (p[n] == '\n');
	}
}

/* One line for a mount point (arg) or a file in it (what) that could not be
 * read, with errno set: a dead daemon says how to clear its mount. */
static void say_unreadable(const char *arg, const char *what)
{
	if (errno == ENOTCONN)
		fprintf(stderr, "exchangefs: %s: the daemon is gone "
			"(fusermount3 -u %s)\n", arg, arg);
	else
		fprintf(stderr, "exchangefs: cannot read %s: %s\n", what,
			strerror(errno));
}

static int status_command(const char *arg)
{
	char real[PATH_MAX];
	if (!realpath(arg, real)) {
		say_unreadable(arg, arg);
		return 1;
	}
	char *source = unix_mount_source(real);
	if (!source) {
		fprintf(stderr, "exchangefs: %s is not an exchangefs mount (see "
			"mount -t fuse.exchangefs)\n", arg);
		return 1;
	}
	char *path = xasprintf("%s/%s/status", real, CTL_NAME);
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t n = 0;
	if (f) {
		text = xcalloc(1, STATUS_MAX + 1);
		n = fread(text, 1, STATUS_MAX, f);
		if (ferror(f)) {
			free(text);
			text = NULL;
		}
		fclose(f);
	}
	int rc = 0;
	if (!text) {
		say_unreadable(arg, path);
		rc = 1;
	} else {
		text[n] = 0;
		printf("exchangefs on %s (%s)\n", real, source);
		print_aligned(text);
	}
	free(text);
	free(path);
	free(source);
	return rc;
}

/* "unmount ACCOUNT|MOUNTPOINT": a mount point, or the mountpoint key of
 * an account in the accounts file. */
static int unmount_command(const char *config, const char *arg)
{
	char real[PATH_MAX];
	char *target = NULL;
	struct stat st;
	if (stat(arg, &st) == 0 || errno == ENOTCONN) {
		target = xstrdup(arg);
	} else {
		struct config cfg;
		char *path = config ? config_expand_home(config)
				    : config_default_path();
		int lr = config_load(path, true, &cfg);
		free(path);
		if (lr) {
			config_free(&cfg);
			return 2;
		}
		for (size_t i = 0; i < cfg.n; i++)
			if (cfg.e[i].key && cfg.e[i].section &&
			    !strcmp(cfg.e[i].section, arg) &&
			    !strcmp(cfg.e[i].key, "mountpoint"))
				target = config_expand_home(cfg.e[i].value);
		if (!target)
			fprintf(stderr, "exchangefs: %s is neither a mount point "
				"nor an account with a mountpoint in %s\n", arg,
				cfg.path);
		config_free(&cfg);
		if (!target)
			return 2;
	}
	if (realpath(target, real) && !strcmp(target, arg)) {
		char *source = unix_mount_source(real);
		if (!source) {
			fprintf(stderr, "exchangefs: %s is not an exchangefs "
				"mount\n", arg);
			free(target);
			return 1;
		}
		free(source);
	}
	fflush(NULL);
	execlp("fusermount3", "fusermount3", "-u", target, (char *)NULL);
	fprintf(stderr, "exchangefs: cannot run fusermount3: %s\n",
		strerror(errno));
	free(target);
	return 1;
}

int unix_command(int argc, char **argv)
{
	const char *cmd = argv[1], *config = NULL;
	int i = 2;
	if (i + 1 < argc && !strcmp(argv[i], "--config"))
		config = argv[i + 1], i += 2;
	if (i + 1 != argc) {
		fprintf(stderr, "exchangefs: usage: exchangefs %s %s\n", cmd,
			!strcmp(cmd, "status") ? "MOUNTPOINT"
			: "[--config FILE] ACCOUNT|MOUNTPOINT");
		return 2;
	}
	if (!strcmp(cmd, "status"))
		return status_command(argv[i]);
	return unmount_command(config, argv[i]);
}

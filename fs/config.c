/*
 * config.c - the accounts file (~/.config/exchangefs/config): reading and
 * checking its syntax.  One "[name]" section per account, "key = value"
 * lines, "#" or ";" comments, keys before the first section apply to
 * every account.  Which keys exist and what their values mean is decided
 * by options.c (the keys are the long option names).
 */
#include "fs.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_ENTRIES 4096

static const char *home_dir(void)
{
	const char *home = getenv("HOME");
	if (home && *home == '/')
		return home;
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/";
}

char *config_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	if (xdg && *xdg == '/')
		return xasprintf("%s/exchangefs/config", xdg);
	return xasprintf("%s/.config/exchangefs/config", home_dir());
}

char *config_expand_home(const char *value)
{
	if (value[0] == '~' && (value[1] == '/' || !value[1]))
		return xasprintf("%s%s", home_dir(), value + 1);
	return xstrdup(value);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

static int syntax(const struct config *c, unsigned line, const char *what)
{
	fprintf(stderr, "exchangefs: %s:%u: %s\n", c->path, line, what);
	return -1;
}

static int add(struct config *c, const char *section, const char *key,
	       const char *value, unsigned line)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct cfg_entry *e = &c->e[i];
		bool same_section = (!e->section && !section) ||
			(e->section && section && !strcmp(e->section, section));
		if (same_section && e->key && !strcmp(e->key, key)) {
			fprintf(stderr, "exchangefs: %s:%u: '%s' is already "
				"set on line %u\n", c->path, line, key, e->line);
			return -1;
		}
	}
	if (c->n == CONFIG_MAX_ENTRIES)
		return syntax(c, line, "too many lines");
	c->e = xrealloc(c->e, (c->n + 1) * sizeof(*c->e));
	c->e[c->n++] = (struct cfg_entry){
		.section = section ? xstrdup(section) : NULL,
		.key = key ? xstrdup(key) : NULL,
		.value = value ? xstrdup(value) : NULL,
		.line = line,
	};
	return 0;
}

/* One line: a comment, a [section], or key = value.  Keys are stored
 * with '_' turned into '-' (cache_size = cache-size). */
static int parse_line(struct config *c, char *s, unsigned line,
		      char **section)
{
	s = trim(s);
	if (!*s || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (!end || end[1])
			return syntax(c, line, "a section line is [name]");
		*end = 0;
		char *name = trim(s + 1);
		if (!*name || strpbrk(name, "[]/"))
			return syntax(c, line, "an account name cannot be "
				      "empty or hold [ ] /");
		if (config_has_section(c, name)) {
			fprintf(stderr, "exchangefs: %s:%u: account [%s] "
				"appears twice\n", c->path, line, name);
			return -1;
		}
		free(*section);
		*section = xstrdup(name);
		return add(c, name, NULL, NULL, line);
	}
	char *eq = strchr(s, '=');
	if (!eq)
		return syntax(c, line, "expected 'key = value', '[account]' "
			      "or a # comment");
	*eq = 0;
	char *key = trim(s), *value = trim(eq + 1);
	if (!*key)
		return syntax(c, line, "a line starts with '=' (no key)");
	for (char *p = key; *p; p++) {
		if (*p == '_')
			*p = '-';
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
			   *p == '-'))
			return syntax(c, line, "a key is lower-case letters, "
				      "digits and - (the long option names)");
	}
	if (!strcmp(key, "password"))
		c->has_password = true;
	return add(c, *section, key, value, line);
}

int config_load(const char *path, bool must_exist, struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->path = xstrdup(path);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 1;
		fprintf(stderr, "exchangefs: cannot read accounts file %s: %s\n",
			path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fileno(f), &st) == 0)
		c->mode = st.st_mode;
	char *buf = xcalloc(1, CONFIG_MAX_LINE + 2);
	char *section = NULL;
	unsigned line = 0;
	int rc = 0;
	while (!rc && fgets(buf, CONFIG_MAX_LINE + 2, f)) {
		line++;
		size_t n = strlen(buf);
		if (n > CONFIG_MAX_LINE) {
			rc = syntax(c, line, "line longer than 4096 bytes");
			break;
		}
		if (n && buf[n - 1] == '\n')
			buf[--n] = 0;
		rc = parse_line(c, buf, line, &section);
	}
	if (!rc && ferror(f)) {
		fprintf(stderr, "exchangefs: cannot read accounts file %s: %s\n",
			path, strerror(errno));
		rc = -1;
	}
	free(section);
	explicit_bzero(buf, CONFIG_MAX_LINE + 2);
	free(buf);
	fclose(f);
	return rc;
}

bool config_has_section(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!c->e[i].key && !strcmp(c->e[i].section, name))
			return true;
	return false;
}

char *config_sections(const struct config *c)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < c->n; i++)
		if (!c->e[i].key)
			buf_printf(&b, "%s%s", b.len ? ", " : "",
				   c->e[i].section);
	if (!b.len)
		buf_puts(&b, "none");
	return b.data;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].section);
		free(c->e[i].key);
		if (c->e[i].value) {
			explicit_bzero(c->e[i].value, strlen(c->e[i].value));
			free(c->e[i].value);
		}
	}
	free(c->e);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/*
 * util.c - allocation policy (abort on OOM), logging sink and levels, the
 * capped byte buffer, clocks.  See util.h.
 */
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
	fprintf(stderr, "exchangefs: out of memory (allocating %zu bytes)\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		oom(strlen(s) + 1);
	return d;
}

char *xstrndup(const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = strndup(s, n);
	if (!d)
		oom(n + 1);
	return d;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0)
		oom(0);
	return s;
}

/* ---- logging ---- */

static log_sink_fn sink;
static enum log_level max_level = LOG_NOTICE_;
static unsigned debug_mask;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_sink(log_sink_fn fn) { sink = fn; }
void log_set_level(enum log_level lvl) { max_level = lvl; }
void log_set_debug(unsigned cats)
{
	debug_mask = cats;
	if (cats)
		max_level = LOG_DEBUG_;
}
bool log_debug_on(enum log_cat cat) { return (debug_mask & cat) != 0; }

int log_parse_debug(const char *spec, unsigned *mask)
{
	static const struct { const char *n; unsigned v; } names[] = {
		{ "main", LC_MAIN }, { "http", LC_HTTP }, { "xml", LC_XML },
		{ "sync", LC_SYNC }, { "fs", LC_FS }, { "cache", LC_CACHE },
		{ "all", ~0u },
	};
	unsigned m = 0;
	const char *p = spec;
	while (*p) {
		size_t len = strcspn(p, ",");
		size_t i;
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].n) == len &&
			    !strncasecmp(names[i].n, p, len))
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return -1;
		m |= names[i].v;
		p += len;
		if (*p == ',')
			p++;
	}
	*mask = m;
	return 0;
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	if (lvl > max_level)
		return;
	char line[2048];
	vsnprintf(line, sizeof(line), fmt, ap);
	/* one line per message: fold newlines a server may have sent */
	for (char *c = line; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	pthread_mutex_lock(&log_lock);
	if (sink) {
		sink(lvl, line);
	} else {
		static const char *pfx[] = { "", "", "", "error: ", "warning: ",
					     "", "", "debug: " };
		fprintf(stderr, "exchangefs: %s%s\n", pfx[lvl & 7], line);
	}
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

/* ---- buffers ---- */

void buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->len = b->alloc = 0;
	b->cap = cap;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (b->cap && (n > b->cap || b->len > b->cap - n))
		return -1;
	if (b->len + n + 1 > b->alloc) {
		size_t na = b->alloc ? b->alloc : 256;
		while (na < b->len + n + 1)
			na *= 2;
		b->data = xrealloc(b->data, na);
		b->alloc = na;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	int rc = buf_append(b, s, (size_t)n);
	free(s);
	return rc;
}

int buf_put_xml_escaped(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *rep = NULL;
		switch (*p) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		/* as references, so that neither attribute-value nor
		 * line-end normalization changes them */
		case '\t': rep = "&#9;"; break;
		case '\n': rep = "&#10;"; break;
		case '\r': rep = "&#13;"; break;
		default:
			if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
				continue;
		}
		if (rep ? buf_puts(b, rep) : buf_append(b, p, 1))
			return -1;
	}
	return 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void deadline_ms(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int thread_start(pthread_t *t, const char *name, void *(*fn)(void *),
		 void *arg)
{
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &block, &old);   /* inherited by the thread */
	int rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc && name)
		pthread_setname_np(*t, name);
	return rc;
}

void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/*
 * util.c - allocation policy (abort on OOM), logging sink and levels, the
 * capped byte buffer, clocks.  See util.h.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

bool log_syslog_there(void)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "/dev/log");
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

#define LOG_FILE_MAX (1L << 20)

static int log_fd = -1;          /* protected by log_lock */
static char *log_path;           /* owned */

static void file_sink(enum log_level lvl, const char *line)
{
	static const char *pfx[] = { "", "", "", "error: ", "warning: ",
				     "", "", "debug: " };
	struct stat st;
	if (fstat(log_fd, &st) == 0 && st.st_size > LOG_FILE_MAX) {
		char *old = xasprintf("%s.1", log_path);
		int fd = rename(log_path, old) == 0
			? open(log_path, O_WRONLY | O_APPEND | O_CREAT |
			       O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
		if (fd >= 0) {
			close(log_fd);
			log_fd = fd;
		}
		free(old);
	}
	time_t now = time(NULL);
	struct tm tm;
	char when[32];
	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	char *text = xasprintf("%s exchangefs[%ld]: %s%s\n", when,
			       (long)getpid(), pfx[lvl & 7], line);
	if (write_all(log_fd, text, strlen(text)) < 0) {
		/* nowhere left to say it */
	}
	free(text);
}

int log_to_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		      O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	free(log_path);
	log_path = xstrdup(path);
	sink = file_sink;
	pthread_mutex_unlock(&log_lock);
	return 0;
}
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

/* ---- display width ---- */

/* [first, last] code point ranges, sorted */
static const uint32_t zero_width[][2] = {
	{ 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD },
	{ 0x0610, 0x061A }, { 0x064B, 0x065F }, { 0x0E31, 0x0E31 },
	{ 0x0E34, 0x0E3A }, { 0x0E47, 0x0E4E }, { 0x1AB0, 0x1AFF },
	{ 0x1DC0, 0x1DFF }, { 0x200B, 0x200F }, { 0x202A, 0x202E },
	{ 0x2060, 0x2064 }, { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F },
	{ 0xFE20, 0xFE2F }, { 0xFEFF, 0xFEFF }, { 0xE0100, 0xE01EF },
};
static const uint32_t wide[][2] = {
	{ 0x1100, 0x115F }, { 0x231A, 0x231B }, { 0x2329, 0x232A },
	{ 0x23E9, 0x23EC }, { 0x2614, 0x2615 }, { 0x2E80, 0x303E },
	{ 0x3041, 0x33FF }, { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF },
	{ 0xA000, 0xA4CF }, { 0xA960, 0xA97F }, { 0xAC00, 0xD7A3 },
	{ 0xF900, 0xFAFF }, { 0xFE10, 0xFE19 }, { 0xFE30, 0xFE6F },
	{ 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
	{ 0x1F900, 0x1F9FF }, { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD },
};

static bool in_ranges(uint32_t c, const uint32_t (*r)[2], size_t n)
{
	for (size_t i = 0; i < n && r[i][0] <= c; i++)
		if (c <= r[i][1])
			return true;
	return false;
}

size_t utf8_width(const char *s)
{
	size_t w = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		uint32_t c = *p;
		size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2
			   : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		size_t k = 1;
		if (len > 1) {
			c &= 0x3F >> (len - 1);
			for (; k < len && (p[k] & 0xC0) == 0x80; k++)
				c = c << 6 | (p[k] & 0x3F);
		}
		if (len == 0 || k < len) {
			w++;       /* not UTF-8: a byte is one column */
			p += k;
			continue;
		}
		p += len;
		if (in_ranges(c, zero_width, sizeof(zero_width) / sizeof(zero_width[0])))
			continue;
		w += in_ranges(c, wide, sizeof(wide) / sizeof(wide[0])) ? 2 : 1;
	}
	return w;
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

/*
 * util.h - small helpers every layer uses: the allocation policy, logging,
 * and a growable byte buffer with a hard cap for anything filled from the
 * network.
 *
 * Allocation policy (as isync and OpenSMTPD): running out of memory is not
 * recoverable in a daemon that must keep its cache consistent, so x*alloc()
 * print one line and abort().  Nothing checks for NULL from them.
 */
#ifndef EXCHANGEFS_UTIL_H
#define EXCHANGEFS_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);             /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- Logging: syslog levels, a redirectable sink, per-category debug. --- */
enum log_level { LOG_ERR_ = 3, LOG_WARN_ = 4, LOG_NOTICE_ = 5, LOG_INFO_ = 6,
		 LOG_DEBUG_ = 7 };
/* Debug categories, enabled with -d (all) or -o debug=http,sync,... */
enum log_cat { LC_MAIN = 1, LC_HTTP = 2, LC_XML = 4, LC_SYNC = 8, LC_FS = 16,
	       LC_CACHE = 32 };

typedef void (*log_sink_fn)(enum log_level lvl, const char *line);
void log_set_sink(log_sink_fn fn);         /* default: stderr with prefix */
/* Whether a syslog daemon listens on /dev/log (many containers and small
 * machines have none: syslog() then drops every line). */
bool log_syslog_there(void);
/* Log to a file instead (appended, mode 0600, timestamped; at 1 MiB it
 * becomes path.1 and a new one starts).  0, or -1 with errno set. */
int log_to_file(const char *path);
void log_set_level(enum log_level lvl);    /* default LOG_NOTICE_ */
void log_set_debug(unsigned cats);         /* bitmask of enum log_cat */
bool log_debug_on(enum log_cat cat);
/* Parse "http,sync" or "all" into a mask; returns -1 on an unknown word. */
int log_parse_debug(const char *spec, unsigned *mask);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

#define log_err(...)    log_msg(LOG_ERR_, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARN_, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE_, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO_, __VA_ARGS__)
#define log_dbg(cat, ...) \
	do { if (log_debug_on(cat)) log_msg(LOG_DEBUG_, __VA_ARGS__); } while (0)

/* --- Byte buffer with a cap.  buf_append() fails (returns -1) instead of
 * growing past cap; the data is always NUL-terminated. --- */
struct buf {
	char *data;   /* owned */
	size_t len, alloc;
	size_t cap;   /* 0 = unlimited (only for data we produced ourselves) */
};
void buf_init(struct buf *b, size_t cap);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s with XML special characters escaped (& < > " '), tab, line
 * feed and carriage return as character references (so they survive in
 * attributes and element text alike), and the other control characters,
 * which XML 1.0 cannot carry, dropped. */
int buf_put_xml_escaped(struct buf *b, const char *s);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* The columns UTF-8 text s takes on a terminal: combining marks and
 * zero-width characters 0, East Asian wide and fullwidth characters 2,
 * the rest (and each byte that is not valid UTF-8) 1.  For lining up
 * columns of names, whatever the locale. */
size_t utf8_width(const char *s);

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);
/* pthread_create for the daemon's own threads: the new thread is named
 * (name: at most 15 bytes, shown by top -H, gdb, /proc/PID/task/N/comm)
 * and has SIGINT, SIGTERM, SIGHUP and SIGQUIT blocked, so these reach the
 * main thread or a FUSE worker, whose interrupted wait ends the FUSE loop.
 * (A signal taken by another thread only sets libfuse's exit flag, and the
 * loop could wait forever.)  Returns pthread_create's result. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *),
		 void *arg);

/* Initialise a condition variable whose timed waits use CLOCK_MONOTONIC
 * (the clock deadline_ms() gives deadlines in). */
void cond_init_monotonic(pthread_cond_t *c);

/* A CLOCK_MONOTONIC deadline ms from now, for pthread_cond_timedwait on
 * conditions made with pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec;
void deadline_ms(struct timespec *ts, int64_t ms);
/* Sleep up to ms milliseconds. */
void sleep_ms(int64_t ms);
/* Write all n bytes to fd, retrying short writes and EINTR: 0 or -1 with
 * errno set. */
int write_all(int fd, const void *p, size_t n);

#endif

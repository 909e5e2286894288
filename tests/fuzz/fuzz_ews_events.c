/*
 * fuzz_ews_events.c - libFuzzer target for the notification stream of
 * backend/ews/ews_events.c: the splitter that cuts a GetStreamingEvents
 * body into envelopes, and the parsers of an envelope's events and of a
 * Subscribe answer.  The first byte picks the splitter's cap (256 bytes to
 * 32 KiB, so the cap is hit) and how the input is cut; the rest is the
 * stream.  Besides crashes, leaks and undefined behaviour it checks:
 *   - the splitter gives the same envelopes, the same end (failure,
 *     message, partial envelope) whether the stream comes whole, in random
 *     pieces or byte by byte, and never an envelope over its cap;
 *   - every envelope either parses into a batch whose folder ids are
 *     non-empty, within EWS_ID_MAX, each once and at most
 *     EWS_EVENTS_FOLDERS_MAX (move hints complete), or fails with a
 *     message and nothing allocated;
 *   - merging batches keeps each folder once.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true
 *        ninja -C build-fuzz tests/fuzz/fuzz_ews_events
 * Run:   build-fuzz/tests/fuzz/fuzz_ews_events -max_total_time=60 \
 *            -dict=tests/fuzz/fuzz_ews_events.dict \
 *            tests/fuzz/corpus/fuzz_ews_events
 */
#include "backend/ews/ews.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a run of the splitter gave. */
struct run {
	uint64_t hash;       /* of every envelope, in order */
	size_t n, bytes;
	int rc;
	bool partial;
	char err[96];
	size_t cap;
	const uint8_t *first; /* whole run only: each envelope is parsed */
	struct ews_events acc;
	bool parse;
};

static void check_batch(const struct ews_events *e)
{
	if (e->n_folders > EWS_EVENTS_FOLDERS_MAX ||
	    e->n_moved > EWS_EVENTS_MOVED_MAX)
		abort();
	for (size_t i = 0; i < e->n_folders; i++) {
		size_t l = strlen(e->folders[i]);
		if (!l || l > EWS_ID_MAX)
			abort();
		for (size_t j = 0; j < i; j++)
			if (!strcmp(e->folders[i], e->folders[j]))
				abort();
	}
	for (size_t i = 0; i < e->n_moved; i++)
		if (!e->moved[i].old_id || !e->moved[i].old_folder_id ||
		    !e->moved[i].new_id || !e->moved[i].new_folder_id)
			abort();
	if (e->watermark && (!*e->watermark ||
			     strlen(e->watermark) > EWS_ID_MAX))
		abort();
}

static int on_env(void *arg, const char *d, size_t len)
{
	struct run *r = arg;
	const unsigned char *p = (const unsigned char *)d;
	if (len > r->cap || !len || d[0] != '<')
		abort();
	for (size_t k = 0; k < len; k++)
		r->hash = r->hash * 1099511628211ULL + p[k];
	r->hash = r->hash * 31 + len;
	r->n++;
	r->bytes += len;
	if (!r->parse)
		return 0;

	struct ews_events e;
	struct be_result res;
	enum be_status st = ews_parse_events(d, len, &e, &res);
	if (st != res.status)
		abort();
	if (st == BE_OK) {
		check_batch(&e);
		ews_events_merge(&r->acc, &e);
		check_batch(&r->acc);
	} else if (!res.msg[0] || e.folders || e.moved || e.watermark ||
		   e.n_folders || e.n_moved) {
		abort();
	}
	ews_events_free(&e);

	char *sub, *wm;
	st = ews_parse_subscribe(d, len, &sub, &wm, &res);
	if (st == BE_OK ? (!sub || !*sub || strlen(sub) > EWS_ID_MAX)
			: (sub || wm || !res.msg[0]))
		abort();
	free(sub);
	free(wm);
	return 0;
}

/* Feed d in pieces: step 0 = whole, 1 = byte by byte, else random pieces
 * of up to 64 bytes from the seed. */
static void run_split(const uint8_t *d, size_t size, size_t cap, int step,
		      uint32_t seed, struct run *r)
{
	struct ews_stream *es = ews_stream_new(cap);
	r->cap = cap;
	r->rc = 0;
	for (size_t at = 0; at < size && !r->rc;) {
		size_t k = size - at;
		if (step == 1) {
			k = 1;
		} else if (step) {
			seed = seed * 1664525 + 1013904223;
			size_t s = 1 + (seed >> 16) % 64;
			if (s < k)
				k = s;
		}
		r->rc = ews_stream_feed(es, d + at, k, on_env, r);
		at += k;
	}
	r->partial = ews_stream_partial(es);
	snprintf(r->err, sizeof(r->err), "%s", ews_stream_error(es));
	ews_stream_free(es);
}

static bool same(const struct run *a, const struct run *b)
{
	return a->hash == b->hash && a->n == b->n && a->bytes == b->bytes &&
	       a->rc == b->rc && a->partial == b->partial &&
	       !strcmp(a->err, b->err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	size_t cap = (size_t)256 << (sel & 7);

	struct run whole, cut, bytes;
	memset(&whole, 0, sizeof(whole));
	memset(&cut, 0, sizeof(cut));
	memset(&bytes, 0, sizeof(bytes));
	whole.parse = true;
	run_split(d, n, cap, 0, 0, &whole);
	run_split(d, n, cap, 2, (uint32_t)size * 2654435761u + sel, &cut);
	if (!same(&whole, &cut))
		abort();
	if (n <= 4096) {
		run_split(d, n, cap, 1, 0, &bytes);
		if (!same(&whole, &bytes))
			abort();
	}
	if (whole.rc && !whole.err[0])
		abort();   /* env() never stops it here: a failure says why */
	ews_events_free(&whole.acc);
	return 0;
}

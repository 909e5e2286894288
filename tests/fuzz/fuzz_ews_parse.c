/*
 * fuzz_ews_parse.c - libFuzzer target over every EWS answer parser: the
 * first byte picks the entry point, the rest is the answer.  Besides
 * crashes, leaks and undefined behaviour it checks properties:
 *   - the streaming GetItem parser gives the same outcome (statuses and
 *     bytes) whether the answer comes whole or cut into random pieces,
 *     and reports every item exactly once;
 *   - the base64 decoder gives the same bytes however its input is cut;
 *   - a failed parse leaves nothing allocated in the batch and a message;
 *   - the answers to writes (selector 0x?f, the high nibble picks the
 *     operation) give ids that are non-empty and within EWS_ID_MAX, or
 *     nothing and a message;
 *   - ResolveNames answers (selector 0x?3, with the fault bodies) give
 *     at most the people asked for, each with a name or an address;
 *   - a write request built from fuzzed text (a folder name, categories,
 *     an id, a message body) is well-formed XML that carries the text back
 *     unchanged (selector 0xcf and up).
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true
 *        ninja -C build-fuzz tests/fuzz/fuzz_ews_parse
 * Run:   build-fuzz/tests/fuzz/fuzz_ews_parse -max_total_time=60 \
 *            tests/fuzz/corpus/fuzz_ews_parse
 */
#include "backend/ews/ews.h"
#include "backend/xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ResolveNames answers (selector 0x?3, max people 1 + the high nibble):
 * at most max, each with a name or an address, none too long; nothing and
 * a message on failure. */
static void fuzz_resolve(const char *d, size_t size, unsigned max)
{
	struct be_result r;
	struct be_person *v;
	size_t n;
	if (ews_parse_resolve(d, size, max, &v, &n, &r) == BE_OK) {
		if (n > max || (n && !v))
			abort();
		for (size_t i = 0; i < n; i++)
			if ((!v[i].name && !v[i].address) ||
			    (v[i].name && strlen(v[i].name) > 1024) ||
			    (v[i].address && strlen(v[i].address) > 1024))
				abort();
	} else if (v || n || !r.msg[0]) {
		abort();
	}
	be_people_free(v, n);
}

#define NITEMS 4

struct outcome {
	enum be_status st;
	uint32_t retry;
	enum be_status item_st[NITEMS];
	int calls[NITEMS];
	uint64_t hash[NITEMS];
	size_t bytes[NITEMS];
	size_t next;
	int order_bad;
};

static int sink(void *arg, size_t i, const void *d, size_t len)
{
	struct outcome *o = arg;
	const unsigned char *p = d;
	if (i >= NITEMS)
		abort();
	for (size_t k = 0; k < len; k++)
		o->hash[i] = o->hash[i] * 1099511628211ULL + p[k];
	o->bytes[i] += len;
	return 0;
}

static void done(void *arg, size_t i, enum be_status st, const char *msg)
{
	struct outcome *o = arg;
	if (i >= NITEMS || !msg != (st == BE_OK))
		abort();
	if (i != o->next++)
		o->order_bad++;
	o->item_st[i] = st;
	o->calls[i]++;
}

/* Run the stream parser over d with cuts from the LCG seed (0 = whole). */
static void stream(const uint8_t *d, size_t size, size_t n, uint32_t seed,
		   struct outcome *o)
{
	struct be_result r;
	memset(o, 0, sizeof(*o));
	struct ews_mime_stream *ms = ews_mime_stream_new(n, sink, done, o);
	size_t at = 0;
	int rc = 0;
	while (at < size && !rc) {
		size_t k = size - at;
		if (seed) {
			seed = seed * 1664525 + 1013904223;
			size_t step = 1 + (seed >> 16) % 64;
			if (step < k)
				k = step;
		}
		rc = ews_mime_stream_feed(ms, d + at, k);
		at += k;
	}
	o->st = ews_mime_stream_finish(ms, &r);
	if (o->st != BE_OK) {
		if (!r.msg[0])
			abort();
		ews_mime_stream_fail_rest(ms, o->st, r.msg);
	}
	o->retry = r.retry_after_ms;
	ews_mime_stream_free(ms);
	for (size_t i = 0; i < n; i++)
		if (o->calls[i] != 1)
			abort();
	if (o->order_bad || o->next != n)
		abort();
}

static void fuzz_stream(const uint8_t *d, size_t size, uint8_t sel)
{
	size_t n = 1 + (sel >> 4) % NITEMS;
	uint32_t seed = (uint32_t)size * 2654435761u + sel;
	struct outcome whole, cut;
	stream(d, size, n, 0, &whole);
	stream(d, size, n, seed | 1, &cut);
	if (whole.st != cut.st || whole.retry != cut.retry)
		abort();
	for (size_t i = 0; i < n; i++)
		if (whole.item_st[i] != cut.item_st[i] ||
		    whole.bytes[i] != cut.bytes[i] ||
		    whole.hash[i] != cut.hash[i])
			abort();
}

struct b64_out {
	uint64_t hash;
	size_t len;
};

static int b64_sink(void *arg, const void *d, size_t len)
{
	struct b64_out *o = arg;
	const unsigned char *p = d;
	for (size_t k = 0; k < len; k++)
		o->hash = o->hash * 1099511628211ULL + p[k];
	o->len += len;
	return 0;
}

static void fuzz_b64(const uint8_t *d, size_t size, uint8_t sel)
{
	struct b64_stream a, b;
	struct b64_out oa = { 0, 0 }, ob = { 0, 0 };
	b64_stream_init(&a, b64_sink, &oa);
	b64_stream_init(&b, b64_sink, &ob);
	int ra = b64_stream_feed(&a, (const char *)d, size);
	ra |= ra ? 0 : b64_stream_finish(&a);
	int rb = 0;
	size_t step = 1 + sel % 7;
	for (size_t at = 0; at < size && !rb; at += step)
		rb = b64_stream_feed(&b, (const char *)d + at,
				     size - at < step ? size - at : step);
	rb |= rb ? 0 : b64_stream_finish(&b);
	if (ra != rb || (!ra && (oa.len != ob.len || oa.hash != ob.hash)))
		abort();
	if (!ra && oa.len > size)
		abort();
}

static void fuzz_types(const uint8_t *d, size_t size)
{
	char *s = xstrndup((const char *)d, size);
	int64_t v;
	bool b;
	if (xs_datetime(s, &v) == 0 && (v < -62135596800LL - 14 * 3600 ||
					v > 253402300800LL + 14 * 3600))
		abort();
	if (xs_nonneg_long(s, &v) == 0 && v < 0)
		abort();
	(void)xs_boolean(s, &b);
	(void)ews_backoff_parse(s);
	free(s);
}

static bool id_sane(const char *id)
{
	return id && *id && strlen(id) <= EWS_ID_MAX;
}

/* The answer to a write (op < EWS_W_OP_N) or to the special folders. */
static void fuzz_write_answer(const char *d, size_t size, unsigned op)
{
	struct be_result r;
	if (op < EWS_W_OP_N) {
		struct be_new out;
		enum be_status st = ews_parse_write(d, size, op, &out, &r);
		if (st != r.status)
			abort();
		if (st == BE_OK) {
			if ((out.id && !id_sane(out.id)) ||
			    (out.change_key && !id_sane(out.change_key)) ||
			    (out.change_key && !out.id) ||
			    (op == EWS_W_FIND_ITEM && !out.id))
				abort();
		} else if (out.id || out.change_key || !r.msg[0]) {
			abort();
		}
		be_new_free(&out);
		return;
	}
	char *ids[BE_SPECIAL_N];
	enum be_status st = ews_parse_special(d, size, ids, &r);
	for (int k = 0; k < BE_SPECIAL_N; k++) {
		if (ids[k] && (st != BE_OK || !id_sane(ids[k])))
			abort();
		free(ids[k]);
	}
	if (st != BE_OK && !r.msg[0])
		abort();
}

/* The text of the first element named `name` (any namespace) in n. */
static char *find_text(const xmlNode *n, const char *name)
{
	for (const xmlNode *c = xml_child(n, NULL, NULL); c;
	     c = xml_next(c, NULL, NULL)) {
		char *t = NULL;
		if (!strcmp((const char *)c->name, name)) {
			if (xml_text(c, (size_t)1 << 24, &t))
				abort();
			return t;
		}
		if ((t = find_text(c, name)))
			return t;
	}
	return NULL;
}

static int b64_collect(void *arg, const void *d, size_t len)
{
	return buf_append(arg, d, len);
}

/* Build write requests from fuzzed text; each must parse, and carry the
 * text back unchanged. */
static void fuzz_write_request(const char *d, size_t size, uint8_t sel)
{
	char *s = xstrndup(d, size);
	const char *version = ews_versions[sel & 3];
	struct buf b;
	char err[200];
	xmlDoc *doc;
	buf_init(&b, 0);
	if (sel & 4) {
		/* the bytes as a message body: base64 round trip */
		ews_req_replace_mime(&b, version, "i", NULL, d, size);
		doc = xml_parse(b.data, b.len, (size_t)1 << 28, err, sizeof(err));
		if (!doc)
			abort();
		char *t = find_text(xmlDocGetRootElement(doc), "MimeContent");
		struct buf back;
		struct b64_stream dec;
		buf_init(&back, 0);
		b64_stream_init(&dec, b64_collect, &back);
		if (!t || b64_stream_feed(&dec, t, strlen(t)) ||
		    b64_stream_finish(&dec) || back.len != size ||
		    (size && memcmp(back.data, d, size)))
			abort();
		free(t);
		buf_free(&back);
		xmlFreeDoc(doc);
		buf_free(&b);
		free(s);
		return;
	}
	/* the text as a folder name and as an id: whatever it holds, the
	 * request is well-formed XML */
	ews_req_rename_folder(&b, version, s, s, s);
	doc = xml_parse(b.data, b.len, (size_t)1 << 28, err, sizeof(err));
	bool valid_utf8 = ews_text_ok(s);
	if (!doc && valid_utf8)
		abort();
	if (doc && valid_utf8) {
		char *t = find_text(xmlDocGetRootElement(doc), "DisplayName");
		if (!t || strcmp(t, s))
			abort();
		free(t);
	}
	xmlFreeDoc(doc);
	buf_reset(&b);
	if (valid_utf8) {
		/* as categories: one t:String per non-empty piece */
		struct be_props p = { BE_PROP_CATEGORIES, false, 0, s };
		ews_req_update_props(&b, version, "i", NULL, &p);
		doc = xml_parse(b.data, b.len, (size_t)1 << 28, err, sizeof(err));
		if (!doc)
			abort();
		char *t = find_text(xmlDocGetRootElement(doc), "Categories");
		size_t pieces = 0;
		for (const char *q = s; *q;) {
			size_t n = strcspn(q, ",");
			pieces += n > 0;
			q += n + (q[n] == ',');
		}
		if ((t != NULL) != (pieces > 0))
			abort();
		free(t);
		xmlFreeDoc(doc);
	}
	buf_free(&b);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	if (!once) {
		once = 1;
		log_set_level(LOG_ERR_);
	}
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	const char *d = (const char *)data + 1;
	size--;

	struct be_result r;
	switch (sel & 7) {
	case 0: {
		char *id = NULL;
		if (ews_parse_root(d, size, &id, &r) == BE_OK) {
			if (!id || !*id || strlen(id) > EWS_ID_MAX)
				abort();
		} else if (id || !r.msg[0]) {
			abort();
		}
		free(id);
		break;
	}
	case 1: {
		struct be_folder_batch b;
		if (ews_parse_folders(d, size, &b, &r) == BE_OK) {
			if (!b.new_state)
				abort();
			for (size_t i = 0; i < b.n; i++)
				if (!b.v[i].id ||
				    (b.v[i].change != BE_DELETE && !b.v[i].name))
					abort();
		} else if (b.n || b.v || b.new_state || !r.msg[0]) {
			abort();
		}
		be_folder_batch_free(&b);
		break;
	}
	case 2: {
		struct be_item_batch b;
		if (ews_parse_items(d, size, &b, &r) == BE_OK) {
			if (!b.new_state)
				abort();
			for (size_t i = 0; i < b.n; i++)
				if (!b.v[i].id || (b.v[i].change == BE_READ_FLAG &&
						   b.v[i].is_read < 0))
					abort();
		} else if (b.n || b.v || b.new_state || !r.msg[0]) {
			abort();
		}
		be_item_batch_free(&b);
		break;
	}
	case 3:
		ews_parse_fault_body(d, size, (sel >> 3) & 1 ? EWS_ON_FOLDER
							     : EWS_ON_ITEM, &r);
		fuzz_resolve(d, size, 1 + (sel >> 4));
		break;
	case 4:
	case 5:
		fuzz_stream((const uint8_t *)d, size, sel);
		break;
	case 6:
		fuzz_b64((const uint8_t *)d, size, sel >> 3);
		break;
	default:
		/* 0x?7: simple types; 0x?f: writes, the high nibble says
		 * which (0..EWS_W_OP_N-1 an answer, EWS_W_OP_N the special
		 * folders, above that requests) */
		if (!(sel & 8))
			fuzz_types((const uint8_t *)d, size);
		else if ((sel >> 4) <= EWS_W_OP_N)
			fuzz_write_answer(d, size, sel >> 4);
		else
			fuzz_write_request(d, size, (uint8_t)(size * 31 + sel));
		break;
	}
	return 0;
}

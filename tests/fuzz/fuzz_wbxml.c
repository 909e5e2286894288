/*
 * fuzz_wbxml.c - libFuzzer target for everything of the ActiveSync backend
 * that reads server input: the WBXML decoder (whole and in pieces, and a
 * re-encode round trip of what it accepts) and every answer parser of
 * eas_proto.c and eas_resolve.c (ResolveRecipients and GAL Search:
 * selector 6, with MoveItems).  The first byte picks the parser; the rest is the answer.
 */
#include "backend/eas/eas.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int sink(void *arg, size_t index, const void *data, size_t len)
{
	(void)arg; (void)index; (void)data;
	return len > (1u << 20) ? -1 : 0;
}

static void done(void *arg, size_t index, enum be_status st, const char *msg)
{
	(void)st; (void)msg;
	if (arg && index < 3)
		((int *)arg)[index]++;
}

/* Re-encode a tree and parse it again: the same shape must come back. */
static void reencode(struct wbxml_enc *e, const struct wbxml_node *n)
{
	for (; n; n = n->next) {
		if (n->child) {
			/* text mixed with elements is left out */
			wbxml_start(e, n->tag);
			reencode(e, n->child);
			wbxml_end(e);
		} else if (n->text) {
			wbxml_opaque(e, n->tag, n->text, n->len);
		} else {
			wbxml_empty(e, n->tag);
		}
	}
}

static size_t count(const struct wbxml_node *n)
{
	size_t k = 0;
	for (; n; n = n->next)
		k += 1 + count(n->child);
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	struct be_result r;
	be_result_ok(&r);

	switch (sel % 10) {
	case 0: {
		char err[160];
		struct wbxml_node *t = wbxml_parse(p, n, 1 << 20, 1 << 16, err,
						   sizeof(err));
		if (t) {
			struct buf b, d;
			struct wbxml_enc e;
			buf_init(&b, 0);
			buf_init(&d, 0);
			wbxml_dump(t, &d);
			wbxml_enc_init(&e, &b);
			reencode(&e, t->child);
			if (wbxml_enc_finish(&e) == 0) {
				struct wbxml_node *t2 = wbxml_parse(
					b.data, b.len, 1 << 21, 1 << 17, err,
					sizeof(err));
				if (!t2 || count(t2) < count(t))
					abort();
				wbxml_free(t2);
			}
			buf_free(&b);
			buf_free(&d);
			wbxml_free(t);
		}
		/* the same bytes in pieces of 3 */
		struct wbxml_dec dec;
		wbxml_dec_init(&dec, NULL);
		for (size_t at = 0; at < n; at += 3)
			if (wbxml_feed(&dec, p + at, n - at < 3 ? n - at : 3))
				break;
		wbxml_dec_finish(&dec);
		break;
	}
	case 1: {
		struct be_folder_batch b;
		if (eas_parse_folder_sync(p, n, &b, &r) == BE_OK)
			be_folder_batch_free(&b);
		char *ids[BE_SPECIAL_N];
		if (eas_parse_special(p, n, ids, &r) == BE_OK)
			for (int k = 0; k < BE_SPECIAL_N; k++)
				free(ids[k]);
		break;
	}
	case 2: {
		struct be_item_batch b;
		if (eas_parse_sync(p, n, "mail%2Finbox", &b, &r) == BE_OK)
			be_item_batch_free(&b);
		struct be_sync_one v[3] = {
			{ .folder_id = "mail%2Finbox", .state = "k1" },
			{ .folder_id = "c", .state = "k2" },
			{ .folder_id = "mail%2Finbox", .state = "k3" },
		};
		if (eas_parse_sync_many(p, n, v, 3, &r) == BE_OK)
			for (size_t k = 0; k < 3; k++)
				be_item_batch_free(&v[k].out);
		break;
	}
	case 3: {
		static const char *const ids[] = { "c\t1", "c\t2", "mail%2Finbox\t17" };
		int calls[3] = { 0 };
		struct eas_fetch *f = eas_fetch_new(ids, 3, sink, done, calls);
		/* in two pieces, split where the second byte says */
		size_t cut = n ? (size_t)(sel >> 4) * n / 16 : 0;
		if (eas_fetch_feed(f, p, cut) == 0 &&
		    eas_fetch_feed(f, p + cut, n - cut) == 0 &&
		    eas_fetch_failed_whole(f, &r)) {
			/* the backend asks one by one: none reported twice */
			for (size_t i = 0; i < 3; i++)
				if (calls[i] != (int)eas_fetch_reported(f, i))
					abort();
		}
		eas_fetch_finish(f, &r);
		eas_fetch_free(f);
		/* every item reported exactly once */
		for (size_t i = 0; i < 3; i++)
			if (calls[i] != 1)
				abort();
		break;
	}
	case 4: {
		char *key;
		if (eas_parse_provision(p, n, &key, &r) == BE_OK)
			free(key);
		break;
	}
	case 5: {
		struct eas_ping ping;
		if (eas_parse_ping(p, n, &ping, &r) == BE_OK)
			eas_ping_free(&ping);
		break;
	}
	case 6: {
		char *id;
		if (eas_parse_move(p, n, &id, &r) == BE_OK)
			free(id);
		/* ResolveRecipients: at most max people, each with a name
		 * or an address; nothing and a message on failure */
		struct be_person *v;
		size_t nv;
		unsigned max = 1 + (sel >> 4);
		for (int k = 0; k < 2; k++) {   /* and GAL Search */
			enum be_status st =
				k ? eas_parse_gal_search(p, n, max, &v, &nv, &r)
				  : eas_parse_resolve(p, n, max, &v, &nv, &r);
			if (st == BE_OK) {
				if (nv > max || (nv && !v))
					abort();
				for (size_t i = 0; i < nv; i++)
					if (!v[i].name && !v[i].address)
						abort();
			} else if (v || nv || !r.msg[0]) {
				abort();
			}
			be_people_free(v, nv);
		}
		break;
	}
	case 7: {
		static const char *const cmds[] = { "FolderCreate", "FolderUpdate",
						    "FolderDelete" };
		char *key, *id;
		if (eas_parse_folder_op(p, n, cmds[(sel >> 4) % 3], &key, &id,
					&r) == BE_OK) {
			free(key);
			free(id);
		}
		break;
	}
	case 8: {
		char *key;
		if (eas_parse_sync_write(p, n, &key, &r) == BE_OK)
			free(key);
		char *sid;
		if (eas_parse_sync_add(p, n, &key, &sid, &r) == BE_OK) {
			free(key);
			free(sid);
		}
		eas_parse_send_mail(p, n, &r);
		break;
	}
	case 9: {
		/* strings of the headers and ids */
		char *s = strndup((const char *)p, n);
		if (!s)
			return 0;
		eas_pick_version(s);
		eas_parse_date(s);
		char *buf;
		const char *c, *i;
		if (eas_item_split(s, &buf, &c, &i))
			free(buf);
		eas_status("Sync", s, &r);
		free(s);
		struct eas_draft d;
		if (eas_draft_from_mime(p, n, &d, &r) == 0)
			eas_draft_free(&d);
		break;
	}
	}
	return 0;
}

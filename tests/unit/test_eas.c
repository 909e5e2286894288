/*
 * test_eas.c - the ActiveSync backend without a network: version choice,
 * item ids, status grading, dates, every request builder (decoded back and
 * checked element by element) and every answer parser, on answers built
 * here and on answers captured from SOGo 5.8 (the fuzzer's seed corpus).
 */
#include "backend/eas/eas.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static struct wbxml_node *tree_of(const struct buf *b)
{
	char err[160];
	struct wbxml_node *t = wbxml_parse(b->data, b->len, 1 << 20, 10000,
					   err, sizeof(err));
	if (!t)
		printf("FAIL cannot parse a built request: %s\n", err);
	return t;
}

/* Read a file of the fuzz corpus (its first byte is the fuzzer's
 * selector, left out). */
static char *corpus(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/../../fuzz/corpus/fuzz_wbxml/%s",
		 TEST_DATA_DIR, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("FAIL cannot open %s\n", path);
		check_failed++;
		*len = 0;
		return NULL;
	}
	static char data[1 << 20];
	size_t n = fread(data, 1, sizeof(data), f);
	fclose(f);
	*len = n ? n - 1 : 0;
	char *out = malloc(*len + 1);
	memcpy(out, data + 1, *len);
	return out;
}

/* ---- small things ---- */

static void test_versions_ids_status(void)
{
	CHECK_STR(eas_pick_version("2.5,12.0,12.1,14.0,14.1"), "14.1");
	CHECK_STR(eas_pick_version("12.1, 16.1,14.1"), "16.1");
	CHECK_STR(eas_pick_version("16.0,14.0"), "16.0");
	CHECK(eas_pick_version("2.5,12.0") == NULL);
	CHECK(eas_pick_version("14.10,16.11") == NULL);
	CHECK(eas_pick_version("") == NULL);
	CHECK(eas_version_at_least("14.1", "14.0"));
	CHECK(!eas_version_at_least("12.1", "14.0"));
	CHECK(eas_version_at_least("16.1", "16.1"));

	char *id = eas_item_id("mail%2FINBOX", "17");
	CHECK_STR(id, "mail%2FINBOX\t17");
	char *buf;
	const char *c, *s;
	CHECK(eas_item_split(id, &buf, &c, &s));
	CHECK_STR(c, "mail%2FINBOX");
	CHECK_STR(s, "17");
	free(buf);
	free(id);
	/* Exchange's ServerIds carry a colon: kept whole */
	CHECK(eas_item_split("5\t5:12", &buf, &c, &s));
	CHECK_STR(s, "5:12");
	free(buf);
	CHECK(!eas_item_split("no-separator", &buf, &c, &s) && !buf);
	CHECK(!eas_item_split("\t12", &buf, &c, &s));
	CHECK(!eas_item_split("c\t", &buf, &c, &s));
	CHECK(!eas_item_split(NULL, &buf, &c, &s));

	static const struct {
		const char *cmd, *st;
		enum be_status want;
	} t[] = {
		{ "Sync", "1", BE_OK },
		{ "Sync", "3", BE_SYNC_INVALID },
		{ "Sync", "8", BE_ITEM_GONE },
		{ "Sync", "12", BE_NETWORK },
		{ "Sync", "13", BE_NETWORK },
		{ "Sync", "16", BE_NETWORK },
		{ "Sync", "111", BE_THROTTLED },
		{ "Sync", "110", BE_NETWORK },
		{ "Sync", "126", BE_AUTH },
		{ "Sync", "132", BE_SYNC_INVALID },
		{ "Sync", "150", BE_ITEM_GONE },
		{ "FolderSync", "9", BE_SYNC_INVALID },
		{ "FolderCreate", "2", BE_EXISTS },
		{ "FolderDelete", "4", BE_FOLDER_GONE },
		{ "ItemOperations", "6", BE_ITEM_GONE },
		{ "MoveItems", "3", BE_OK },
		{ "MoveItems", "1", BE_ITEM_GONE },
		{ "MoveItems", "2", BE_FOLDER_GONE },
		{ "Ping", "2", BE_OK },
		{ "Ping", "5", BE_OK },
		{ "Ping", "7", BE_SYNC_INVALID },
		{ "SendMail", "120", BE_REFUSED },
		{ "SendMail", "118", BE_OK },
		{ "Sync", "", BE_PROTOCOL },
		{ "Sync", "1x", BE_PROTOCOL },
		{ "Sync", NULL, BE_PROTOCOL },
		{ "Sync", "-1", BE_PROTOCOL },
		{ "Sync", "99999999999999999999", BE_PROTOCOL },
	};
	struct be_result r;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		check_run++;
		if (eas_status(t[i].cmd, t[i].st, &r) != t[i].want || r.status != t[i].want) {
			check_failed++;
			printf("FAIL status %s %s: got %d (%s)\n", t[i].cmd,
			       t[i].st ? t[i].st : "(null)", r.status, r.msg);
		}
	}
	for (const char *st = "142"; st; st = strcmp(st, "142") ? NULL : "144") {
		eas_status("Sync", st, &r);
		CHECK(eas_needs_provision(&r));
		CHECK(strstr(r.msg, "provisioned") != NULL);
	}
	eas_status("Sync", "130", &r);
	CHECK(!eas_needs_provision(&r));

	CHECK(eas_parse_date("2026-11-22T05:00:00.000Z") == 1795323600);
	CHECK(eas_parse_date("2026-11-22T05:00:00Z") == 1795323600);
	CHECK(eas_parse_date("1970-01-01T00:00:00.000Z") == 0);
	CHECK(eas_parse_date("2026-13-22T05:00:00.000Z") == 0);
	CHECK(eas_parse_date("yesterday") == 0);
	CHECK(eas_parse_date(NULL) == 0);
	CHECK_STR(eas_folder_class(2), "IPF.Note");
	CHECK_STR(eas_folder_class(12), "IPF.Note");
	CHECK_STR(eas_folder_class(8), "IPF.Appointment");
	CHECK_STR(eas_folder_class(9), "IPF.Contact");
	CHECK_STR(eas_folder_class(99), "IPF.Unknown");
}

/* ---- requests ---- */

static void test_requests(void)
{
	struct buf b;
	struct wbxml_node *t, *c;

	buf_init(&b, 0);
	eas_req_sync(&b, "mail%2FINBOX", "5-9", 2000);
	t = tree_of(&b);
	c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0);
	CHECK_STR(wbxml_child_text(c, WB_AS_SYNC_KEY), "5-9");
	CHECK_STR(wbxml_child_text(c, WB_AS_COLLECTION_ID), "mail%2FINBOX");
	CHECK_STR(wbxml_child_text(c, WB_AS_WINDOW_SIZE), "512");
	CHECK(wbxml_child(c, WB_AS_GET_CHANGES) != NULL);
	struct wbxml_node *o = wbxml_child(c, WB_AS_OPTIONS);
	CHECK_STR(wbxml_child_text(o, WB_AS_MIMESUPPORT), "2");
	CHECK_STR(wbxml_child_text(o, WB_AS_MIMETRUNCATION), "1");
	CHECK_STR(wbxml_child_text(o, WB_AS_FILTER_TYPE), "0");
	CHECK_STR(wbxml_child_text(wbxml_child(o, WB_ASB_BODY_PREFERENCE), WB_ASB_TYPE), "4");
	wbxml_free(t);

	/* the first Sync: key 0, nothing else */
	buf_reset(&b);
	eas_req_sync(&b, "c", NULL, 0);
	t = tree_of(&b);
	c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0);
	CHECK_STR(wbxml_child_text(c, WB_AS_SYNC_KEY), "0");
	CHECK(!wbxml_child(c, WB_AS_GET_CHANGES) && !wbxml_child(c, WB_AS_OPTIONS));
	wbxml_free(t);

	buf_reset(&b);
	eas_req_fetch(&b, "c1", "7");
	t = tree_of(&b);
	c = wbxml_path(t, WB_IO_ITEM_OPERATIONS, WB_IO_FETCH, 0);
	CHECK_STR(wbxml_child_text(c, WB_IO_STORE), "Mailbox");
	CHECK_STR(wbxml_child_text(c, WB_AS_COLLECTION_ID), "c1");
	CHECK_STR(wbxml_child_text(c, WB_AS_SERVER_ID), "7");
	CHECK_STR(wbxml_child_text(wbxml_child(c, WB_IO_OPTIONS), WB_AS_MIMESUPPORT), "2");
	wbxml_free(t);

	/* several messages: one Fetch each, in order, each with its options */
	buf_reset(&b);
	static const char *const colls[] = { "c1", "c2", "c1" };
	static const char *const sids[] = { "7", "8", "9" };
	eas_req_fetch_n(&b, colls, sids, 3);
	t = tree_of(&b);
	c = wbxml_path(t, WB_IO_ITEM_OPERATIONS, WB_IO_FETCH, 0);
	for (int i = 0; i < 3; i++, c = c ? wbxml_next(c) : NULL) {
		CHECK(c != NULL);
		if (!c)
			break;
		CHECK_STR(wbxml_child_text(c, WB_IO_STORE), "Mailbox");
		CHECK_STR(wbxml_child_text(c, WB_AS_COLLECTION_ID), colls[i]);
		CHECK_STR(wbxml_child_text(c, WB_AS_SERVER_ID), sids[i]);
		CHECK_STR(wbxml_child_text(wbxml_child(wbxml_child(c, WB_IO_OPTIONS),
							WB_ASB_BODY_PREFERENCE),
					   WB_ASB_TYPE), "4");
	}
	CHECK(c == NULL);
	wbxml_free(t);

	buf_reset(&b);
	struct be_props p = { .mask = BE_PROP_READ | BE_PROP_FLAG, .read = true,
			      .flag = BE_FLAG_FLAGGED };
	eas_req_change(&b, "c", "k1", "9", &p);
	t = tree_of(&b);
	c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0);
	CHECK_STR(wbxml_child_text(c, WB_AS_SYNC_KEY), "k1");
	struct wbxml_node *ch = wbxml_path(c, WB_AS_COMMANDS, WB_AS_CHANGE, 0);
	CHECK_STR(wbxml_child_text(ch, WB_AS_SERVER_ID), "9");
	struct wbxml_node *app = wbxml_child(ch, WB_AS_APPLICATION_DATA);
	CHECK_STR(wbxml_child_text(app, WB_EM_READ), "1");
	CHECK_STR(wbxml_child_text(wbxml_child(app, WB_EM_FLAG), WB_EM_FLAG_STATUS), "2");
	wbxml_free(t);
	buf_reset(&b);
	p.mask = BE_PROP_FLAG;
	p.flag = BE_FLAG_NONE;
	eas_req_change(&b, "c", "k1", "9", &p);
	t = tree_of(&b);
	app = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION,
			 WB_AS_COMMANDS, WB_AS_CHANGE, WB_AS_APPLICATION_DATA, 0);
	CHECK(app && wbxml_child(app, WB_EM_FLAG) && !wbxml_child(app, WB_EM_FLAG)->child);
	CHECK(!wbxml_child(app, WB_EM_READ));
	wbxml_free(t);
	/* categories: one Category each, blanks trimmed; none clears them */
	buf_reset(&b);
	p.mask = BE_PROP_CATEGORIES;
	p.categories = "Red, Project X";
	eas_req_change(&b, "c", "k1", "9", &p);
	t = tree_of(&b);
	app = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION,
			 WB_AS_COMMANDS, WB_AS_CHANGE, WB_AS_APPLICATION_DATA, 0);
	struct wbxml_node *cat = wbxml_path(app, WB_EM_CATEGORIES, WB_EM_CATEGORY, 0);
	CHECK_STR(cat ? cat->text : NULL, "Red");
	cat = cat ? wbxml_next(cat) : NULL;
	CHECK_STR(cat ? cat->text : NULL, "Project X");
	CHECK(cat && !wbxml_next(cat));
	CHECK(!wbxml_child(app, WB_EM_FLAG));
	wbxml_free(t);
	buf_reset(&b);
	p.categories = "";
	eas_req_change(&b, "c", "k1", "9", &p);
	t = tree_of(&b);
	app = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION,
			 WB_AS_COMMANDS, WB_AS_CHANGE, WB_AS_APPLICATION_DATA, 0);
	CHECK(app && wbxml_child(app, WB_EM_CATEGORIES) && !wbxml_child(app, WB_EM_CATEGORIES)->child);
	wbxml_free(t);

	buf_reset(&b);
	eas_req_delete(&b, "c", "k2", "10", true);
	t = tree_of(&b);
	c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0);
	CHECK_STR(wbxml_child_text(c, WB_AS_DELETES_AS_MOVES), "1");
	CHECK_STR(wbxml_child_text(wbxml_path(c, WB_AS_COMMANDS, WB_AS_DELETE, 0),
				   WB_AS_SERVER_ID), "10");
	wbxml_free(t);

	buf_reset(&b);
	eas_req_move(&b, "src", "3", "dst");
	t = tree_of(&b);
	c = wbxml_path(t, WB_MV_MOVE_ITEMS, WB_MV_MOVE, 0);
	CHECK_STR(wbxml_child_text(c, WB_MV_SRC_MSG_ID), "3");
	CHECK_STR(wbxml_child_text(c, WB_MV_SRC_FLD_ID), "src");
	CHECK_STR(wbxml_child_text(c, WB_MV_DST_FLD_ID), "dst");
	wbxml_free(t);

	buf_reset(&b);
	eas_req_send_mail(&b, "tok-1", "Subject: x\r\n\r\n\0bin", 17, true);
	t = tree_of(&b);
	c = wbxml_child(t, WB_CM_SEND_MAIL);
	CHECK_STR(wbxml_child_text(c, WB_CM_CLIENT_ID), "tok-1");
	CHECK(wbxml_child(c, WB_CM_SAVE_IN_SENT_ITEMS) != NULL);
	struct wbxml_node *mime = wbxml_child(c, WB_CM_MIME);
	CHECK(mime && mime->len == 17 && !memcmp(mime->text, "Subject: x\r\n\r\n\0bin", 17));
	wbxml_free(t);

	buf_reset(&b);
	const char *fl[] = { "f1", "f2" };
	eas_req_ping(&b, 300, fl, 2);
	t = tree_of(&b);
	c = wbxml_child(t, WB_PING_PING);
	CHECK_STR(wbxml_child_text(c, WB_PING_HEARTBEAT_INTERVAL), "300");
	struct wbxml_node *f = wbxml_path(c, WB_PING_FOLDERS, WB_PING_FOLDER, 0);
	CHECK_STR(wbxml_child_text(f, WB_PING_ID), "f1");
	CHECK_STR(wbxml_child_text(wbxml_next(f), WB_PING_ID), "f2");
	CHECK_STR(wbxml_child_text(f, WB_PING_CLASS), "Email");
	wbxml_free(t);

	buf_reset(&b);
	eas_req_provision(&b, "123");
	t = tree_of(&b);
	c = wbxml_path(t, WB_PROV_PROVISION, WB_PROV_POLICIES, WB_PROV_POLICY, 0);
	CHECK_STR(wbxml_child_text(c, WB_PROV_POLICY_TYPE), "MS-EAS-Provisioning-WBXML");
	CHECK_STR(wbxml_child_text(c, WB_PROV_POLICY_KEY), "123");
	CHECK_STR(wbxml_child_text(c, WB_PROV_STATUS), "1");
	wbxml_free(t);

	buf_reset(&b);
	eas_req_folder_update(&b, "k", "id1", "0", "New name");
	t = tree_of(&b);
	c = wbxml_child(t, WB_FH_FOLDER_UPDATE);
	CHECK_STR(wbxml_child_text(c, WB_FH_SERVER_ID), "id1");
	CHECK_STR(wbxml_child_text(c, WB_FH_PARENT_ID), "0");
	CHECK_STR(wbxml_child_text(c, WB_FH_DISPLAY_NAME), "New name");
	wbxml_free(t);
	buf_free(&b);
}

/* ---- answers ---- */

static void test_folder_sync(void)
{
	struct buf b;
	struct wbxml_enc e;
	struct be_folder_batch fb;
	struct be_result r;

	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_STATUS, "1");
	wbxml_str(&e, WB_FH_SYNC_KEY, "key-2");
	wbxml_start(&e, WB_FH_CHANGES);
	wbxml_str(&e, WB_FH_COUNT, "3");
	wbxml_start(&e, WB_FH_ADD);
	wbxml_str(&e, WB_FH_SERVER_ID, "f1");
	wbxml_str(&e, WB_FH_PARENT_ID, "0");
	wbxml_str(&e, WB_FH_DISPLAY_NAME, "Inbox/with slash");
	wbxml_str(&e, WB_FH_TYPE, "2");
	wbxml_end(&e);
	wbxml_start(&e, WB_FH_UPDATE);
	wbxml_str(&e, WB_FH_SERVER_ID, "cal");
	wbxml_str(&e, WB_FH_PARENT_ID, "f1");
	wbxml_str(&e, WB_FH_DISPLAY_NAME, "Calendar");
	wbxml_str(&e, WB_FH_TYPE, "8");
	wbxml_end(&e);
	wbxml_start(&e, WB_FH_DELETE);
	wbxml_str(&e, WB_FH_SERVER_ID, "gone");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	CHECK(eas_parse_folder_sync(b.data, b.len, &fb, &r) == BE_OK);
	CHECK(fb.n == 3);
	if (fb.n == 3) {
		CHECK(fb.v[0].change == BE_CREATE);
		CHECK_STR(fb.v[0].id, "f1");
		CHECK_STR(fb.v[0].name, "Inbox/with slash");
		CHECK_STR(fb.v[0].parent_id, "0");
		CHECK_STR(fb.v[0].folder_class, "IPF.Note");
		CHECK(fb.v[1].change == BE_UPDATE);
		CHECK_STR(fb.v[1].folder_class, "IPF.Appointment");
		CHECK(fb.v[2].change == BE_DELETE);
		CHECK_STR(fb.v[2].id, "gone");
	}
	CHECK_STR(fb.new_state, "key-2");
	CHECK(!fb.more);
	be_folder_batch_free(&fb);
	char *ids[BE_SPECIAL_N];
	CHECK(eas_parse_special(b.data, b.len, ids, &r) == BE_OK);
	CHECK_STR(ids[BE_INBOX], "f1");
	CHECK(ids[BE_OUTBOX] == NULL && ids[BE_SENT] == NULL);
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);

	/* status 9: the key is refused */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_STATUS, "9");
	wbxml_end(&e);
	CHECK(eas_parse_folder_sync(b.data, b.len, &fb, &r) == BE_SYNC_INVALID);
	CHECK(fb.n == 0 && !fb.new_state);

	/* a change without a ServerId; no SyncKey */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_STATUS, "1");
	wbxml_str(&e, WB_FH_SYNC_KEY, "k");
	wbxml_start(&e, WB_FH_CHANGES);
	wbxml_start(&e, WB_FH_ADD);
	wbxml_str(&e, WB_FH_DISPLAY_NAME, "x");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_folder_sync(b.data, b.len, &fb, &r) == BE_PROTOCOL);
	CHECK(fb.n == 0);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_FH_FOLDER_SYNC);
	wbxml_str(&e, WB_FH_STATUS, "1");
	wbxml_end(&e);
	CHECK(eas_parse_folder_sync(b.data, b.len, &fb, &r) == BE_PROTOCOL);
	/* not WBXML at all */
	CHECK(eas_parse_folder_sync("<html>", 6, &fb, &r) == BE_PROTOCOL);
	CHECK(strstr(r.msg, "FolderSync") != NULL);
	buf_free(&b);

	/* SOGo's own answer */
	size_t n;
	char *sogo = corpus("01-foldersync", &n);
	CHECK(sogo && eas_parse_folder_sync(sogo, n, &fb, &r) == BE_OK);
	size_t mail = 0;
	for (size_t i = 0; i < fb.n; i++)
		mail += !strcmp(fb.v[i].folder_class, "IPF.Note");
	CHECK(fb.n == 9 || fb.n >= 9);
	CHECK(mail >= 6);
	be_folder_batch_free(&fb);
	CHECK(eas_parse_special(sogo, n, ids, &r) == BE_OK);
	CHECK(ids[BE_INBOX] && ids[BE_DRAFTS] && ids[BE_SENT] && ids[BE_DELETED]);
	CHECK(!ids[BE_OUTBOX]);  /* SOGo has none: the backend adds its own */
	for (int k = 0; k < BE_SPECIAL_N; k++)
		free(ids[k]);
	free(sogo);
}

static void email(struct wbxml_enc *e, unsigned cmd, const char *sid,
		  bool full)
{
	wbxml_start(e, cmd);
	wbxml_str(e, WB_AS_SERVER_ID, sid);
	wbxml_start(e, WB_AS_APPLICATION_DATA);
	if (full) {
		wbxml_str(e, WB_EM_SUBJECT, "Hello");
		wbxml_str(e, WB_EM_FROM, "\"A\" <a@example.test>");
		wbxml_str(e, WB_EM_DATE_RECEIVED, "2026-11-22T05:00:00.000Z");
		wbxml_str(e, WB_EM_MESSAGE_CLASS, "IPM.Note");
		wbxml_str(e, WB_EM_READ, "0");
		wbxml_str(e, WB_EM2_IS_DRAFT, "1");
		wbxml_start(e, WB_ASB_BODY);
		wbxml_str(e, WB_ASB_TYPE, "4");
		wbxml_str(e, WB_ASB_ESTIMATED_DATA_SIZE, "4321");
		/* the MIME's first bytes (MIMETruncation): a folded Message-ID */
		wbxml_str(e, WB_ASB_DATA, "From: a@example.test\r\nmessage-id:\r\n"
			  " <m1@example.test> \r\nSubject: Hello\r\n\r\nHi");
		wbxml_end(e);
		wbxml_start(e, WB_EM_CATEGORIES);
		wbxml_str(e, WB_EM_CATEGORY, "Red");
		wbxml_str(e, WB_EM_CATEGORY, "Blue");
		wbxml_end(e);
		wbxml_start(e, WB_EM_FLAG);
		wbxml_str(e, WB_EM_FLAG_STATUS, "2");
		wbxml_end(e);
	} else {
		wbxml_str(e, WB_EM_READ, "1");
	}
	wbxml_end(e);
	wbxml_end(e);
}

/* One Sync for several folders: the request carries each collection with
 * its key; the answer gives each its own outcome, and a folder it leaves
 * out (or an empty answer) has no changes. */
static void test_sync_many(void)
{
	struct buf b;
	struct wbxml_enc e;
	struct wbxml_node *t, *c;
	struct be_result r;
	const char *colls[] = { "a", "b", "c", "d" };
	const char *keys[] = { "ka", "kb", "kc", "kd" };

	buf_init(&b, 0);
	eas_req_sync_many(&b, colls, keys, 3, 40);
	t = tree_of(&b);
	c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0);
	for (size_t i = 0; i < 3; i++, c = c ? wbxml_next(c) : NULL) {
		CHECK(c != NULL);
		CHECK_STR(wbxml_child_text(c, WB_AS_COLLECTION_ID), colls[i]);
		CHECK_STR(wbxml_child_text(c, WB_AS_SYNC_KEY), keys[i]);
		CHECK_STR(wbxml_child_text(c, WB_AS_WINDOW_SIZE), "40");
		CHECK(wbxml_child(c, WB_AS_GET_CHANGES) != NULL);
	}
	CHECK(c == NULL);
	wbxml_free(t);

	/* a: two changes and more to come; b: left out; c: status 3;
	 * d: an id not asked for, ignored; a again: ignored */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_start(&e, WB_AS_COLLECTIONS);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "ka2");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "a");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_empty(&e, WB_AS_MORE_AVAILABLE);
	wbxml_start(&e, WB_AS_COMMANDS);
	email(&e, WB_AS_ADD, "1", true);
	wbxml_start(&e, WB_AS_DELETE);
	wbxml_str(&e, WB_AS_SERVER_ID, "2");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "0");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "c");
	wbxml_str(&e, WB_AS_STATUS, "3");
	wbxml_end(&e);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "x");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "zz");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_end(&e);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "ka3");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "a");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	struct be_sync_one v[3] = {
		{ .folder_id = "a", .state = "ka" },
		{ .folder_id = "b", .state = "kb" },
		{ .folder_id = "c", .state = "kc" },
	};
	CHECK(eas_parse_sync_many(b.data, b.len, v, 3, &r) == BE_OK);
	CHECK(v[0].r.status == BE_OK && v[0].out.n == 2 && v[0].out.more);
	CHECK_STR(v[0].out.new_state, "ka2");
	if (v[0].out.n == 2) {
		CHECK_STR(v[0].out.v[0].id, "a\t1");
		CHECK(v[0].out.v[1].change == BE_DELETE);
	}
	CHECK(v[1].r.status == BE_OK && v[1].out.n == 0 && !v[1].out.more);
	CHECK_STR(v[1].out.new_state, "kb");
	CHECK(v[2].r.status == BE_SYNC_INVALID && v[2].out.new_state == NULL);
	for (size_t i = 0; i < 3; i++)
		be_item_batch_free(&v[i].out);

	/* an empty answer: nothing changed anywhere */
	CHECK(eas_parse_sync_many("", 0, v, 2, &r) == BE_OK);
	CHECK_STR(v[0].out.new_state, "ka");
	CHECK_STR(v[1].out.new_state, "kb");
	CHECK(v[0].out.n == 0 && v[1].out.n == 0);
	for (size_t i = 0; i < 2; i++)
		be_item_batch_free(&v[i].out);

	/* a status at the top fails the call: no folder moves */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_str(&e, WB_AS_STATUS, "12");
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	CHECK(eas_parse_sync_many(b.data, b.len, v, 3, &r) == BE_NETWORK);
	for (size_t i = 0; i < 3; i++)
		CHECK(v[i].out.new_state == NULL && v[i].out.n == 0);
	/* truncated: a protocol error, no folder moves */
	CHECK(eas_parse_sync_many(b.data, b.len - 1, v, 3, &r) == BE_PROTOCOL);
	for (size_t i = 0; i < 3; i++)
		CHECK(v[i].out.new_state == NULL);
	buf_free(&b);
}

static void test_sync(void)
{
	struct buf b;
	struct wbxml_enc e;
	struct be_item_batch ib;
	struct be_result r;

	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_start(&e, WB_AS_COLLECTIONS);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "k2");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "c");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_empty(&e, WB_AS_MORE_AVAILABLE);
	wbxml_start(&e, WB_AS_COMMANDS);
	email(&e, WB_AS_ADD, "1", true);
	email(&e, WB_AS_CHANGE, "2", false);
	wbxml_start(&e, WB_AS_CHANGE);
	wbxml_str(&e, WB_AS_SERVER_ID, "3");
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	wbxml_empty(&e, WB_EM_FLAG);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_start(&e, WB_AS_DELETE);
	wbxml_str(&e, WB_AS_SERVER_ID, "4");
	wbxml_end(&e);
	wbxml_start(&e, WB_AS_SOFT_DELETE);
	wbxml_str(&e, WB_AS_SERVER_ID, "5");
	wbxml_end(&e);
	email(&e, WB_AS_CHANGE, "6", true);  /* with the body: edited */
	/* a Message-ID the truncation may have cut is not taken */
	wbxml_start(&e, WB_AS_ADD);
	wbxml_str(&e, WB_AS_SERVER_ID, "7");
	wbxml_start(&e, WB_AS_APPLICATION_DATA);
	wbxml_start(&e, WB_ASB_BODY);
	wbxml_str(&e, WB_ASB_TYPE, "4");
	wbxml_str(&e, WB_ASB_DATA, "Subject: x\r\nMessage-ID: <cut@exa");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(wbxml_enc_finish(&e) == 0);
	CHECK(eas_parse_sync(b.data, b.len, "c", &ib, &r) == BE_OK);
	CHECK(ib.n == 7 && ib.more);
	CHECK_STR(ib.new_state, "k2");
	if (ib.n == 7) {
		struct be_item *it = &ib.v[0];
		CHECK(it->change == BE_CREATE);
		CHECK_STR(it->id, "c\t1");
		CHECK_STR(it->subject, "Hello");
		CHECK_STR(it->from, "\"A\" <a@example.test>");
		CHECK_STR(it->item_class, "IPM.Note");
		CHECK(it->received == 1795323600);
		CHECK(it->is_read == 0);
		CHECK(it->size == 4321);
		CHECK(it->flag == BE_FLAG_FLAGGED);
		CHECK_STR(it->categories, "Red,Blue");
		CHECK(it->change_key == NULL);
		CHECK(ib.v[1].change == BE_READ_FLAG && ib.v[1].is_read == 1);
		CHECK(ib.v[1].subject == NULL && ib.v[1].flag == -1);
		CHECK(ib.v[2].change == BE_UPDATE && ib.v[2].flag == BE_FLAG_NONE);
		CHECK(ib.v[2].is_read == -1 && ib.v[2].size == -1);
		CHECK(ib.v[3].change == BE_DELETE);
		CHECK_STR(ib.v[3].id, "c\t4");
		CHECK(ib.v[4].change == BE_DELETE);
		/* only a Change with the body says the content changed */
		CHECK(it->is_draft == 1 && ib.v[1].is_draft == -1);
		CHECK(!it->content_changed && !ib.v[1].content_changed &&
		      !ib.v[2].content_changed);
		CHECK(ib.v[5].change == BE_UPDATE && ib.v[5].content_changed);
		CHECK_STR(it->message_id, "<m1@example.test>");
		CHECK(ib.v[1].message_id == NULL && ib.v[6].message_id == NULL);
	}
	be_item_batch_free(&ib);

	/* status 3 at the collection; status 12 at the top */
	static const struct { bool top; const char *st; enum be_status want; } t[] = {
		{ false, "3", BE_SYNC_INVALID }, { true, "12", BE_NETWORK },
		{ true, "4", BE_PROTOCOL }, { false, "8", BE_ITEM_GONE },
		{ true, "144", BE_AUTH },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&b);
		wbxml_enc_init(&e, &b);
		wbxml_start(&e, WB_AS_SYNC);
		if (t[i].top) {
			wbxml_str(&e, WB_AS_STATUS, t[i].st);
		} else {
			wbxml_start(&e, WB_AS_COLLECTIONS);
			wbxml_start(&e, WB_AS_COLLECTION);
			wbxml_str(&e, WB_AS_SYNC_KEY, "0");
			wbxml_str(&e, WB_AS_COLLECTION_ID, "c");
			wbxml_str(&e, WB_AS_STATUS, t[i].st);
			wbxml_end(&e);
			wbxml_end(&e);
		}
		wbxml_end(&e);
		CHECK(eas_parse_sync(b.data, b.len, "c", &ib, &r) == t[i].want);
		CHECK(ib.n == 0 && ib.new_state == NULL);
	}
	/* the collection asked for is missing */
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_start(&e, WB_AS_COLLECTIONS);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "k");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "other");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_sync(b.data, b.len, "c", &ib, &r) == BE_PROTOCOL);
	buf_free(&b);

	/* SOGo's answers: the key-0 answer, and three messages */
	size_t n;
	char *sogo = corpus("02-sync-start", &n);
	CHECK(eas_parse_sync(sogo, n, "mail%2F295eb10e2882026be87c000083ecc375",
			     &ib, &r) == BE_OK);
	CHECK(ib.n == 0);
	CHECK_STR(ib.new_state, "-1");
	be_item_batch_free(&ib);
	free(sogo);
	sogo = corpus("03-sync-items", &n);
	CHECK(eas_parse_sync(sogo, n, "mail%2F295eb10e2882026be87c000083ecc375",
			     &ib, &r) == BE_OK);
	CHECK(ib.n >= 1);
	for (size_t i = 0; i < ib.n; i++) {
		CHECK(ib.v[i].change == BE_CREATE);
		CHECK(ib.v[i].subject && ib.v[i].from && ib.v[i].received > 0);
		CHECK(ib.v[i].size > 0 && ib.v[i].is_read >= 0);
		CHECK(ib.v[i].flag == BE_FLAG_NONE);
	}
	be_item_batch_free(&ib);
	free(sogo);
}

/* The fetch stream: what reaches the sink, and done() per item. */
struct got {
	struct buf data[3];
	int done_st[3];
	int done_n;
};

static int g_sink(void *arg, size_t i, const void *p, size_t n)
{
	struct got *g = arg;
	buf_append(&g->data[i], p, n);
	return 0;
}

static void g_done(void *arg, size_t i, enum be_status st, const char *msg)
{
	struct got *g = arg;
	(void)msg;
	g->done_st[i] = (int)st;
	g->done_n++;
}

static void fetch_answer(struct buf *b, bool second_ok, bool stranger)
{
	struct wbxml_enc e;
	wbxml_enc_init(&e, b);
	wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
	wbxml_str(&e, WB_IO_STATUS, "1");
	wbxml_start(&e, WB_IO_RESPONSE);
	wbxml_start(&e, WB_IO_FETCH);
	wbxml_str(&e, WB_IO_STATUS, "1");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "c");
	wbxml_str(&e, WB_AS_SERVER_ID, stranger ? "99" : "1");
	wbxml_start(&e, WB_IO_PROPERTIES);
	wbxml_start(&e, WB_ASB_BODY);
	wbxml_str(&e, WB_ASB_TYPE, "4");
	wbxml_opaque(&e, WB_ASB_DATA, "Subject: one\r\n\r\nbody\0one", 24);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_start(&e, WB_IO_FETCH);
	wbxml_str(&e, WB_IO_STATUS, second_ok ? "1" : "6");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "c");
	wbxml_str(&e, WB_AS_SERVER_ID, "2");
	if (second_ok) {
		wbxml_start(&e, WB_IO_PROPERTIES);
		wbxml_start(&e, WB_ASB_BODY);
		wbxml_str(&e, WB_ASB_DATA, "Subject: two\r\n\r\nx");
		wbxml_end(&e);
		wbxml_end(&e);
	}
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
}

static void test_fetch(void)
{
	static const char *const ids[] = { "c\t1", "c\t2", "c\t3" };
	for (int variant = 0; variant < 3; variant++) {
		struct buf b;
		struct got g = { 0 };
		struct be_result r;
		for (int i = 0; i < 3; i++) {
			buf_init(&g.data[i], 0);
			g.done_st[i] = -1;
		}
		buf_init(&b, 0);
		fetch_answer(&b, variant == 0, variant == 2);
		struct eas_fetch *f = eas_fetch_new(ids, 3, g_sink, g_done, &g);
		/* in pieces of 5 bytes */
		int rc = 0;
		for (size_t at = 0; at < b.len && !rc; at += 5)
			rc = eas_fetch_feed(f, b.data + at,
					    b.len - at < 5 ? b.len - at : 5);
		enum be_status st = eas_fetch_finish(f, &r);
		eas_fetch_free(f);
		CHECK(g.done_n == 3);
		if (variant == 2) {
			/* a body for an item not asked for */
			CHECK(st == BE_PROTOCOL);
			CHECK(g.done_st[0] == BE_PROTOCOL);
		} else {
			CHECK(st == BE_OK);
			CHECK(g.done_st[0] == BE_OK);
			CHECK(g.data[0].len == 24 &&
			      !memcmp(g.data[0].data, "Subject: one\r\n\r\nbody\0one", 24));
			CHECK(g.done_st[1] == (variant == 0 ? BE_OK : BE_ITEM_GONE));
			if (variant == 0)
				CHECK_STR(g.data[1].data, "Subject: two\r\n\r\nx");
			/* never mentioned */
			CHECK(g.done_st[2] == BE_PROTOCOL);
		}
		for (int i = 0; i < 3; i++)
			buf_free(&g.data[i]);
		/* every truncation: each item reported once, no crash */
		for (size_t cut = 0; cut < b.len; cut += 7) {
			struct got h = { 0 };
			for (int i = 0; i < 3; i++)
				buf_init(&h.data[i], 0);
			f = eas_fetch_new(ids, 3, g_sink, g_done, &h);
			eas_fetch_feed(f, b.data, cut);
			eas_fetch_finish(f, &r);
			eas_fetch_free(f);
			CHECK(h.done_n == 3);
			for (int i = 0; i < 3; i++)
				buf_free(&h.data[i]);
		}
		buf_free(&b);
	}
	/* a batch answer whose Fetch elements name no item (the ids are
	 * optional): matched by position; a top-level failure with items
	 * not reported is a failure of the whole request */
	{
		struct buf b;
		struct wbxml_enc e;
		struct got g = { 0 };
		struct be_result r;
		for (int i = 0; i < 3; i++) {
			buf_init(&g.data[i], 0);
			g.done_st[i] = -1;
		}
		buf_init(&b, 0);
		wbxml_enc_init(&e, &b);
		wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
		wbxml_str(&e, WB_IO_STATUS, "1");
		wbxml_start(&e, WB_IO_RESPONSE);
		wbxml_start(&e, WB_IO_FETCH);
		wbxml_str(&e, WB_IO_STATUS, "6");
		wbxml_end(&e);
		wbxml_start(&e, WB_IO_FETCH);
		wbxml_str(&e, WB_IO_STATUS, "1");
		wbxml_start(&e, WB_IO_PROPERTIES);
		wbxml_start(&e, WB_ASB_BODY);
		wbxml_str(&e, WB_ASB_DATA, "Subject: two\r\n\r\nx");
		wbxml_end(&e);
		wbxml_end(&e);
		wbxml_end(&e);
		wbxml_start(&e, WB_IO_FETCH);
		wbxml_str(&e, WB_IO_STATUS, "14");
		wbxml_end(&e);
		wbxml_end(&e);
		wbxml_end(&e);
		struct eas_fetch *f = eas_fetch_new(ids, 3, g_sink, g_done, &g);
		CHECK(eas_fetch_feed(f, b.data, b.len) == 0);
		CHECK(!eas_fetch_failed_whole(f, &r));
		CHECK(eas_fetch_finish(f, &r) == BE_OK);
		eas_fetch_free(f);
		CHECK(g.done_n == 3);
		CHECK(g.done_st[0] == BE_ITEM_GONE);
		CHECK(g.done_st[1] == BE_OK);
		CHECK_STR(g.data[1].data, "Subject: two\r\n\r\nx");
		CHECK(g.done_st[2] == BE_REFUSED);
		for (int i = 0; i < 3; i++)
			buf_free(&g.data[i]);

		/* the whole request failed: nothing reported, the caller asks
		 * one by one */
		buf_reset(&b);
		wbxml_enc_init(&e, &b);
		wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
		wbxml_str(&e, WB_IO_STATUS, "3");
		wbxml_end(&e);
		struct got h = { 0 };
		f = eas_fetch_new(ids, 3, g_sink, g_done, &h);
		CHECK(eas_fetch_feed(f, b.data, b.len) == 0);
		CHECK(eas_fetch_failed_whole(f, &r) && r.status == BE_NETWORK);
		CHECK(h.done_n == 0 && !eas_fetch_reported(f, 0));
		eas_fetch_free(f);
		/* throttling is not: the next request would fare no better */
		buf_reset(&b);
		wbxml_enc_init(&e, &b);
		wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
		wbxml_str(&e, WB_IO_STATUS, "111");
		wbxml_end(&e);
		f = eas_fetch_new(ids, 3, g_sink, g_done, &h);
		CHECK(eas_fetch_feed(f, b.data, b.len) == 0);
		CHECK(!eas_fetch_failed_whole(f, &r));
		CHECK(eas_fetch_finish(f, &r) == BE_THROTTLED);
		CHECK(h.done_n == 3 && h.done_st[2] == BE_THROTTLED);
		eas_fetch_free(f);
		buf_free(&b);
	}
	/* "provision first": nothing reported until finish */
	{
		struct buf b;
		struct wbxml_enc e;
		struct got g = { 0 };
		struct be_result r;
		buf_init(&b, 0);
		wbxml_enc_init(&e, &b);
		wbxml_start(&e, WB_IO_ITEM_OPERATIONS);
		wbxml_str(&e, WB_IO_STATUS, "142");
		wbxml_end(&e);
		struct eas_fetch *f = eas_fetch_new(ids, 1, g_sink, g_done, &g);
		eas_fetch_feed(f, b.data, b.len);
		CHECK(eas_fetch_wants_provision(f));
		CHECK(g.done_n == 0);
		CHECK(eas_fetch_finish(f, &r) == BE_AUTH && eas_needs_provision(&r));
		CHECK(g.done_n == 1 && g.done_st[0] == BE_AUTH);
		eas_fetch_free(f);
		buf_free(&b);
	}
	/* SOGo's answer: the exact MIME of the message */
	size_t n;
	char *sogo = corpus("05-itemops", &n);
	static const char *const one[] = { "mail%2F295eb10e2882026be87c000083ecc375\t2" };
	struct got g = { 0 };
	struct be_result r;
	buf_init(&g.data[0], 0);
	struct eas_fetch *f = eas_fetch_new(one, 1, g_sink, g_done, &g);
	eas_fetch_feed(f, sogo, n);
	CHECK(eas_fetch_finish(f, &r) == BE_OK);
	eas_fetch_free(f);
	CHECK(g.done_n == 1 && g.done_st[0] == BE_OK);
	CHECK(g.data[0].len > 100 && !strncmp(g.data[0].data, "From: ", 6));
	CHECK(strstr(g.data[0].data, "\r\n\r\n") != NULL);
	buf_free(&g.data[0]);
	free(sogo);
}

static void test_small_answers(void)
{
	struct buf b;
	struct wbxml_enc e;
	struct be_result r;
	char *key, *id;

	/* Provision: a policy key; no policy; a refused policy */
	buf_init(&b, 0);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_PROV_PROVISION);
	wbxml_str(&e, WB_PROV_STATUS, "1");
	wbxml_start(&e, WB_PROV_POLICIES);
	wbxml_start(&e, WB_PROV_POLICY);
	wbxml_str(&e, WB_PROV_POLICY_TYPE, "MS-EAS-Provisioning-WBXML");
	wbxml_str(&e, WB_PROV_STATUS, "1");
	wbxml_str(&e, WB_PROV_POLICY_KEY, "3942919513");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_provision(b.data, b.len, &key, &r) == BE_OK);
	CHECK_STR(key, "3942919513");
	free(key);
	size_t n;
	char *sogo = corpus("06-provision-none", &n);
	CHECK(eas_parse_provision(sogo, n, &key, &r) == BE_OK && key == NULL);
	free(sogo);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_PROV_PROVISION);
	wbxml_str(&e, WB_PROV_STATUS, "1");
	wbxml_start(&e, WB_PROV_POLICIES);
	wbxml_start(&e, WB_PROV_POLICY);
	wbxml_str(&e, WB_PROV_STATUS, "3");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_provision(b.data, b.len, &key, &r) == BE_REFUSED && !key);

	/* Ping: SOGo's "changes in INBOX"; status 5 with the bound */
	struct eas_ping p;
	sogo = corpus("07-ping", &n);
	CHECK(eas_parse_ping(sogo, n, &p, &r) == BE_OK);
	CHECK(p.status == 2 && p.n_changed == 1);
	if (p.n_changed)
		CHECK_STR(p.changed[0], "mail%2F295eb10e2882026be87c000083ecc375");
	eas_ping_free(&p);
	free(sogo);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_PING_PING);
	wbxml_str(&e, WB_PING_STATUS, "5");
	wbxml_str(&e, WB_PING_HEARTBEAT_INTERVAL, "480");
	wbxml_end(&e);
	CHECK(eas_parse_ping(b.data, b.len, &p, &r) == BE_OK);
	CHECK(p.status == 5 && p.heartbeat_s == 480 && p.n_changed == 0);
	eas_ping_free(&p);

	/* MoveItems: SOGo's refusal of an unknown item; a success */
	sogo = corpus("11-move-bad", &n);
	CHECK(eas_parse_move(sogo, n, &id, &r) == BE_ITEM_GONE && !id);
	free(sogo);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_MV_MOVE_ITEMS);
	wbxml_start(&e, WB_MV_RESPONSE);
	wbxml_str(&e, WB_MV_SRC_MSG_ID, "1");
	wbxml_str(&e, WB_MV_STATUS, "3");
	wbxml_str(&e, WB_MV_DST_MSG_ID, "44");
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_move(b.data, b.len, &id, &r) == BE_OK);
	CHECK_STR(id, "44");
	free(id);

	/* Folder operations: SOGo's FolderCreate; a name taken */
	sogo = corpus("09-foldercreate", &n);
	CHECK(eas_parse_folder_op(sogo, n, "FolderCreate", &key, &id, &r) == BE_OK);
	CHECK(key && id && strlen(id) > 0);
	free(key);
	free(id);
	free(sogo);
	sogo = corpus("10-folderdelete", &n);
	CHECK(eas_parse_folder_op(sogo, n, "FolderDelete", &key, NULL, &r) == BE_OK);
	free(key);
	free(sogo);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_FH_FOLDER_CREATE);
	wbxml_str(&e, WB_FH_STATUS, "2");
	wbxml_end(&e);
	CHECK(eas_parse_folder_op(b.data, b.len, "FolderCreate", &key, &id, &r) == BE_EXISTS);
	CHECK(!key && !id);

	/* Sync write answers: SOGo's Change response; an empty answer;
	 * an item gone */
	sogo = corpus("12-sync-change", &n);
	CHECK(eas_parse_sync_write(sogo, n, &key, &r) == BE_OK && key);
	free(key);
	free(sogo);
	CHECK(eas_parse_sync_write("", 0, &key, &r) == BE_OK && !key);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_start(&e, WB_AS_COLLECTIONS);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "k9");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "c");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_start(&e, WB_AS_RESPONSES);
	wbxml_start(&e, WB_AS_CHANGE);
	wbxml_str(&e, WB_AS_SERVER_ID, "1");
	wbxml_str(&e, WB_AS_STATUS, "8");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	CHECK(eas_parse_sync_write(b.data, b.len, &key, &r) == BE_ITEM_GONE && !key);

	/* SendMail: empty = sent; a status = refused */
	CHECK(eas_parse_send_mail("", 0, &r) == BE_OK);
	buf_reset(&b);
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_CM_SEND_MAIL);
	wbxml_str(&e, WB_CM_STATUS, "120");
	wbxml_end(&e);
	CHECK(eas_parse_send_mail(b.data, b.len, &r) == BE_REFUSED);
	CHECK(strstr(r.msg, "submitted") != NULL);
	buf_free(&b);
}

static void test_drafts(void)
{
	struct eas_draft d;
	struct be_result r;
	const char *m1 = "From: a@x\r\nTo: Bob <bob@example.com>,\r\n carol@example.com\r\n"
			 "Subject: =?utf-8?q?caf=C3=A9?=\r\nBcc: dan@example.com\r\n"
			 "Content-Type: text/html; charset=utf-8\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n";
	CHECK(eas_draft_from_mime(m1, strlen(m1), &d, &r) == 0);
	CHECK_STR(d.to, "Bob <bob@example.com>, carol@example.com");
	CHECK_STR(d.subject, "=?utf-8?q?caf=C3=A9?=");
	CHECK_STR(d.bcc, "dan@example.com");
	CHECK(d.cc == NULL);
	CHECK(d.html);
	CHECK_STR(d.body, "<b>hi</b>");
	struct buf b;
	buf_init(&b, 0);
	eas_req_add_draft(&b, "drafts", "k5", "tok-9", &d);
	struct wbxml_node *t = tree_of(&b);
	struct wbxml_node *c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS,
					  WB_AS_COLLECTION, 0);
	CHECK_STR(wbxml_child_text(c, WB_AS_SYNC_KEY), "k5");
	CHECK_STR(wbxml_child_text(c, WB_AS_GET_CHANGES), "0");
	struct wbxml_node *add = wbxml_path(c, WB_AS_COMMANDS, WB_AS_ADD, 0);
	CHECK_STR(wbxml_child_text(add, WB_AS_CLIENT_ID), "tok-9");
	struct wbxml_node *app = wbxml_child(add, WB_AS_APPLICATION_DATA);
	CHECK_STR(wbxml_child_text(app, WB_EM2_BCC), "dan@example.com");
	CHECK_STR(wbxml_child_text(app, WB_EM2_IS_DRAFT), "1");
	CHECK_STR(wbxml_child_text(wbxml_child(app, WB_ASB_BODY), WB_ASB_TYPE), "2");
	CHECK_STR(wbxml_child_text(wbxml_child(app, WB_ASB_BODY), WB_ASB_DATA), "<b>hi</b>");
	wbxml_free(t);
	/* a draft rewritten: a Change of the same fields, no IsDraft */
	buf_reset(&b);
	eas_req_change_draft(&b, "drafts", "k6", "7", &d);
	t = tree_of(&b);
	c = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS, WB_AS_COLLECTION, 0);
	CHECK_STR(wbxml_child_text(c, WB_AS_SYNC_KEY), "k6");
	struct wbxml_node *chg = wbxml_path(c, WB_AS_COMMANDS, WB_AS_CHANGE, 0);
	CHECK_STR(wbxml_child_text(chg, WB_AS_SERVER_ID), "7");
	app = wbxml_child(chg, WB_AS_APPLICATION_DATA);
	CHECK_STR(wbxml_child_text(app, WB_EM2_BCC), "dan@example.com");
	CHECK(!wbxml_child(app, WB_EM2_IS_DRAFT));
	CHECK_STR(wbxml_child_text(wbxml_child(app, WB_ASB_BODY), WB_ASB_DATA), "<b>hi</b>");
	wbxml_free(t);
	eas_draft_free(&d);

	const char *m2 = "Subject: qp\nContent-Transfer-Encoding: quoted-printable\n\n"
			 "a=3Db soft=\nbreak =C3=A9\n";
	CHECK(eas_draft_from_mime(m2, strlen(m2), &d, &r) == 0);
	CHECK_STR(d.body, "a=b softbreak \xc3\xa9\n");
	CHECK(!d.html && !d.to);
	eas_draft_free(&d);
	const char *m3 = "Subject: att\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x--\r\n";
	CHECK(eas_draft_from_mime(m3, strlen(m3), &d, &r) == -1 && r.status == BE_UNSUPPORTED);
	CHECK(strstr(r.msg, "multipart/mixed") != NULL);
	CHECK(eas_draft_from_mime("", 0, &d, &r) == 0 && d.body && !*d.body);
	eas_draft_free(&d);

	/* the answer: the new ServerId */
	buf_reset(&b);
	struct wbxml_enc e;
	wbxml_enc_init(&e, &b);
	wbxml_start(&e, WB_AS_SYNC);
	wbxml_start(&e, WB_AS_COLLECTIONS);
	wbxml_start(&e, WB_AS_COLLECTION);
	wbxml_str(&e, WB_AS_SYNC_KEY, "k6");
	wbxml_str(&e, WB_AS_COLLECTION_ID, "drafts");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_start(&e, WB_AS_RESPONSES);
	wbxml_start(&e, WB_AS_ADD);
	wbxml_str(&e, WB_AS_CLIENT_ID, "tok-9");
	wbxml_str(&e, WB_AS_SERVER_ID, "drafts:7");
	wbxml_str(&e, WB_AS_STATUS, "1");
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	wbxml_end(&e);
	char *key, *sid;
	CHECK(eas_parse_sync_add(b.data, b.len, &key, &sid, &r) == BE_OK);
	CHECK_STR(key, "k6");
	CHECK_STR(sid, "drafts:7");
	free(key);
	free(sid);
	CHECK(eas_parse_sync_add("", 0, &key, &sid, &r) == BE_PROTOCOL && !sid);
	buf_free(&b);
}

/* The key chains: a key replaced by our own write reads as the newest. */
static void test_keys(void)
{
	eas_key_note(NULL, "dev", "c", NULL, "k1", false);
	char *k = eas_key_latest(NULL, "dev", "c");
	CHECK_STR(k, "k1");
	free(k);
	eas_key_note(NULL, "dev", "c", "k1", "k2", true);
	k = eas_key_for_read(NULL, "dev", "c", "k1");
	CHECK_STR(k, "k2");
	free(k);
	k = eas_key_for_read(NULL, "dev", "c", "k0");
	CHECK_STR(k, "k0");
	free(k);
	k = eas_key_for_read(NULL, "other", "c", "k1");
	CHECK_STR(k, "k1");
	free(k);
	eas_key_note(NULL, "dev", "c", NULL, NULL, false);
	CHECK(eas_key_latest(NULL, "dev", "c") == NULL);
	eas_keys_free_all();
	eas_folders_free_all();
}

/* The chains belong to an account (one per mount), not to the process:
 * two accounts, and the default one, keep theirs apart. */
static void test_accounts(void)
{
	struct be_account *a = eas_backend.account_new(NULL);
	struct be_account *b = eas_backend.account_new(NULL);
	eas_key_note(a, "dev", "c", NULL, "a1", false);
	eas_key_note(a, "dev", "c", "a1", "a2", true);
	char *k = eas_key_latest(a, "dev", "c");
	CHECK_STR(k, "a2");
	free(k);
	CHECK(eas_key_latest(b, "dev", "c") == NULL);
	CHECK(eas_key_latest(NULL, "dev", "c") == NULL);
	k = eas_key_for_read(b, "dev", "c", "a1");
	CHECK_STR(k, "a1");  /* superseded in a only */
	free(k);
	k = eas_key_for_read(a, "dev", "c", "a1");
	CHECK_STR(k, "a2");
	free(k);
	eas_backend.account_free(a);
	eas_backend.account_free(b);
}

int main(void)
{
	test_versions_ids_status();
	test_requests();
	test_folder_sync();
	test_sync();
	test_sync_many();
	test_fetch();
	test_small_answers();
	test_drafts();
	test_keys();
	test_accounts();
	return check_done("test_eas");
}

/*
 * test_ews_events.c - the byte-level half of EWS notifications
 * (backend/ews/ews_events.c): the Subscribe / GetStreamingEvents /
 * GetEvents / Unsubscribe requests against the schema's element order; the
 * stream splitter (several envelopes in one piece, one envelope cut at
 * every boundary, byte by byte, markup that looks like an end, caps,
 * malformed streams); the events parser on canned envelopes (every event
 * type, several notifications, keep-alive, Closed, errors).
 */
#include "backend/backend.h"
#include "backend/ews/ews.h"
#include "backend/xml.h"
#include "ews_canned.h"
#include "test_ews_util.h"

#include <stdbool.h>
#include <strings.h>

/* ---- requests ---- */

/* The element structure under n: "m:Name(t:Child t:Child ...)", children
 * in document order, with m: and t: for the two EWS namespaces. */
static void shape(const xmlNode *n, struct buf *out)
{
	const char *uri = n->ns ? (const char *)n->ns->href : "";
	buf_puts(out, !strcmp(uri, EWS_NS_M) ? "m:" : !strcmp(uri, EWS_NS_T) ? "t:"
		 : "?:");
	buf_puts(out, (const char *)n->name);
	const xmlNode *c = xml_child(n, NULL, NULL);
	if (!c)
		return;
	buf_puts(out, "(");
	for (bool first = true; c; c = xml_next(c, NULL, NULL), first = false) {
		if (!first)
			buf_puts(out, " ");
		shape(c, out);
	}
	buf_puts(out, ")");
}

/* The operation inside soap:Body of a request, its shape in *sh. */
static xmlNode *request_op(const struct buf *b, xmlDoc **doc, struct buf *sh)
{
	xmlNode *op = request_op_v(b, doc, NULL);
	buf_reset(sh);
	if (op)
		shape(op, sh);
	return op;
}

static char *text_of(const xmlNode *n)
{
	char *s = NULL;
	if (n)
		xml_text(n, 1 << 20, &s);
	return s;
}

#define CHECK_OWNED(expr, want) do { \
	char *s_ = (expr); \
	CHECK_STR(s_, want); \
	free(s_); \
} while (0)

#define EVENT_TYPES "t:EventTypes(t:EventType t:EventType t:EventType " \
	"t:EventType t:EventType t:EventType)"

static void test_requests(void)
{
	struct buf b, sh;
	xmlDoc *doc;
	xmlNode *op;
	const char *ids[] = { "F1", "id\"<&>" };

	buf_init(&sh, 0);
	case_begin("Subscribe, streaming: FolderIds then EventTypes");
	buf_init(&b, 0);
	ews_req_subscribe(&b, EWS_VERSION_DEFAULT, ids, 2, true, 10);
	op = request_op(&b, &doc, &sh);
	CHECK_STR(sh.data, "m:Subscribe(m:StreamingSubscriptionRequest("
		  "t:FolderIds(t:FolderId t:FolderId) " EVENT_TYPES "))");
	xmlNode *fids = xml_child(xml_child(op, EWS_NS_M,
					    "StreamingSubscriptionRequest"),
				  EWS_NS_T, "FolderIds");
	char *id = NULL;
	xml_attr(xml_next(xml_child(fids, EWS_NS_T, "FolderId"), EWS_NS_T,
			  "FolderId"), "Id", 100, &id);
	CHECK_OWNED(id, "id\"<&>");
	struct buf types;
	buf_init(&types, 0);
	for (xmlNode *t = xml_child(xml_child(xml_child(op, EWS_NS_M,
		     "StreamingSubscriptionRequest"), EWS_NS_T, "EventTypes"),
				    EWS_NS_T, "EventType");
	     t; t = xml_next(t, EWS_NS_T, "EventType")) {
		char *v = text_of(t);
		buf_puts(&types, v);
		buf_puts(&types, " ");
		free(v);
	}
	CHECK_STR(types.data, "NewMailEvent CreatedEvent DeletedEvent "
		  "ModifiedEvent MovedEvent CopiedEvent ");
	buf_free(&types);
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();

	case_begin("Subscribe, pull: Timeout after EventTypes, clamped 1..1440");
	static const struct { unsigned in; const char *out; } t[] = {
		{ 10, "10" }, { 0, "1" }, { 1440, "1440" }, { 99999, "1440" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_init(&b, 0);
		ews_req_subscribe(&b, "Exchange2010", ids, 1, false, t[i].in);
		op = request_op(&b, &doc, &sh);
		CHECK_STR(sh.data, "m:Subscribe(m:PullSubscriptionRequest("
			  "t:FolderIds(t:FolderId) " EVENT_TYPES " t:Timeout))");
		CHECK_OWNED(text_of(xml_child(xml_child(op, EWS_NS_M,
			"PullSubscriptionRequest"), EWS_NS_T, "Timeout")),
			t[i].out);
		CHECK_CONTAINS(b.data, "Version=\"Exchange2010\"");
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("GetStreamingEvents: SubscriptionIds, ConnectionTimeout 1..30");
	static const struct { unsigned in; const char *out; } m[] = {
		{ 0, "1" }, { 1, "1" }, { 29, "29" }, { 30, "30" }, { 31, "30" },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		buf_init(&b, 0);
		ews_req_get_streaming_events(&b, EWS_VERSION_DEFAULT, "S&1",
					     m[i].in);
		op = request_op(&b, &doc, &sh);
		CHECK_STR(sh.data, "m:GetStreamingEvents(m:SubscriptionIds("
			  "t:SubscriptionId) m:ConnectionTimeout)");
		CHECK_OWNED(text_of(xml_child(xml_child(op, EWS_NS_M,
			"SubscriptionIds"), EWS_NS_T, "SubscriptionId")), "S&1");
		CHECK_OWNED(text_of(xml_child(op, EWS_NS_M, "ConnectionTimeout")),
			    m[i].out);
		xmlFreeDoc(doc);
		buf_free(&b);
	}
	case_end();

	case_begin("GetEvents and Unsubscribe");
	buf_init(&b, 0);
	ews_req_get_events(&b, EWS_VERSION_DEFAULT, "P<1", "AAAA+/=");
	op = request_op(&b, &doc, &sh);
	CHECK_STR(sh.data, "m:GetEvents(m:SubscriptionId m:Watermark)");
	CHECK_OWNED(text_of(xml_child(op, EWS_NS_M, "SubscriptionId")), "P<1");
	CHECK_OWNED(text_of(xml_child(op, EWS_NS_M, "Watermark")), "AAAA+/=");
	xmlFreeDoc(doc);
	buf_free(&b);
	buf_init(&b, 0);
	ews_req_unsubscribe(&b, EWS_VERSION_DEFAULT, "S1");
	op = request_op(&b, &doc, &sh);
	CHECK_STR(sh.data, "m:Unsubscribe(m:SubscriptionId)");
	xmlFreeDoc(doc);
	buf_free(&b);
	case_end();
	buf_free(&sh);
}

/* ---- the splitter ---- */

struct envs {
	struct buf all;   /* every envelope, each followed by "|" */
	int n;
	int stop_after;   /* env() returns -1 at this envelope (0 never) */
};

static int collect(void *arg, const char *d, size_t len)
{
	struct envs *e = arg;
	buf_append(&e->all, d, len);
	buf_puts(&e->all, "|");
	e->n++;
	return e->stop_after && e->n == e->stop_after ? -1 : 0;
}

/* Feed in pieces of `step` bytes (0 = whole); returns feed's last result. */
static int split(const char *s, size_t len, size_t step, size_t cap,
		 struct envs *e, bool *partial, char *err, size_t errlen)
{
	struct ews_stream *es = ews_stream_new(cap);
	int rc = 0;
	buf_init(&e->all, 0);
	e->n = 0;
	for (size_t at = 0; at < len && !rc;) {
		size_t k = step && step < len - at ? step : len - at;
		rc = ews_stream_feed(es, s + at, k, collect, e);
		at += k;
	}
	if (partial)
		*partial = ews_stream_partial(es);
	if (err)
		snprintf(err, errlen, "%s", ews_stream_error(es));
	ews_stream_free(es);
	return rc;
}

static void test_splitter(void)
{
	struct envs e = { 0 };
	char err[128];
	bool partial;

	case_begin("splitter: envelopes with declarations, BOM, comments between");
	const char *s = "\xef\xbb\xbf" XMLDECL "\r\n" KEEPALIVE "\n  <!-- hi -->"
			XMLDECL CLOSED "\n";
	CHECK_INT(split(s, strlen(s), 0, 4096, &e, &partial, err, sizeof(err)), 0);
	CHECK_INT(e.n, 2);
	CHECK_STR(e.all.data, KEEPALIVE "|" CLOSED "|");
	CHECK(!partial);
	buf_free(&e.all);
	case_end();

	case_begin("splitter: the same envelopes at every cut and byte by byte");
	const char *two = XMLDECL NOTIF("S", ITEM_EV("CreatedEvent", "I1", "F1"))
			  " " KEEPALIVE;
	size_t n = strlen(two);
	for (size_t cut = 0; cut <= n; cut++) {
		struct ews_stream *es = ews_stream_new(4096);
		buf_init(&e.all, 0);
		e.n = 0;
		CHECK(ews_stream_feed(es, two, cut, collect, &e) == 0);
		CHECK(ews_stream_feed(es, two + cut, n - cut, collect, &e) == 0);
		CHECK(!ews_stream_partial(es));
		if (e.n != 2 || strcmp(e.all.data,
			NOTIF("S", ITEM_EV("CreatedEvent", "I1", "F1")) "|"
			KEEPALIVE "|"))
			CHECK(!"cut changed the envelopes");
		ews_stream_free(es);
		buf_free(&e.all);
	}
	for (size_t step = 1; step < 8; step++) {
		CHECK_INT(split(two, n, step, 4096, &e, &partial, NULL, 0), 0);
		CHECK_INT(e.n, 2);
		buf_free(&e.all);
	}
	case_end();

	case_begin("splitter: '>' in attributes, CDATA, comments, PIs, empty root");
	const char *tricky =
		"<s:Envelope xmlns:s=\"" NS_SOAP "\" a='>' b=\"/>\"><s:Body x=\"'\">"
		"<![CDATA[</s:Envelope>]]><!-- </s:Envelope> --><?pi </s:Envelope>?>"
		"<e/><e a=\"/\"></e></s:Body></s:Envelope>"
		"<Envelope xmlns=\"" NS_SOAP "\"/>";
	CHECK_INT(split(tricky, strlen(tricky), 3, 4096, &e, NULL, NULL, 0), 0);
	CHECK_INT(e.n, 2);
	CHECK_CONTAINS(e.all.data, "</s:Body></s:Envelope>|<Envelope xmlns");
	buf_free(&e.all);
	case_end();

	case_begin("splitter: a partial envelope is held and reported");
	CHECK_INT(split(KEEPALIVE, 40, 7, 4096, &e, &partial, NULL, 0), 0);
	CHECK_INT(e.n, 0);
	CHECK(partial);
	buf_free(&e.all);
	CHECK_INT(split(XMLDECL "<!-- x", 26, 0, 4096, &e, &partial, NULL, 0), 0);
	CHECK(!partial);
	buf_free(&e.all);
	case_end();

	case_begin("splitter: malformed streams");
	static const struct { const char *in; const char *err; } bad[] = {
		{ "garbage", "text between envelopes" },
		{ KEEPALIVE "x", "text between envelopes" },
		{ "</Envelope>", "end tag outside an envelope" },
		{ "<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", "document type declaration" },
		{ "<![CDATA[x]]>", "document type declaration" },
		{ "<a><!x></a>", "document type declaration" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (size_t step = 0; step < 3; step++) {
			CHECK_INT(split(bad[i].in, strlen(bad[i].in), step, 4096,
					&e, NULL, err, sizeof(err)), -1);
			CHECK_CONTAINS(err, bad[i].err);
			buf_free(&e.all);
		}
	}
	case_end();

	case_begin("splitter: the cap, whatever the pieces");
	const char *big = KEEPALIVE;
	size_t kl = strlen(KEEPALIVE);
	for (size_t step = 0; step < 4; step++) {
		/* exactly the cap: fine; one byte less: refused */
		CHECK_INT(split(big, kl, step, kl, &e, NULL, err, sizeof(err)), 0);
		CHECK_INT(e.n, 1);
		buf_free(&e.all);
		CHECK_INT(split(big, kl, step, kl - 1, &e, NULL, err,
				sizeof(err)), -1);
		CHECK_INT(e.n, 0);
		CHECK_CONTAINS(err, "envelope larger than");
		buf_free(&e.all);
	}
	/* what lies between envelopes does not count, but a comment does */
	struct buf ws;
	buf_init(&ws, 0);
	for (int i = 0; i < 1000; i++)
		buf_puts(&ws, " \r\n");
	buf_puts(&ws, KEEPALIVE);
	CHECK_INT(split(ws.data, ws.len, 0, kl, &e, NULL, NULL, 0), 0);
	CHECK_INT(e.n, 1);
	buf_free(&e.all);
	buf_reset(&ws);
	buf_puts(&ws, "<!--");
	for (int i = 0; i < 1000; i++)
		buf_puts(&ws, "x");
	CHECK_INT(split(ws.data, ws.len, 10, 500, &e, NULL, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, "envelope larger than 500 bytes");
	buf_free(&e.all);
	buf_free(&ws);
	case_end();

	case_begin("splitter: env() stops it");
	e.stop_after = 1;
	CHECK_INT(split(two, n, 0, 4096, &e, NULL, err, sizeof(err)), -1);
	CHECK_INT(e.n, 1);
	CHECK_STR(err, "");
	e.stop_after = 0;
	buf_free(&e.all);
	case_end();
}

/* ---- the events parser ---- */

static char *events_line(const struct ews_events *e)
{
	struct buf b;
	buf_init(&b, 0);
	struct be_moved mv[16];
	size_t nm = e->n_moved < 16 ? e->n_moved : 16;
	for (size_t i = 0; i < nm; i++) {
		mv[i].old_id = e->moved[i].old_id;
		mv[i].old_folder_id = e->moved[i].old_folder_id;
		mv[i].new_id = e->moved[i].new_id;
		mv[i].new_folder_id = e->moved[i].new_folder_id;
	}
	batch_line(&b, (const char *const *)e->folders, e->n_folders,
		   e->hierarchy, e->lost, mv, nm);
	return b.data;
}

static enum be_status parse(const char *s, struct ews_events *e,
			    struct be_result *r)
{
	return ews_parse_events(s, strlen(s), e, r);
}

static void test_parser(void)
{
	struct ews_events e;
	struct be_result r;

	case_begin("events: every type collapsed; watermark; each folder once");
	const char *all = NOTIF("S",
		ITEM_EV("NewMailEvent", "I1", "Inbox")
		ITEM_EV("CreatedEvent", "I1", "Inbox")
		ITEM_EV("ModifiedEvent", "I2", "Drafts")
		ITEM_EV("DeletedEvent", "I3", "Trash")
		ITEM_MC("MovedEvent", "I4n", "Archive", "I4", "Inbox")
		ITEM_MC("CopiedEvent", "I5n", "Copies", "I5", "Src")
		"<t:StatusEvent><t:Watermark>W9</t:Watermark></t:StatusEvent>"
		"<t:FreeBusyChangedEvent>" TS "<t:ItemId Id=\"C1\"/>"
		"<t:ParentFolderId Id=\"Calendar\"/></t:FreeBusyChangedEvent>"
		"<t:FutureEvent><t:Whatever/></t:FutureEvent>");
	CHECK_INT(parse(all, &e, &r), BE_OK);
	CHECK_OWNED(events_line(&e),
		    "f=Inbox,Drafts,Trash,Archive,Copies,Src m=I4@Inbox>I4n@Archive");
	CHECK_INT(e.n_events, 9);
	CHECK_INT(e.conn, EWS_CONN_OK);
	CHECK_STR(e.watermark, "W9");
	CHECK(!e.more && !e.hierarchy && !e.lost);
	ews_events_free(&e);
	case_end();

	case_begin("events: folder events are hierarchy changes");
	static const char *const kinds[] = { "CreatedEvent", "DeletedEvent",
		"ModifiedEvent", "MovedEvent", "CopiedEvent" };
	for (size_t i = 0; i < 5; i++) {
		char env[2048];
		snprintf(env, sizeof(env), SE_OPEN "<m:Notifications>"
			 "<m:Notification><t:SubscriptionId>S</t:SubscriptionId>"
			 "<t:%s>" TS "<t:FolderId Id=\"New\"/><t:ParentFolderId "
			 "Id=\"Inbox\"/>%s</t:%s></m:Notification></m:Notifications>"
			 SE_CLOSE, kinds[i], i >= 3 ? "<t:OldFolderId Id=\"O\"/>"
			 "<t:OldParentFolderId Id=\"P\"/>" : i == 2
			 ? "<t:UnreadCount>3</t:UnreadCount>" : "", kinds[i]);
		CHECK_INT(parse(env, &e, &r), BE_OK);
		CHECK_OWNED(events_line(&e), "H f=");
		CHECK_INT(e.conn, EWS_CONN_NONE);
		ews_events_free(&e);
	}
	case_end();

	case_begin("events: several notifications, t: Notification, prefixes");
	const char *several =
		"<soap:Envelope xmlns:soap=\"" NS_SOAP "\"><soap:Body>"
		"<GetStreamingEventsResponse xmlns=\"" NS_M "\"><ResponseMessages>"
		"<GetStreamingEventsResponseMessage ResponseClass=\"Success\">"
		"<ResponseCode>NoError</ResponseCode><Notifications>"
		"<Notification><SubscriptionId xmlns=\"" NS_T "\">S</SubscriptionId>"
		"<x:CreatedEvent xmlns:x=\"" NS_T "\">" "<x:ItemId Id=\"A\"/>"
		"<x:ParentFolderId Id=\"F1\"/></x:CreatedEvent></Notification>"
		"<t:Notification xmlns:t=\"" NS_T "\"><t:DeletedEvent><t:ItemId Id=\"B\"/>"
		"<t:ParentFolderId Id=\"F2\"/></t:DeletedEvent><t:DeletedEvent>"
		"<t:ItemId Id=\"C\"/><t:ParentFolderId Id=\"F1\"/></t:DeletedEvent>"
		"</t:Notification></Notifications>"
		"<ConnectionStatus> Closed </ConnectionStatus>"
		"</GetStreamingEventsResponseMessage></ResponseMessages>"
		"</GetStreamingEventsResponse></soap:Body></soap:Envelope>";
	CHECK_INT(parse(several, &e, &r), BE_OK);
	CHECK_OWNED(events_line(&e), "f=F1,F2");
	CHECK_INT(e.conn, EWS_CONN_CLOSED);
	CHECK_INT(e.n_events, 3);
	ews_events_free(&e);
	/* events in another namespace are not ours */
	const char *foreign = NOTIF("S", "<x:CreatedEvent xmlns:x=\"urn:x\">"
		"<x:ItemId Id=\"A\"/><x:ParentFolderId Id=\"F\"/></x:CreatedEvent>");
	CHECK_INT(parse(foreign, &e, &r), BE_OK);
	CHECK_OWNED(events_line(&e), "f=");
	ews_events_free(&e);
	case_end();

	case_begin("events: keep-alive and Closed carry nothing");
	CHECK_INT(parse(KEEPALIVE, &e, &r), BE_OK);
	CHECK(!ews_events_any(&e));
	CHECK_INT(e.conn, EWS_CONN_OK);
	ews_events_free(&e);
	CHECK_INT(parse(CLOSED, &e, &r), BE_OK);
	CHECK(!ews_events_any(&e));
	CHECK_INT(e.conn, EWS_CONN_CLOSED);
	ews_events_free(&e);
	case_end();

	case_begin("events: GetEvents answer, MoreEvents, last watermark");
	const char *ge = GE("true", "W0", PULL_EV("CreatedEvent", "W1", "I", "F")
			    STATUS_EV("W2"));
	CHECK_INT(parse(ge, &e, &r), BE_OK);
	CHECK(e.more);
	CHECK_STR(e.watermark, "W2");
	CHECK_OWNED(events_line(&e), "f=F");
	ews_events_free(&e);
	case_end();

	case_begin("events: errors graded through the table");
	static const struct { const char *in; enum be_status st;
			      const char *msg; } errs[] = {
		{ SE_ERROR("ErrorSubscriptionNotFound"), BE_SYNC_INVALID,
		  "ErrorSubscriptionNotFound: gone" },
		{ SE_ERROR("ErrorSomethingNew"), BE_SYNC_INVALID, "ErrorSomethingNew" },
		{ GE_ERR("ErrorInvalidWatermark"), BE_SYNC_INVALID, "ErrorInvalidWatermark" },
		{ GE_ERR("ErrorExpiredSubscription"), BE_SYNC_INVALID, "Expired" },
		{ GE_ERR("ErrorReadEventsFailed"), BE_SYNC_INVALID, "ReadEvents" },
		{ GE_ERR("ErrorMissedNotificationEvents"), BE_SYNC_INVALID, "Missed" },
		{ GE_ERR("ErrorServerBusy"), BE_THROTTLED, "ErrorServerBusy" },
		{ SE_OPEN "<m:ErrorSubscriptionIds><m:ErrorSubscriptionId>S"
		  "</m:ErrorSubscriptionId></m:ErrorSubscriptionIds>" SE_CLOSE,
		  BE_SYNC_INVALID, "ErrorSubscriptionIds" },
		{ NOTIF("S", "<t:CreatedEvent><t:ItemId Id=\"I\"/></t:CreatedEvent>"),
		  BE_PROTOCOL, "CreatedEvent of an item without ParentFolderId" },
		{ NOTIF("S", ITEM_EV("MovedEvent", "I", "F")), BE_PROTOCOL,
		  "without OldParentFolderId" },
		{ NOTIF("S", "<t:DeletedEvent>" TS "</t:DeletedEvent>"), BE_PROTOCOL,
		  "DeletedEvent without ItemId or FolderId" },
		{ NOTIF("S", ITEM_EV("CreatedEvent", "", "F")), BE_PROTOCOL,
		  "ItemId without Id" },
		{ SE_OPEN "<m:ConnectionStatus>Maybe</m:ConnectionStatus>" SE_CLOSE,
		  BE_PROTOCOL, "bad ConnectionStatus 'Maybe'" },
		{ GE("perhaps", "W", ""), BE_PROTOCOL, "bad MoreEvents" },
		{ "<Envelope xmlns=\"" NS_SOAP "\"><Body/></Envelope>", BE_PROTOCOL,
		  "no response message" },
		{ "<x/>", BE_PROTOCOL, "not a SOAP envelope" },
		{ "<Envelope xmlns=\"" NS_SOAP "\">", BE_PROTOCOL, "malformed XML" },
	};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		CHECK_INT(parse(errs[i].in, &e, &r), errs[i].st);
		CHECK_CONTAINS(r.msg, errs[i].msg);
		CHECK(e.n_folders == 0 && e.folders == NULL && !e.watermark);
	}
	size_t len;
	char *fault = data_file("fault_busy.xml", &len);
	CHECK_INT(ews_parse_events(fault, len, &e, &r), BE_THROTTLED);
	CHECK_INT(r.retry_after_ms, 5000);
	free(fault);
	/* an id over the cap */
	struct buf huge;
	buf_init(&huge, 0);
	buf_puts(&huge, SE_OPEN "<m:Notifications><m:Notification>"
		 "<t:CreatedEvent><t:ItemId Id=\"");
	for (int i = 0; i <= EWS_ID_MAX; i++)
		buf_puts(&huge, "A");
	buf_puts(&huge, "\"/><t:ParentFolderId Id=\"F\"/></t:CreatedEvent>"
		 "</m:Notification></m:Notifications>" SE_CLOSE);
	CHECK_INT(parse(huge.data, &e, &r), BE_PROTOCOL);
	CHECK_CONTAINS(r.msg, "ItemId Id longer than 4096 bytes");
	buf_free(&huge);
	case_end();

	case_begin("events: more folders than the cap is 'sync everything'");
	struct buf many;
	buf_init(&many, 0);
	buf_puts(&many, SE_OPEN "<m:Notifications><m:Notification>");
	for (int i = 0; i < EWS_EVENTS_FOLDERS_MAX + 5; i++)
		buf_printf(&many, "<t:CreatedEvent><t:ItemId Id=\"I\"/>"
			   "<t:ParentFolderId Id=\"F%d\"/></t:CreatedEvent>", i);
	buf_puts(&many, "</m:Notification></m:Notifications>" SE_CLOSE);
	CHECK_INT(parse(many.data, &e, &r), BE_OK);
	CHECK_INT(e.n_folders, EWS_EVENTS_FOLDERS_MAX);
	CHECK(e.lost);
	ews_events_free(&e);
	buf_free(&many);
	case_end();

	case_begin("events: merge keeps each folder once");
	struct ews_events a, b;
	CHECK_INT(parse(NOTIF("S", ITEM_EV("CreatedEvent", "I", "F1")
				   ITEM_MC("MovedEvent", "N", "F2", "O", "F1")),
			&a, &r), BE_OK);
	CHECK_INT(parse(NOTIF("S", ITEM_EV("CreatedEvent", "I", "F3")
				   FOLDER_EV("CreatedEvent", "X", "F3")
				   ITEM_EV("CreatedEvent", "I", "F2")), &b, &r),
		  BE_OK);
	ews_events_merge(&a, &b);
	CHECK_OWNED(events_line(&a), "H f=F1,F2,F3 m=O@F1>N@F2");
	ews_events_free(&a);
	ews_events_free(&b);
	case_end();

	case_begin("Subscribe answers");
	char *sub, *wm;
	const char *s1 = SUB_OK(" S1 ");
	CHECK_INT(ews_parse_subscribe(s1, strlen(s1), &sub, &wm, &r), BE_OK);
	CHECK_STR(sub, "S1");
	CHECK(wm == NULL);
	free(sub);
	const char *s2 = SUB_PULL_OK("P1", "AAAA=");
	CHECK_INT(ews_parse_subscribe(s2, strlen(s2), &sub, &wm, &r), BE_OK);
	CHECK_STR(sub, "P1");
	CHECK_STR(wm, "AAAA=");
	free(sub);
	free(wm);
	static const struct { const char *in; enum be_status st; } se[] = {
		{ SUB_ERR("ErrorInvalidSubscriptionRequest"), BE_REFUSED },
		{ SUB_ERR("ErrorInvalidServerVersion"), BE_REFUSED },
		{ SUB_ERR("ErrorExceededSubscriptionCount"), BE_THROTTLED },
		{ SUB_ERR("ErrorFolderNotFound"), BE_FOLDER_GONE },
		{ SUB_ERR("ErrorAccessDenied"), BE_AUTH },
		{ RESP("Subscribe", "Success", NOERR), BE_PROTOCOL },
		{ SUB_OK(""), BE_PROTOCOL },
		{ RESP("Other", "Success", NOERR), BE_PROTOCOL },
	};
	for (size_t i = 0; i < sizeof(se) / sizeof(se[0]); i++) {
		CHECK_INT(ews_parse_subscribe(se[i].in, strlen(se[i].in), &sub,
					      &wm, &r), se[i].st);
		CHECK(!sub && !wm);
	}
	char *schema = data_file("fault_schema.xml", &len);
	CHECK_INT(ews_parse_subscribe(schema, len, &sub, &wm, &r), BE_REFUSED);
	CHECK_STR(r.code, "ErrorSchemaValidation");
	free(schema);
	case_end();
}

int main(void)
{
	test_requests();
	test_splitter();
	test_parser();
	return check_done("test_ews_events");
}

/*
 * eas_draft.c - the message side of ActiveSync, with no network: a
 * draft's fields taken from its MIME (headers decoded, one text or HTML
 * body, quoted-printable and base64 undone) for Sync Add and Change in
 * Drafts (16.0+), and the Message-ID of the first bytes of a message that
 * a Sync brings.  Split from eas_proto.c; the unit tests and the fuzzer
 * call these directly.
 */
#include "backend/eas/eas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- Drafts (16.0+: Sync Add of Email in Drafts) ---- */

void eas_draft_free(struct eas_draft *d)
{
	free(d->to);
	free(d->cc);
	free(d->bcc);
	free(d->subject);
	free(d->body);
	memset(d, 0, sizeof(*d));
}

/* Header value: unfolded, trimmed (owned). */
static char *header_value(const char *v, size_t n)
{
	struct buf b;
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\r' || v[i] == '\n')
			continue;
		buf_append(&b, &v[i], 1);
	}
	char *s = b.data ? b.data : xstrdup("");
	char *p = s;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t l = strlen(p);
	while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
		l--;
	char *out = xstrndup(p, l);
	free(s);
	return out;
}

/* The Message-ID among the first bytes of a MIME message (the part of it
 * a Sync brings, MIMETruncation 1), unfolded and trimmed; NULL when it is
 * not there, or may be cut by the truncation. */
char *eas_mime_message_id(const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			return NULL;  /* cut: the header may go on */
		if (eol - p <= 1 && (*p == '\r' || *p == '\n'))
			return NULL;  /* the blank line: header over */
		const char *h_end = eol + 1;
		while (h_end < end && (*h_end == ' ' || *h_end == '\t')) {
			const char *e2 = memchr(h_end, '\n', (size_t)(end - h_end));
			if (!e2)
				return NULL;
			h_end = e2 + 1;
		}
		if (h_end == end)
			return NULL;  /* a continuation may have been cut */
		if (eol - p > 11 && !strncasecmp(p, "Message-ID:", 11)) {
			char *v = header_value(p + 11, (size_t)(h_end - p - 11));
			if (*v && strlen(v) <= 998)
				return v;
			free(v);
			return NULL;
		}
		p = h_end;
	}
	return NULL;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0'
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10
	     : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void decode_qp(const char *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '=' && i + 1 < n && (p[i + 1] == '\r' || p[i + 1] == '\n')) {
			i++;  /* soft line break */
			if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
		} else if (p[i] == '=' && i + 2 < n && hexval(p[i + 1]) >= 0 &&
			   hexval(p[i + 2]) >= 0) {
			char c = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
			buf_append(out, &c, 1);
			i += 2;
		} else {
			buf_append(out, &p[i], 1);
		}
	}
}

static void decode_b64(const char *p, size_t n, struct buf *out)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		const char *k = p[i] ? strchr(al, p[i]) : NULL;
		if (!k)
			continue;
		acc = (acc << 6) | (unsigned)(k - al);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char c = (char)((acc >> bits) & 0xff);
			buf_append(out, &c, 1);
		}
	}
}

int eas_draft_from_mime(const void *mime, size_t len, struct eas_draft *d,
			struct be_result *r)
{
	const char *p = mime, *end = p + len;
	char *ctype = NULL, *cte = NULL;
	memset(d, 0, sizeof(*d));
	be_result_ok(r);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol + 1 : end;
		if (line_end - p <= 2 && (*p == '\r' || *p == '\n')) {
			p = line_end;
			break;  /* the blank line */
		}
		/* the header and its folded continuation lines */
		const char *h_end = line_end;
		while (h_end < end && (*h_end == ' ' || *h_end == '\t')) {
			const char *e2 = memchr(h_end, '\n', (size_t)(end - h_end));
			h_end = e2 ? e2 + 1 : end;
		}
		const char *colon = memchr(p, ':', (size_t)(line_end - p));
		if (colon) {
			size_t nl = (size_t)(colon - p);
			char **slot = NULL;
			if (nl == 2 && !strncasecmp(p, "To", 2))
				slot = &d->to;
			else if (nl == 2 && !strncasecmp(p, "Cc", 2))
				slot = &d->cc;
			else if (nl == 3 && !strncasecmp(p, "Bcc", 3))
				slot = &d->bcc;
			else if (nl == 7 && !strncasecmp(p, "Subject", 7))
				slot = &d->subject;
			else if (nl == 12 && !strncasecmp(p, "Content-Type", 12))
				slot = &ctype;
			else if (nl == 25 && !strncasecmp(p, "Content-Transfer-Encoding", 25))
				slot = &cte;
			if (slot && !*slot)
				*slot = header_value(colon + 1,
						     (size_t)(h_end - colon - 1));
		}
		p = h_end;
	}
	if (ctype && (strncasecmp(ctype, "text/", 5) ||
		      (strncasecmp(ctype + 5, "plain", 5) &&
		       strncasecmp(ctype + 5, "html", 4)))) {
		be_result_set(r, BE_UNSUPPORTED,
			      "only drafts of plain text or HTML can be stored over ActiveSync (this one is %.60s)",
			      ctype);
	} else {
		struct buf body;
		buf_init(&body, 0);
		size_t n = p < end ? (size_t)(end - p) : 0;
		if (cte && !strcasecmp(cte, "quoted-printable"))
			decode_qp(p, n, &body);
		else if (cte && !strcasecmp(cte, "base64"))
			decode_b64(p, n, &body);
		else
			buf_append(&body, p, n);
		d->body = body.data ? body.data : xstrdup("");
		d->html = ctype && !strncasecmp(ctype + 5, "html", 4);
		if (strlen(d->body) != body.len)
			be_result_set(r, BE_UNSUPPORTED,
				      "a draft whose text holds NUL bytes cannot be stored over ActiveSync");
	}
	free(ctype);
	free(cte);
	if (r->status != BE_OK)
		eas_draft_free(d);
	return r->status == BE_OK ? 0 : -1;
}

/* The ApplicationData of a draft's Add or Change: its fields. */
static void draft_data(struct wbxml_enc *e, const struct eas_draft *d, bool add)
{
	wbxml_start(e, WB_AS_APPLICATION_DATA);
	if (d->to)
		wbxml_str(e, WB_EM_TO, d->to);
	if (d->cc)
		wbxml_str(e, WB_EM_CC, d->cc);
	if (d->bcc)
		wbxml_str(e, WB_EM2_BCC, d->bcc);
	wbxml_str(e, WB_EM_SUBJECT, d->subject ? d->subject : "");
	wbxml_start(e, WB_ASB_BODY);
	wbxml_str(e, WB_ASB_TYPE, d->html ? "2" : "1");
	wbxml_str(e, WB_ASB_DATA, d->body ? d->body : "");
	wbxml_end(e);
	if (add)
		wbxml_str(e, WB_EM2_IS_DRAFT, "1");
	wbxml_end(e);  /* ApplicationData */
}

void eas_req_add_draft(struct buf *b, const char *collection, const char *key,
		       const char *client_id, const struct eas_draft *d)
{
	struct wbxml_enc e;
	eas_sync_open(&e, b, collection, key);
	wbxml_str(&e, WB_AS_GET_CHANGES, "0");
	wbxml_start(&e, WB_AS_COMMANDS);
	wbxml_start(&e, WB_AS_ADD);
	wbxml_str(&e, WB_AS_CLIENT_ID, client_id);
	draft_data(&e, d, true);
	wbxml_end(&e);  /* Add */
	eas_sync_close(&e);
}

void eas_req_change_draft(struct buf *b, const char *collection,
			  const char *key, const char *server_id,
			  const struct eas_draft *d)
{
	struct wbxml_enc e;
	eas_sync_open(&e, b, collection, key);
	wbxml_str(&e, WB_AS_GET_CHANGES, "0");
	wbxml_start(&e, WB_AS_COMMANDS);
	wbxml_start(&e, WB_AS_CHANGE);
	wbxml_str(&e, WB_AS_SERVER_ID, server_id);
	draft_data(&e, d, false);
	wbxml_end(&e);  /* Change */
	eas_sync_close(&e);
}

enum be_status eas_parse_sync_add(const void *p, size_t n, char **new_key,
				  char **server_id, struct be_result *r)
{
	*server_id = NULL;
	if (eas_parse_sync_write(p, n, new_key, r) != BE_OK)
		return r->status;
	struct wbxml_node *t = eas_parse(p, n, "Sync", r);
	struct wbxml_node *add = wbxml_path(t, WB_AS_SYNC, WB_AS_COLLECTIONS,
					    WB_AS_COLLECTION, WB_AS_RESPONSES,
					    WB_AS_ADD, 0);
	const char *sid = add ? eas_short_text(add, WB_AS_SERVER_ID) : NULL;
	if (sid) {
		*server_id = xstrdup(sid);
	} else if (t) {
		be_result_set(r, BE_PROTOCOL, "Sync answer without the new draft's id");
		free(*new_key);
		*new_key = NULL;
	}
	wbxml_free(t);
	return r->status;
}

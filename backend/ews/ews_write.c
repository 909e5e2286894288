/*
 * ews_write.c - the write operations of the EWS backend (backend.h): check
 * what the core hands in, build the request (ews_request.c), POST it and
 * read the answer (ews_parse.c) through ews_call_write() in ews.c.  Each
 * is one round trip, except rename_folder, which fetches the folder's
 * ChangeKey and tries once more when a server insists on one.
 *
 * Everything that goes into a request is checked here first: ids are
 * non-empty and at most EWS_ID_MAX bytes, names and categories are UTF-8
 * that XML can carry, tokens are [A-Za-z0-9-]{1,64}.  What fails a check
 * is BE_REFUSED without a request.
 */
#include "backend/ews/ews.h"

#include <stdlib.h>
#include <string.h>

bool ews_text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		uint32_t c = *p;
		int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1
			: (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
		if (n < 0)
			return false;
		c &= n ? 0x3f >> n : 0x7f;
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (p[i] & 0x3f);
		}
		static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
		if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
		    c == 0xfffe || c == 0xffff ||
		    (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
			return false;
		p += n + 1;
	}
	return true;
}

/* A folder name: non-empty, at most EWS_TEXT_MAX bytes, XML-safe UTF-8. */
static bool name_ok(const char *name, struct be_result *r)
{
	if (!name || !*name || strlen(name) > EWS_TEXT_MAX ||
	    !ews_text_ok(name)) {
		be_result_set(r, BE_REFUSED,
			      "invalid folder name (empty, too long, or not UTF-8 text)");
		return false;
	}
	return true;
}

static bool token_ok(const char *token, struct be_result *r)
{
	size_t n = token ? strlen(token) : 0;
	if (!n || n > EWS_TOKEN_MAX ||
	    strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789-") != n) {
		be_result_set(r, BE_REFUSED, "invalid token");
		return false;
	}
	return true;
}

/* A change key may be absent; if there is one it is checked as an id. */
static bool change_key_ok(const char *ck, struct be_result *r)
{
	return !ck || !*ck || ews_id_ok(ck, "change key", r);
}

static bool mime_ok(const void *mime, size_t len, struct be_result *r)
{
	if (!mime || !len) {
		be_result_set(r, BE_REFUSED, "empty message");
		return false;
	}
	return true;
}

enum be_status ews_special_folders(struct be_session *s,
				   char *ids[BE_SPECIAL_N],
				   struct be_result *r)
{
	struct buf req;
	buf_init(&req, 0);
	ews_req_special_folders(&req, ews_session_version(s));
	return ews_call_special(s, &req, ids, r);
}

enum be_status ews_create_item(struct be_session *s, const char *folder_id,
			       const void *mime, size_t len,
			       enum be_disposition how, int64_t date,
			       const char *token, struct be_new *out,
			       struct be_result *r)
{
	struct buf req;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (how != BE_SAVE_DRAFT && how != BE_SAVE && how != BE_SEND)
		be_result_set(r, BE_REFUSED, "invalid disposition %d", how);
	if (r->status || !ews_id_ok(folder_id, "folder", r) ||
	    !token_ok(token, r) || !mime_ok(mime, len, r))
		return r->status;
	buf_init(&req, 0);
	ews_req_create_item(&req, ews_session_version(s), folder_id, mime, len,
			    how, date, token);
	if (ews_call_write(s, "CreateItem", &req, EWS_W_CREATE_ITEM, out, r) ==
	    BE_OK && how == BE_SEND)
		be_new_free(out);  /* a sent message has no id to give */
	return r->status;
}

enum be_status ews_find_token(struct be_session *s, const char *folder_id,
			      const char *token, struct be_new *out,
			      struct be_result *r)
{
	struct buf req;
	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(folder_id, "folder", r) || !token_ok(token, r))
		return r->status;
	buf_init(&req, 0);
	ews_req_find_token(&req, ews_session_version(s), folder_id, token);
	return ews_call_write(s, "FindItem", &req, EWS_W_FIND_ITEM, out, r);
}

enum be_status ews_replace_mime(struct be_session *s, const char *id,
				const char *change_key, const void *mime,
				size_t len, struct be_new *out,
				struct be_result *r)
{
	struct buf req;
	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(id, "item", r) || !change_key_ok(change_key, r) ||
	    !mime_ok(mime, len, r))
		return r->status;
	buf_init(&req, 0);
	ews_req_replace_mime(&req, ews_session_version(s), id, change_key, mime,
			     len);
	return ews_call_write(s, "UpdateItem", &req, EWS_W_UPDATE_ITEM, out, r);
}

enum be_status ews_update_props(struct be_session *s, const char *id,
				const char *change_key,
				const struct be_props *p, struct be_new *out,
				struct be_result *r)
{
	const unsigned all = BE_PROP_READ | BE_PROP_FLAG | BE_PROP_CATEGORIES;
	struct buf req;
	memset(out, 0, sizeof(*out));
	be_result_ok(r);
	if (!ews_id_ok(id, "item", r) || !change_key_ok(change_key, r))
		return r->status;
	if (!(p->mask & all))
		return r->status;  /* nothing to set */
	if ((p->mask & BE_PROP_FLAG) && p->flag != BE_FLAG_NONE &&
	    p->flag != BE_FLAG_FLAGGED && p->flag != BE_FLAG_COMPLETE) {
		be_result_set(r, BE_REFUSED, "invalid flag %d", (int)p->flag);
		return r->status;
	}
	if ((p->mask & BE_PROP_CATEGORIES) && p->categories &&
	    (strlen(p->categories) > EWS_TEXT_MAX ||
	     !ews_text_ok(p->categories))) {
		be_result_set(r, BE_REFUSED,
			      "invalid categories (too long, or not UTF-8 text)");
		return r->status;
	}
	buf_init(&req, 0);
	ews_req_update_props(&req, ews_session_version(s), id, change_key, p);
	return ews_call_write(s, "UpdateItem", &req, EWS_W_UPDATE_ITEM, out, r);
}

enum be_status ews_get_change_key(struct be_session *s, const char *id,
				  char **change_key, struct be_result *r)
{
	struct buf req;
	struct be_new got;
	*change_key = NULL;
	if (!ews_id_ok(id, "item", r))
		return r->status;
	buf_init(&req, 0);
	ews_req_get_item_id(&req, ews_session_version(s), id);
	if (ews_call_write(s, "GetItem", &req, EWS_W_GET_ITEM, &got, r) ==
	    BE_OK) {
		*change_key = got.change_key;
		got.change_key = NULL;
	}
	be_new_free(&got);
	return r->status;
}

enum be_status ews_delete_item(struct be_session *s, const char *id,
			       enum be_delete how, struct be_result *r)
{
	struct buf req;
	struct be_new none;
	be_result_ok(r);
	if (how != BE_DEL_TO_TRASH && how != BE_DEL_SOFT && how != BE_DEL_HARD)
		be_result_set(r, BE_REFUSED, "invalid delete type %d", how);
	if (r->status || !ews_id_ok(id, "item", r))
		return r->status;
	buf_init(&req, 0);
	ews_req_delete_item(&req, ews_session_version(s), id, how);
	ews_call_write(s, "DeleteItem", &req, EWS_W_DELETE_ITEM, &none, r);
	be_new_free(&none);
	return r->status;
}

enum be_status ews_move_item(struct be_session *s, const char *id,
			     const char *to_folder_id, struct be_new *out,
			     struct be_result *r)
{
	struct buf req;
	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(id, "item", r) || !ews_id_ok(to_folder_id, "folder", r))
		return r->status;
	buf_init(&req, 0);
	ews_req_move_item(&req, ews_session_version(s), id, to_folder_id);
	return ews_call_write(s, "MoveItem", &req, EWS_W_MOVE_ITEM, out, r);
}

enum be_status ews_create_folder(struct be_session *s, const char *parent_id,
				 const char *name, struct be_new *out,
				 struct be_result *r)
{
	struct buf req;
	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(parent_id, "folder", r) || !name_ok(name, r))
		return r->status;
	buf_init(&req, 0);
	ews_req_create_folder(&req, ews_session_version(s), parent_id, name);
	return ews_call_write(s, "CreateFolder", &req, EWS_W_CREATE_FOLDER, out,
			      r);
}

/* UpdateFolder of the display name, with the given change key (or none). */
static enum be_status rename_once(struct be_session *s, const char *id,
				  const char *change_key, const char *name,
				  struct be_new *out, struct be_result *r)
{
	struct buf req;
	buf_init(&req, 0);
	ews_req_rename_folder(&req, ews_session_version(s), id, change_key,
			      name);
	return ews_call_write(s, "UpdateFolder", &req, EWS_W_UPDATE_FOLDER, out,
			      r);
}

enum be_status ews_rename_folder(struct be_session *s, const char *id,
				 const char *name, struct be_new *out,
				 struct be_result *r)
{
	struct buf req;
	struct be_new cur;
	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(id, "folder", r) || !name_ok(name, r))
		return r->status;
	/* Exchange documents UpdateFolder as needing the current ChangeKey
	 * (ErrorChangeKeyRequiredForWriteOperations); most servers do
	 * without.  Ask for it only when told to. */
	if (rename_once(s, id, NULL, name, out, r) != BE_CONFLICT)
		return r->status;
	log_dbg(LC_HTTP, "UpdateFolder wants the change key: %s", r->msg);
	buf_init(&req, 0);
	ews_req_get_folder(&req, ews_session_version(s), id);
	if (ews_call_write(s, "GetFolder", &req, EWS_W_GET_FOLDER, &cur, r) ==
	    BE_OK)
		rename_once(s, id, cur.change_key, name, out, r);
	be_new_free(&cur);
	return r->status;
}

enum be_status ews_move_folder(struct be_session *s, const char *id,
			       const char *to_parent_id, struct be_new *out,
			       struct be_result *r)
{
	struct buf req;
	memset(out, 0, sizeof(*out));
	if (!ews_id_ok(id, "folder", r) || !ews_id_ok(to_parent_id, "folder", r))
		return r->status;
	buf_init(&req, 0);
	ews_req_move_folder(&req, ews_session_version(s), id, to_parent_id);
	return ews_call_write(s, "MoveFolder", &req, EWS_W_MOVE_FOLDER, out, r);
}

enum be_status ews_delete_folder(struct be_session *s, const char *id,
				 bool hard, struct be_result *r)
{
	struct buf req;
	struct be_new none;
	if (!ews_id_ok(id, "folder", r))
		return r->status;
	buf_init(&req, 0);
	ews_req_delete_folder(&req, ews_session_version(s), id, hard);
	ews_call_write(s, "DeleteFolder", &req, EWS_W_DELETE_FOLDER, &none, r);
	be_new_free(&none);
	return r->status;
}

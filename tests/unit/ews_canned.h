/*
 * ews_canned.h - canned EWS notification answers for the unit tests of
 * ews_events.c (test_ews_events.c) and ews_notify.c (test_ews_notify.c):
 * streamed envelopes the way Exchange writes them, event elements,
 * Subscribe / GetEvents / Unsubscribe answers; and a batch of events as
 * one line, which both compare.
 */
#ifndef EXCHANGEFS_EWS_CANNED_H
#define EXCHANGEFS_EWS_CANNED_H

#define NS_SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_T "http://schemas.microsoft.com/exchange/services/2006/types"
#define NS_M "http://schemas.microsoft.com/exchange/services/2006/messages"

#define XMLDECL "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
/* a streamed envelope the way Exchange writes it: default namespace */
#define SE_OPEN \
	"<Envelope xmlns=\"" NS_SOAP "\"><Header/><Body>" \
	"<m:GetStreamingEventsResponse xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\">" \
	"<m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass=\"Success\">" \
	"<m:ResponseCode>NoError</m:ResponseCode>"
#define SE_CLOSE \
	"</m:GetStreamingEventsResponseMessage></m:ResponseMessages>" \
	"</m:GetStreamingEventsResponse></Body></Envelope>"
#define KEEPALIVE SE_OPEN "<m:ConnectionStatus>OK</m:ConnectionStatus>" SE_CLOSE
#define CLOSED SE_OPEN "<m:ConnectionStatus>Closed</m:ConnectionStatus>" SE_CLOSE
#define NOTIF(sub, events) \
	SE_OPEN "<m:Notifications><m:Notification><t:SubscriptionId>" sub \
	"</t:SubscriptionId>" events "</m:Notification></m:Notifications>" \
	"<m:ConnectionStatus>OK</m:ConnectionStatus>" SE_CLOSE
#define TS "<t:TimeStamp>2026-11-20T09:31:07Z</t:TimeStamp>"
#define ITEM_EV(kind, item, parent) \
	"<t:" kind ">" TS "<t:ItemId Id=\"" item "\" ChangeKey=\"CK\"/>" \
	"<t:ParentFolderId Id=\"" parent "\" ChangeKey=\"AQ\"/></t:" kind ">"
#define ITEM_MC(kind, item, parent, old, oldparent) \
	"<t:" kind ">" TS "<t:ItemId Id=\"" item "\"/><t:ParentFolderId Id=\"" \
	parent "\"/><t:OldItemId Id=\"" old "\"/><t:OldParentFolderId Id=\"" \
	oldparent "\"/></t:" kind ">"
#define FOLDER_EV(kind, folder, parent) \
	"<t:" kind ">" TS "<t:FolderId Id=\"" folder "\"/><t:ParentFolderId Id=\"" \
	parent "\"/></t:" kind ">"
#define SE_ERROR(code) \
	SE_OPEN_ERR "<m:MessageText>gone</m:MessageText><m:ResponseCode>" code \
	"</m:ResponseCode><m:ErrorSubscriptionIds><m:ErrorSubscriptionId>SUB" \
	"</m:ErrorSubscriptionId></m:ErrorSubscriptionIds>" \
	"<m:ConnectionStatus>Closed</m:ConnectionStatus>" SE_CLOSE
#define SE_OPEN_ERR \
	"<Envelope xmlns=\"" NS_SOAP "\"><Body>" \
	"<m:GetStreamingEventsResponse xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\">" \
	"<m:ResponseMessages><m:GetStreamingEventsResponseMessage ResponseClass=\"Error\">"

#define RESP(op, cls, inner) \
	XMLDECL "<s:Envelope xmlns:s=\"" NS_SOAP "\"><s:Body><m:" op "Response" \
	" xmlns:m=\"" NS_M "\" xmlns:t=\"" NS_T "\"><m:ResponseMessages><m:" op \
	"ResponseMessage ResponseClass=\"" cls "\">" inner "</m:" op \
	"ResponseMessage></m:ResponseMessages></m:" op "Response></s:Body></s:Envelope>"
#define NOERR "<m:ResponseCode>NoError</m:ResponseCode>"
#define ERR(code) "<m:MessageText>refused</m:MessageText><m:ResponseCode>" code \
	"</m:ResponseCode>"
#define SUB_OK(id) RESP("Subscribe", "Success", NOERR \
	"<m:SubscriptionId>" id "</m:SubscriptionId>")
#define SUB_PULL_OK(id, wm) RESP("Subscribe", "Success", NOERR \
	"<m:SubscriptionId>" id "</m:SubscriptionId><m:Watermark>" wm "</m:Watermark>")
#define SUB_ERR(code) RESP("Subscribe", "Error", ERR(code))
#define UNSUB_OK RESP("Unsubscribe", "Success", NOERR)
#define GE(more, prev, events) RESP("GetEvents", "Success", NOERR \
	"<m:Notification><t:SubscriptionId>P</t:SubscriptionId>" \
	"<t:PreviousWatermark>" prev "</t:PreviousWatermark><t:MoreEvents>" more \
	"</t:MoreEvents>" events "</m:Notification>")
#define GE_ERR(code) RESP("GetEvents", "Error", ERR(code))
#define PULL_EV(kind, wm, item, parent) \
	"<t:" kind "><t:Watermark>" wm "</t:Watermark>" TS "<t:ItemId Id=\"" \
	item "\"/><t:ParentFolderId Id=\"" parent "\"/></t:" kind ">"
#define STATUS_EV(wm) \
	"<t:StatusEvent><t:Watermark>" wm "</t:Watermark></t:StatusEvent>"

#define ROOT_ID "AAMkADk0N2Y2ZjU4LTU0MGYtNDA5Ny1hNjU3LWEyMmJhMjI1YmYzOQAuAAAAAAB2Rr2SqMw8R7bXTu1i4iO0AQCmHNlkFx5mS5PYOvrvJnMaAAAAAAEIAAA="

#include "backend/backend.h"
#include "backend/util.h"

#include <stdbool.h>

/* A batch as one line: "L H f=A,B m=old@F>new@G". */
static inline void batch_line(struct buf *out, const char *const *folders, size_t nf,
		       bool hier, bool lost, const struct be_moved *mv,
		       size_t nm)
{
	if (lost)
		buf_puts(out, "L ");
	if (hier)
		buf_puts(out, "H ");
	buf_puts(out, "f=");
	for (size_t i = 0; i < nf; i++)
		buf_printf(out, "%s%s", i ? "," : "", folders[i]);
	for (size_t i = 0; i < nm; i++)
		buf_printf(out, " m=%s@%s>%s@%s", mv[i].old_id,
			   mv[i].old_folder_id, mv[i].new_id,
			   mv[i].new_folder_id);
}

#endif

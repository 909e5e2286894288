/*
 * wbxml.h - WBXML (WAP Binary XML 1.3) as Exchange ActiveSync uses it
 * (MS-ASWBXML): an encoder that writes requests into a buffer, a push
 * decoder that takes the answer in pieces as it arrives and reports
 * elements and text through callbacks (so a 50 MB MIME body is streamed,
 * never held), and a small tree built on the decoder for the ordinary,
 * small answers.
 *
 * A tag is (code page << 8) | token, e.g. WB_AS_SYNC = 0x0005 (page 0
 * AirSync, token 0x05).  ActiveSync uses no attributes, no string table,
 * no entities and no extensions; the decoder refuses them.  Every byte is
 * bounds-checked; multi-byte integers are limited to 32 bits; nesting to
 * WBXML_MAX_DEPTH.
 */
#ifndef EXCHANGEFS_WBXML_H
#define EXCHANGEFS_WBXML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/util.h"

#define WBXML_MAX_DEPTH 64

/* The tags of the MS-ASWBXML code pages the commands use. */
enum wbxml_tag {
	/* 0 AirSync */
	WB_AS_SYNC = 0x0005,
	WB_AS_RESPONSES = 0x0006,
	WB_AS_ADD = 0x0007,
	WB_AS_CHANGE = 0x0008,
	WB_AS_DELETE = 0x0009,
	WB_AS_FETCH = 0x000a,
	WB_AS_SYNC_KEY = 0x000b,
	WB_AS_CLIENT_ID = 0x000c,
	WB_AS_SERVER_ID = 0x000d,
	WB_AS_STATUS = 0x000e,
	WB_AS_COLLECTION = 0x000f,
	WB_AS_CLASS = 0x0010,
	WB_AS_VERSION = 0x0011,
	WB_AS_COLLECTION_ID = 0x0012,
	WB_AS_GET_CHANGES = 0x0013,
	WB_AS_MORE_AVAILABLE = 0x0014,
	WB_AS_WINDOW_SIZE = 0x0015,
	WB_AS_COMMANDS = 0x0016,
	WB_AS_OPTIONS = 0x0017,
	WB_AS_FILTER_TYPE = 0x0018,
	WB_AS_TRUNCATION = 0x0019,
	WB_AS_RTF_TRUNCATION = 0x001a,
	WB_AS_CONFLICT = 0x001b,
	WB_AS_COLLECTIONS = 0x001c,
	WB_AS_APPLICATION_DATA = 0x001d,
	WB_AS_DELETES_AS_MOVES = 0x001e,
	WB_AS_NOTIFY_GUID = 0x001f,
	WB_AS_SUPPORTED = 0x0020,
	WB_AS_SOFT_DELETE = 0x0021,
	WB_AS_MIMESUPPORT = 0x0022,
	WB_AS_MIMETRUNCATION = 0x0023,
	WB_AS_WAIT = 0x0024,
	WB_AS_LIMIT = 0x0025,
	WB_AS_PARTIAL = 0x0026,
	WB_AS_CONVERSATION_MODE = 0x0027,
	WB_AS_MAX_ITEMS = 0x0028,
	WB_AS_HEARTBEAT_INTERVAL = 0x0029,
	/* 2 Email */
	WB_EM_ATTACHMENT = 0x0205,
	WB_EM_ATTACHMENTS = 0x0206,
	WB_EM_ATT_NAME = 0x0207,
	WB_EM_ATT_SIZE = 0x0208,
	WB_EM_ATT0_ID = 0x0209,
	WB_EM_ATT_METHOD = 0x020a,
	WB_EM_ATT_REMOVED = 0x020b,
	WB_EM_BODY = 0x020c,
	WB_EM_BODY_SIZE = 0x020d,
	WB_EM_BODY_TRUNCATED = 0x020e,
	WB_EM_DATE_RECEIVED = 0x020f,
	WB_EM_DISPLAY_NAME = 0x0210,
	WB_EM_DISPLAY_TO = 0x0211,
	WB_EM_IMPORTANCE = 0x0212,
	WB_EM_MESSAGE_CLASS = 0x0213,
	WB_EM_SUBJECT = 0x0214,
	WB_EM_READ = 0x0215,
	WB_EM_TO = 0x0216,
	WB_EM_CC = 0x0217,
	WB_EM_FROM = 0x0218,
	WB_EM_REPLY_TO = 0x0219,
	WB_EM_ALL_DAY_EVENT = 0x021a,
	WB_EM_CATEGORIES = 0x021b,
	WB_EM_CATEGORY = 0x021c,
	WB_EM_DTSTAMP = 0x021d,
	WB_EM_END_TIME = 0x021e,
	WB_EM_INSTANCE_TYPE = 0x021f,
	WB_EM_BUSY_STATUS = 0x0220,
	WB_EM_LOCATION = 0x0221,
	WB_EM_MEETING_REQUEST = 0x0222,
	WB_EM_ORGANIZER = 0x0223,
	WB_EM_RECURRENCE_ID = 0x0224,
	WB_EM_REMINDER = 0x0225,
	WB_EM_RESPONSE_REQUESTED = 0x0226,
	WB_EM_RECURRENCES = 0x0227,
	WB_EM_RECURRENCE = 0x0228,
	WB_EM_RECURRENCE_TYPE = 0x0229,
	WB_EM_RECURRENCE_UNTIL = 0x022a,
	WB_EM_RECURRENCE_OCCURRENCES = 0x022b,
	WB_EM_RECURRENCE_INTERVAL = 0x022c,
	WB_EM_RECURRENCE_DAY_OF_WEEK = 0x022d,
	WB_EM_RECURRENCE_DAY_OF_MONTH = 0x022e,
	WB_EM_RECURRENCE_WEEK_OF_MONTH = 0x022f,
	WB_EM_RECURRENCE_MONTH_OF_YEAR = 0x0230,
	WB_EM_START_TIME = 0x0231,
	WB_EM_SENSITIVITY = 0x0232,
	WB_EM_TIME_ZONE = 0x0233,
	WB_EM_GLOBAL_OBJ_ID = 0x0234,
	WB_EM_THREAD_TOPIC = 0x0235,
	WB_EM_MIMEDATA = 0x0236,
	WB_EM_MIMETRUNCATED = 0x0237,
	WB_EM_MIMESIZE = 0x0238,
	WB_EM_INTERNET_CPID = 0x0239,
	WB_EM_FLAG = 0x023a,
	WB_EM_FLAG_STATUS = 0x023b,
	WB_EM_CONTENT_CLASS = 0x023c,
	WB_EM_FLAG_TYPE = 0x023d,
	WB_EM_COMPLETE_TIME = 0x023e,
	WB_EM_DISALLOW_NEW_TIME_PROPOSAL = 0x023f,
	/* 5 Move */
	WB_MV_MOVE_ITEMS = 0x0505,
	WB_MV_MOVE = 0x0506,
	WB_MV_SRC_MSG_ID = 0x0507,
	WB_MV_SRC_FLD_ID = 0x0508,
	WB_MV_DST_FLD_ID = 0x0509,
	WB_MV_RESPONSE = 0x050a,
	WB_MV_STATUS = 0x050b,
	WB_MV_DST_MSG_ID = 0x050c,
	/* 6 GetItemEstimate */
	WB_GIE_GET_ITEM_ESTIMATE = 0x0605,
	WB_GIE_VERSION = 0x0606,
	WB_GIE_COLLECTIONS = 0x0607,
	WB_GIE_COLLECTION = 0x0608,
	WB_GIE_CLASS = 0x0609,
	WB_GIE_COLLECTION_ID = 0x060a,
	WB_GIE_DATE_TIME = 0x060b,
	WB_GIE_ESTIMATE = 0x060c,
	WB_GIE_RESPONSE = 0x060d,
	WB_GIE_STATUS = 0x060e,
	/* 7 FolderHierarchy */
	WB_FH_FOLDERS = 0x0705,
	WB_FH_FOLDER = 0x0706,
	WB_FH_DISPLAY_NAME = 0x0707,
	WB_FH_SERVER_ID = 0x0708,
	WB_FH_PARENT_ID = 0x0709,
	WB_FH_TYPE = 0x070a,
	WB_FH_RESPONSE = 0x070b,
	WB_FH_STATUS = 0x070c,
	WB_FH_CONTENT_CLASS = 0x070d,
	WB_FH_CHANGES = 0x070e,
	WB_FH_ADD = 0x070f,
	WB_FH_DELETE = 0x0710,
	WB_FH_UPDATE = 0x0711,
	WB_FH_SYNC_KEY = 0x0712,
	WB_FH_FOLDER_CREATE = 0x0713,
	WB_FH_FOLDER_DELETE = 0x0714,
	WB_FH_FOLDER_UPDATE = 0x0715,
	WB_FH_FOLDER_SYNC = 0x0716,
	WB_FH_COUNT = 0x0717,
	WB_FH_VERSION = 0x0718,
	/* 10 ResolveRecipients */
	WB_RR_RESOLVE_RECIPIENTS = 0x0a05,
	WB_RR_RESPONSE = 0x0a06,
	WB_RR_STATUS = 0x0a07,
	WB_RR_TYPE = 0x0a08,
	WB_RR_RECIPIENT = 0x0a09,
	WB_RR_DISPLAY_NAME = 0x0a0a,
	WB_RR_EMAIL_ADDRESS = 0x0a0b,
	WB_RR_OPTIONS = 0x0a0f,
	WB_RR_TO = 0x0a10,
	WB_RR_RECIPIENT_COUNT = 0x0a12,
	WB_RR_MAX_AMBIGUOUS_RECIPIENTS = 0x0a14,
	WB_RR_AVAILABILITY = 0x0a16,
	WB_RR_START_TIME = 0x0a17,
	WB_RR_END_TIME = 0x0a18,
	/* 13 Ping */
	WB_PING_PING = 0x0d05,
	WB_PING_AUTD_STATE = 0x0d06,
	WB_PING_STATUS = 0x0d07,
	WB_PING_HEARTBEAT_INTERVAL = 0x0d08,
	WB_PING_FOLDERS = 0x0d09,
	WB_PING_FOLDER = 0x0d0a,
	WB_PING_ID = 0x0d0b,
	WB_PING_CLASS = 0x0d0c,
	WB_PING_MAX_FOLDERS = 0x0d0d,
	/* 14 Provision */
	WB_PROV_PROVISION = 0x0e05,
	WB_PROV_POLICIES = 0x0e06,
	WB_PROV_POLICY = 0x0e07,
	WB_PROV_POLICY_TYPE = 0x0e08,
	WB_PROV_POLICY_KEY = 0x0e09,
	WB_PROV_DATA = 0x0e0a,
	WB_PROV_STATUS = 0x0e0b,
	WB_PROV_REMOTE_WIPE = 0x0e0c,
	WB_PROV_EASPROVISION_DOC = 0x0e0d,
	/* 15 Search */
	WB_SRCH_SEARCH = 0x0f05,
	WB_SRCH_STORE = 0x0f07,
	WB_SRCH_NAME = 0x0f08,
	WB_SRCH_QUERY = 0x0f09,
	WB_SRCH_OPTIONS = 0x0f0a,
	WB_SRCH_RANGE = 0x0f0b,
	WB_SRCH_STATUS = 0x0f0c,
	WB_SRCH_RESPONSE = 0x0f0d,
	WB_SRCH_RESULT = 0x0f0e,
	WB_SRCH_PROPERTIES = 0x0f0f,
	WB_SRCH_TOTAL = 0x0f10,
	WB_SRCH_EQUAL_TO = 0x0f11,
	WB_SRCH_VALUE = 0x0f12,
	WB_SRCH_AND = 0x0f13,
	WB_SRCH_OR = 0x0f14,
	WB_SRCH_FREE_TEXT = 0x0f15,
	WB_SRCH_DEEP_TRAVERSAL = 0x0f17,
	WB_SRCH_LONG_ID = 0x0f18,
	WB_SRCH_REBUILD_RESULTS = 0x0f19,
	WB_SRCH_LESS_THAN = 0x0f1a,
	WB_SRCH_GREATER_THAN = 0x0f1b,
	WB_SRCH_USER_NAME = 0x0f1e,
	WB_SRCH_PASSWORD = 0x0f1f,
	WB_SRCH_CONVERSATION_ID = 0x0f20,
	WB_SRCH_PICTURE = 0x0f21,
	WB_SRCH_MAX_SIZE = 0x0f22,
	WB_SRCH_MAX_PICTURES = 0x0f23,
	/* 16 GAL */
	WB_GAL_DISPLAY_NAME = 0x1005,
	WB_GAL_PHONE = 0x1006,
	WB_GAL_OFFICE = 0x1007,
	WB_GAL_TITLE = 0x1008,
	WB_GAL_COMPANY = 0x1009,
	WB_GAL_ALIAS = 0x100a,
	WB_GAL_FIRST_NAME = 0x100b,
	WB_GAL_LAST_NAME = 0x100c,
	WB_GAL_HOME_PHONE = 0x100d,
	WB_GAL_MOBILE_PHONE = 0x100e,
	WB_GAL_EMAIL_ADDRESS = 0x100f,
	WB_GAL_PICTURE = 0x1010,
	WB_GAL_STATUS = 0x1011,
	WB_GAL_DATA = 0x1012,
	/* 17 AirSyncBase */
	WB_ASB_BODY_PREFERENCE = 0x1105,
	WB_ASB_TYPE = 0x1106,
	WB_ASB_TRUNCATION_SIZE = 0x1107,
	WB_ASB_ALL_OR_NONE = 0x1108,
	WB_ASB_BODY = 0x110a,
	WB_ASB_DATA = 0x110b,
	WB_ASB_ESTIMATED_DATA_SIZE = 0x110c,
	WB_ASB_TRUNCATED = 0x110d,
	WB_ASB_ATTACHMENTS = 0x110e,
	WB_ASB_ATTACHMENT = 0x110f,
	WB_ASB_DISPLAY_NAME = 0x1110,
	WB_ASB_FILE_REFERENCE = 0x1111,
	WB_ASB_METHOD = 0x1112,
	WB_ASB_CONTENT_ID = 0x1113,
	WB_ASB_CONTENT_LOCATION = 0x1114,
	WB_ASB_IS_INLINE = 0x1115,
	WB_ASB_NATIVE_BODY_TYPE = 0x1116,
	WB_ASB_CONTENT_TYPE = 0x1117,
	WB_ASB_PREVIEW = 0x1118,
	WB_ASB_BODY_PART_PREFERENCE = 0x1119,
	WB_ASB_BODY_PART = 0x111a,
	WB_ASB_STATUS = 0x111b,
	/* 16.0 */
	WB_ASB_ADD = 0x111c,
	WB_ASB_DELETE = 0x111d,
	WB_ASB_CLIENT_ID = 0x111e,
	WB_ASB_CONTENT = 0x111f,
	WB_ASB_LOCATION = 0x1120,
	/* 18 Settings */
	WB_SET_SETTINGS = 0x1205,
	WB_SET_STATUS = 0x1206,
	WB_SET_GET = 0x1207,
	WB_SET_SET = 0x1208,
	WB_SET_OOF = 0x1209,
	WB_SET_OOF_STATE = 0x120a,
	WB_SET_START_TIME = 0x120b,
	WB_SET_END_TIME = 0x120c,
	WB_SET_OOF_MESSAGE = 0x120d,
	WB_SET_APPLIES_TO_INTERNAL = 0x120e,
	WB_SET_APPLIES_TO_EXTERNAL_KNOWN = 0x120f,
	WB_SET_APPLIES_TO_EXTERNAL_UNKNOWN = 0x1210,
	WB_SET_ENABLED = 0x1211,
	WB_SET_REPLY_MESSAGE = 0x1212,
	WB_SET_BODY_TYPE = 0x1213,
	WB_SET_DEVICE_PASSWORD = 0x1214,
	WB_SET_PASSWORD = 0x1215,
	WB_SET_DEVICE_INFORMATION = 0x1216,
	WB_SET_MODEL = 0x1217,
	WB_SET_IMEI = 0x1218,
	WB_SET_FRIENDLY_NAME = 0x1219,
	WB_SET_OS = 0x121a,
	WB_SET_OSLANGUAGE = 0x121b,
	WB_SET_PHONE_NUMBER = 0x121c,
	WB_SET_USER_INFORMATION = 0x121d,
	WB_SET_EMAIL_ADDRESSES = 0x121e,
	WB_SET_SMTP_ADDRESS = 0x121f,
	WB_SET_USER_AGENT = 0x1220,
	WB_SET_ENABLE_OUTBOUND_SMS = 0x1221,
	WB_SET_MOBILE_OPERATOR = 0x1222,
	WB_SET_PRIMARY_SMTP_ADDRESS = 0x1223,
	WB_SET_ACCOUNTS = 0x1224,
	WB_SET_ACCOUNT = 0x1225,
	WB_SET_ACCOUNT_ID = 0x1226,
	WB_SET_ACCOUNT_NAME = 0x1227,
	WB_SET_USER_DISPLAY_NAME = 0x1228,
	WB_SET_SEND_DISABLED = 0x1229,
	WB_SET_RIGHTS_MANAGEMENT_INFORMATION = 0x122b,
	/* 20 ItemOperations */
	WB_IO_ITEM_OPERATIONS = 0x1405,
	WB_IO_FETCH = 0x1406,
	WB_IO_STORE = 0x1407,
	WB_IO_OPTIONS = 0x1408,
	WB_IO_RANGE = 0x1409,
	WB_IO_TOTAL = 0x140a,
	WB_IO_PROPERTIES = 0x140b,
	WB_IO_DATA = 0x140c,
	WB_IO_STATUS = 0x140d,
	WB_IO_RESPONSE = 0x140e,
	WB_IO_VERSION = 0x140f,
	WB_IO_SCHEMA = 0x1410,
	WB_IO_PART = 0x1411,
	WB_IO_EMPTY_FOLDER_CONTENTS = 0x1412,
	WB_IO_DELETE_SUB_FOLDERS = 0x1413,
	WB_IO_USER_NAME = 0x1414,
	WB_IO_PASSWORD = 0x1415,
	WB_IO_MOVE = 0x1416,
	WB_IO_DST_FLD_ID = 0x1417,
	WB_IO_CONVERSATION_ID = 0x1418,
	WB_IO_MOVE_ALWAYS = 0x1419,
	/* 21 ComposeMail */
	WB_CM_SEND_MAIL = 0x1505,
	WB_CM_SMART_FORWARD = 0x1506,
	WB_CM_SMART_REPLY = 0x1507,
	WB_CM_SAVE_IN_SENT_ITEMS = 0x1508,
	WB_CM_REPLACE_MIME = 0x1509,
	WB_CM_SOURCE = 0x150b,
	WB_CM_FOLDER_ID = 0x150c,
	WB_CM_ITEM_ID = 0x150d,
	WB_CM_LONG_ID = 0x150e,
	WB_CM_INSTANCE_ID = 0x150f,
	WB_CM_MIME = 0x1510,
	WB_CM_CLIENT_ID = 0x1511,
	WB_CM_STATUS = 0x1512,
	WB_CM_ACCOUNT_ID = 0x1513,
	/* 22 Email2 */
	WB_EM2_UM_CALLER_ID = 0x1605,
	WB_EM2_UM_USER_NOTES = 0x1606,
	WB_EM2_UM_ATT_DURATION = 0x1607,
	WB_EM2_UM_ATT_ORDER = 0x1608,
	WB_EM2_CONVERSATION_ID = 0x1609,
	WB_EM2_CONVERSATION_INDEX = 0x160a,
	WB_EM2_LAST_VERB_EXECUTED = 0x160b,
	WB_EM2_LAST_VERB_EXECUTION_TIME = 0x160c,
	WB_EM2_RECEIVED_AS_BCC = 0x160d,
	WB_EM2_SENDER = 0x160e,
	WB_EM2_CALENDAR_TYPE = 0x160f,
	WB_EM2_IS_LEAP_MONTH = 0x1610,
	WB_EM2_ACCOUNT_ID = 0x1611,
	WB_EM2_FIRST_DAY_OF_WEEK = 0x1612,
	WB_EM2_MEETING_MESSAGE_TYPE = 0x1613,
	/* 16.0 */
	WB_EM2_IS_DRAFT = 0x1615,
	WB_EM2_BCC = 0x1616,
	WB_EM2_SEND = 0x1617,
};

/* The PIM classes' code pages (MS-ASWBXML): Contacts (1), Calendar (4),
 * Tasks (9), used by eas_pim.c. */
enum wbxml_pim_tag {
	/* 1 Contacts */
	WB_CO_ANNIVERSARY = 0x0105,
	WB_CO_ASSISTANT_NAME = 0x0106,
	WB_CO_ASSISTANT_PHONE = 0x0107,
	WB_CO_BIRTHDAY = 0x0108,
	WB_CO_BODY = 0x0109,             /* 2.5 */
	WB_CO_BUSINESS2_PHONE = 0x010c,
	WB_CO_BUSINESS_CITY = 0x010d,
	WB_CO_BUSINESS_COUNTRY = 0x010e,
	WB_CO_BUSINESS_POSTAL_CODE = 0x010f,
	WB_CO_BUSINESS_STATE = 0x0110,
	WB_CO_BUSINESS_STREET = 0x0111,
	WB_CO_BUSINESS_FAX = 0x0112,
	WB_CO_BUSINESS_PHONE = 0x0113,
	WB_CO_CAR_PHONE = 0x0114,
	WB_CO_CATEGORIES = 0x0115,
	WB_CO_CATEGORY = 0x0116,
	WB_CO_CHILDREN = 0x0117,
	WB_CO_CHILD = 0x0118,
	WB_CO_COMPANY_NAME = 0x0119,
	WB_CO_DEPARTMENT = 0x011a,
	WB_CO_EMAIL1 = 0x011b,
	WB_CO_EMAIL2 = 0x011c,
	WB_CO_EMAIL3 = 0x011d,
	WB_CO_FILE_AS = 0x011e,
	WB_CO_FIRST_NAME = 0x011f,
	WB_CO_HOME2_PHONE = 0x0120,
	WB_CO_HOME_CITY = 0x0121,
	WB_CO_HOME_COUNTRY = 0x0122,
	WB_CO_HOME_POSTAL_CODE = 0x0123,
	WB_CO_HOME_STATE = 0x0124,
	WB_CO_HOME_STREET = 0x0125,
	WB_CO_HOME_FAX = 0x0126,
	WB_CO_HOME_PHONE = 0x0127,
	WB_CO_JOB_TITLE = 0x0128,
	WB_CO_LAST_NAME = 0x0129,
	WB_CO_MIDDLE_NAME = 0x012a,
	WB_CO_MOBILE_PHONE = 0x012b,
	WB_CO_OFFICE_LOCATION = 0x012c,
	WB_CO_OTHER_CITY = 0x012d,
	WB_CO_OTHER_COUNTRY = 0x012e,
	WB_CO_OTHER_POSTAL_CODE = 0x012f,
	WB_CO_OTHER_STATE = 0x0130,
	WB_CO_OTHER_STREET = 0x0131,
	WB_CO_PAGER = 0x0132,
	WB_CO_RADIO_PHONE = 0x0133,
	WB_CO_SPOUSE = 0x0134,
	WB_CO_SUFFIX = 0x0135,
	WB_CO_TITLE = 0x0136,
	WB_CO_WEB_PAGE = 0x0137,
	WB_CO_YOMI_COMPANY_NAME = 0x0138,
	WB_CO_YOMI_FIRST_NAME = 0x0139,
	WB_CO_YOMI_LAST_NAME = 0x013a,
	WB_CO_PICTURE = 0x013c,
	WB_CO_ALIAS = 0x013d,
	WB_CO_WEIGHTED_RANK = 0x013e,
	/* 4 Calendar */
	WB_CAL_TIMEZONE = 0x0405,
	WB_CAL_ALL_DAY_EVENT = 0x0406,
	WB_CAL_ATTENDEES = 0x0407,
	WB_CAL_ATTENDEE = 0x0408,
	WB_CAL_EMAIL = 0x0409,
	WB_CAL_NAME = 0x040a,
	WB_CAL_BODY = 0x040b,            /* 2.5 */
	WB_CAL_BODY_TRUNCATED = 0x040c,
	WB_CAL_BUSY_STATUS = 0x040d,
	WB_CAL_CATEGORIES = 0x040e,
	WB_CAL_CATEGORY = 0x040f,
	WB_CAL_DTSTAMP = 0x0411,
	WB_CAL_END_TIME = 0x0412,
	WB_CAL_EXCEPTION = 0x0413,
	WB_CAL_EXCEPTIONS = 0x0414,
	WB_CAL_DELETED = 0x0415,
	WB_CAL_EXCEPTION_START_TIME = 0x0416,
	WB_CAL_LOCATION = 0x0417,
	WB_CAL_MEETING_STATUS = 0x0418,
	WB_CAL_ORGANIZER_EMAIL = 0x0419,
	WB_CAL_ORGANIZER_NAME = 0x041a,
	WB_CAL_RECURRENCE = 0x041b,
	WB_CAL_TYPE = 0x041c,
	WB_CAL_UNTIL = 0x041d,
	WB_CAL_OCCURRENCES = 0x041e,
	WB_CAL_INTERVAL = 0x041f,
	WB_CAL_DAY_OF_WEEK = 0x0420,
	WB_CAL_DAY_OF_MONTH = 0x0421,
	WB_CAL_WEEK_OF_MONTH = 0x0422,
	WB_CAL_MONTH_OF_YEAR = 0x0423,
	WB_CAL_REMINDER = 0x0424,
	WB_CAL_SENSITIVITY = 0x0425,
	WB_CAL_SUBJECT = 0x0426,
	WB_CAL_START_TIME = 0x0427,
	WB_CAL_UID = 0x0428,
	WB_CAL_ATTENDEE_STATUS = 0x0429,
	WB_CAL_ATTENDEE_TYPE = 0x042a,
	WB_CAL_DISALLOW_NEW_TIME_PROPOSAL = 0x0433,
	WB_CAL_RESPONSE_REQUESTED = 0x0434,
	WB_CAL_APPOINTMENT_REPLY_TIME = 0x0435,
	WB_CAL_RESPONSE_TYPE = 0x0436,
	WB_CAL_CALENDAR_TYPE = 0x0437,
	WB_CAL_IS_LEAP_MONTH = 0x0438,
	WB_CAL_FIRST_DAY_OF_WEEK = 0x0439,
	/* 9 Tasks */
	WB_TK_BODY = 0x0905,             /* 2.5 */
	WB_TK_BODY_SIZE = 0x0906,
	WB_TK_BODY_TRUNCATED = 0x0907,
	WB_TK_CATEGORIES = 0x0908,
	WB_TK_CATEGORY = 0x0909,
	WB_TK_COMPLETE = 0x090a,
	WB_TK_DATE_COMPLETED = 0x090b,
	WB_TK_DUE_DATE = 0x090c,
	WB_TK_UTC_DUE_DATE = 0x090d,
	WB_TK_IMPORTANCE = 0x090e,
	WB_TK_RECURRENCE = 0x090f,
	WB_TK_TYPE = 0x0910,
	WB_TK_START = 0x0911,
	WB_TK_UNTIL = 0x0912,
	WB_TK_OCCURRENCES = 0x0913,
	WB_TK_INTERVAL = 0x0914,
	WB_TK_DAY_OF_MONTH = 0x0915,
	WB_TK_DAY_OF_WEEK = 0x0916,
	WB_TK_WEEK_OF_MONTH = 0x0917,
	WB_TK_MONTH_OF_YEAR = 0x0918,
	WB_TK_REGENERATE = 0x0919,
	WB_TK_DEAD_OCCUR = 0x091a,
	WB_TK_REMINDER_SET = 0x091b,
	WB_TK_REMINDER_TIME = 0x091c,
	WB_TK_SENSITIVITY = 0x091d,
	WB_TK_START_DATE = 0x091e,
	WB_TK_UTC_START_DATE = 0x091f,
	WB_TK_SUBJECT = 0x0920,
	WB_TK_ORDINAL_DATE = 0x0922,
	WB_TK_SUB_ORDINAL_DATE = 0x0923,
	WB_TK_CALENDAR_TYPE = 0x0924,
	WB_TK_IS_LEAP_MONTH = 0x0925,
	WB_TK_FIRST_DAY_OF_WEEK = 0x0926,
};

#define WBXML_PAGE(tag) ((unsigned)(tag) >> 8)
#define WBXML_TOKEN(tag) ((unsigned)(tag) & 0x3f)

/* "AirSync:Sync" for a known tag, NULL for an unknown one. */
const char *wbxml_page_name(unsigned page);
const char *wbxml_tag_name(unsigned tag, char *tmp, size_t tmplen);

/* ---- Encoder.  Writes into out (its cap applies); an error (a full
 * buffer, an end without a start) is remembered and reported by
 * wbxml_enc_finish(). ---- */
struct wbxml_enc {
	struct buf *out;
	unsigned page;
	unsigned open[WBXML_MAX_DEPTH];
	int depth;
	bool failed;
};
/* Writes the header (version 1.3, public id 1, UTF-8, no string table). */
void wbxml_enc_init(struct wbxml_enc *e, struct buf *out);
void wbxml_start(struct wbxml_enc *e, unsigned tag);   /* <tag> */
void wbxml_end(struct wbxml_enc *e);                   /* </tag> */
void wbxml_empty(struct wbxml_enc *e, unsigned tag);   /* <tag/> */
/* <tag>s</tag> as an inline string; s must be UTF-8 (a NUL ends it). */
void wbxml_str(struct wbxml_enc *e, unsigned tag, const char *s);
/* <tag>n</tag> */
void wbxml_uint(struct wbxml_enc *e, unsigned tag, unsigned long n);
/* <tag>bytes</tag> as opaque data (any bytes, e.g. MIME). */
void wbxml_opaque(struct wbxml_enc *e, unsigned tag, const void *p,
		  size_t n);
/* 0 if the document is complete and well formed, -1 otherwise. */
int wbxml_enc_finish(struct wbxml_enc *e);

/* ---- Push decoder. ---- */
struct wbxml_handler {
	/* An element starts; empty says it has no content (end follows at
	 * once). */
	int (*start)(void *arg, unsigned tag, bool empty);
	int (*end)(void *arg, unsigned tag);
	/* A piece of the current element's content (inline string or
	 * opaque data, in order).  last is set on the final piece of one
	 * string or opaque block (a piece may be empty then). */
	int (*text)(void *arg, const void *p, size_t n, bool last);
	void *arg;
};
/* Every callback returns 0 to go on, anything else to stop the decoder
 * (wbxml_feed then fails with "stopped by receiver"). */

struct wbxml_dec {
	struct wbxml_handler h;
	int state;
	uint32_t mb;          /* multi-byte integer being read */
	int mb_len;
	uint32_t left;        /* string table or opaque bytes still to come */
	unsigned page;
	unsigned stack[WBXML_MAX_DEPTH];
	int depth;
	bool seen_root;
	bool stopped;         /* a callback said stop */
	uint64_t offset;      /* bytes consumed */
	char err[96];
};
void wbxml_dec_init(struct wbxml_dec *d, const struct wbxml_handler *h);
/* Decode the next n bytes; 0, or -1 with d->err set (and every later call
 * failing too). */
int wbxml_feed(struct wbxml_dec *d, const void *p, size_t n);
/* The input is complete: 0 if it was one whole document. */
int wbxml_dec_finish(struct wbxml_dec *d);

/* ---- A tree for small answers. ---- */
struct wbxml_node {
	unsigned tag;
	struct wbxml_node *parent, *child, *last, *next;
	char *text;      /* content, NUL-terminated (opaque data may hold
			    NULs: use len); NULL if none */
	size_t len;
};
/* Parse a whole document into a tree, holding at most max_text bytes of
 * content and max_nodes elements.  NULL with err set on malformed input
 * or when over a limit. */
struct wbxml_node *wbxml_parse(const void *p, size_t n, size_t max_text,
			       size_t max_nodes, char *err, size_t errlen);
void wbxml_free(struct wbxml_node *root);
/* The first child of n with this tag (NULL if none or n NULL). */
struct wbxml_node *wbxml_child(const struct wbxml_node *n, unsigned tag);
/* The next sibling of n with the same tag. */
struct wbxml_node *wbxml_next(const struct wbxml_node *n);
/* Text of the first child with this tag, NULL if absent ("" if empty). */
const char *wbxml_child_text(const struct wbxml_node *n, unsigned tag);
/* Follow a path of tags from n (0-terminated list). */
struct wbxml_node *wbxml_path(const struct wbxml_node *n, ...);
/* An XML-like rendering for debug logs (text cut at 200 bytes each). */
void wbxml_dump(const struct wbxml_node *n, struct buf *out);

#endif

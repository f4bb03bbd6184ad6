/* ferry/ferry.h: everything an adapter may use of the core.
 *
 * Names: ferry_noun_verb is public (declared here, under include/ferry);
 * ferry__noun_verb is the core's own; an adapter's globals carry its name
 * (irc_, sms_, webhook_). ctest "symbols" holds the built objects to it. */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include "ferry/adapter.h"
#include "ferry/alloc.h"
#include "ferry/component.h"
#include "ferry/config.h"
#include "ferry/form.h"
#include "ferry/history.h"
#include "ferry/http_client.h"
#include "ferry/http_server.h"
#include "ferry/http_outbox.h"
#include "ferry/jid.h"
#include "ferry/list.h"
#include "ferry/log.h"
#include "ferry/metrics.h"
#include "ferry/outbox.h"
#include "ferry/settings.h"
#include "ferry/stanza.h"
#include "ferry/text.h"
#include "ferry/version.h"

#endif

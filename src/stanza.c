/* stanza.c: child-element builders that libstrophe lacks (iq results,
 * disco entries), error replies, and the escaping the fan-out does
 * (ferry/stanza.h). */
#include <stdlib.h>
#include <string.h>

#include "ferry/stanza.h"
#include "ferry/text.h"
#include "stanza_error.h"

xmpp_stanza_t *ferry_stanza_add(xmpp_stanza_t *parent, const char *name, const char *ns)
{
    xmpp_stanza_t *el = xmpp_stanza_new(xmpp_stanza_get_context(parent));
    xmpp_stanza_set_name(el, name);
    if (ns)
        xmpp_stanza_set_ns(el, ns);
    xmpp_stanza_add_child_ex(parent, el, 0);
    return el;
}

xmpp_stanza_t *ferry_iq_result(xmpp_stanza_t *iq, const char *ns, xmpp_stanza_t **query)
{
    xmpp_stanza_t *res = xmpp_iq_new(xmpp_stanza_get_context(iq), "result", xmpp_stanza_get_id(iq));
    xmpp_stanza_set_to(res, xmpp_stanza_get_from(iq));
    xmpp_stanza_set_from(res, xmpp_stanza_get_to(iq));
    xmpp_stanza_t *q = ns ? ferry_stanza_add(res, "query", ns) : NULL;
    if (query)
        *query = q;
    return res;
}

void ferry_disco_identity(xmpp_stanza_t *query, const char *category, const char *type,
                          const char *name)
{
    xmpp_stanza_t *id = ferry_stanza_add(query, "identity", NULL);
    xmpp_stanza_set_attribute(id, "category", category);
    xmpp_stanza_set_attribute(id, "type", type);
    if (name)
        xmpp_stanza_set_attribute(id, "name", name);
}

void ferry_disco_feature(xmpp_stanza_t *query, const char *var)
{
    xmpp_stanza_set_attribute(ferry_stanza_add(query, "feature", NULL), "var", var);
}

void ferry_disco_item(xmpp_stanza_t *query, const char *jid, const char *node, const char *name)
{
    xmpp_stanza_t *item = ferry_stanza_add(query, "item", NULL);
    xmpp_stanza_set_attribute(item, "jid", jid);
    if (node)
        xmpp_stanza_set_attribute(item, "node", node);
    if (name)
        xmpp_stanza_set_attribute(item, "name", name);
}

xmpp_stanza_t *ferry_stanza_add_text(xmpp_stanza_t *parent, const char *name, const char *text)
{
    xmpp_stanza_t *el = ferry_stanza_add(parent, name, NULL);
    xmpp_stanza_t *t = xmpp_stanza_new(xmpp_stanza_get_context(parent));
    size_t len = strlen(text);
    if (ferry_xml_text_valid(text, len)) {
        xmpp_stanza_set_text(t, text);
    } else {
        char *clean = ferry_xml_text_dup(text, len, NULL);
        xmpp_stanza_set_text(t, clean);
        free(clean);
    }
    xmpp_stanza_add_child_ex(el, t, 0);
    return el;
}

xmpp_stanza_t *ferry_stanza_error_reply(xmpp_stanza_t *stanza, const char *type,
                                        const char *condition, const char *text)
{
    return ferry__stanza_error_new(stanza, type, condition, text);
}

/* Printable ASCII that XML text and attribute values take as it is: 0x20
 * to 0x7F but " & ' < > (the bits of 0x500000C4, counted from 0x20). */
static int plain(unsigned char c)
{
    if (c >= 0x40)
        return c < 0x80;
    return c >= 0x20 && !((0x500000C4u >> (c - 0x20)) & 1);
}

size_t ferry_xml_escape(char *out, size_t cap, size_t len, const char *text)
{
    const char *p = text;
    for (;;) {
        const char *run = p; /* the fan-out's common case: copied in one go */
        while (plain((unsigned char)*p))
            p++;
        size_t n = (size_t)(p - run);
        if (len + n >= cap)
            return cap;
        memcpy(out + len, run, n);
        len += n;
        if (!*p)
            break;
        const char *rep = NULL;
        size_t take = 1;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default: {
            /* What XML forbids becomes U+FFFD, as ferry_xml_text_clean_to
             * does. Decoding stops at the NUL (never a continuation byte),
             * so 4 bytes of room is safe. */
            uint32_t cp;
            take = ferry_utf8_next(p, 4, &cp);
            if (!ferry_xml_char_ok(cp))
                rep = "\xEF\xBF\xBD";
        }
        }
        n = rep ? strlen(rep) : take;
        if (len + n >= cap)
            return cap;
        memcpy(out + len, rep ? rep : p, n);
        len += n;
        p += take;
    }
    out[len] = 0;
    return len;
}

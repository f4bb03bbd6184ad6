/* stanza_build.c: child-element builders that libstrophe lacks. */
#include "ferry/stanza.h"

xmpp_stanza_t *ferry_stanza_add(xmpp_stanza_t *parent, const char *name, const char *ns)
{
    xmpp_stanza_t *el = xmpp_stanza_new(xmpp_stanza_get_context(parent));
    xmpp_stanza_set_name(el, name);
    if (ns)
        xmpp_stanza_set_ns(el, ns);
    xmpp_stanza_add_child_ex(parent, el, 0);
    return el;
}

xmpp_stanza_t *ferry_stanza_add_text(xmpp_stanza_t *parent, const char *name, const char *text)
{
    xmpp_stanza_t *el = ferry_stanza_add(parent, name, NULL);
    xmpp_stanza_t *t = xmpp_stanza_new(xmpp_stanza_get_context(parent));
    xmpp_stanza_set_text(t, text);
    xmpp_stanza_add_child_ex(el, t, 0);
    return el;
}

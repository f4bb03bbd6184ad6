/* settings.c: ferry/settings.h, an adapter's per-user registrations and
 * settings, kept in the component's store. */
#include "component.h"
#include "ferry/settings.h"

int ferry_setting_get(ferry_component_t *comp, const char *ns, const char *key, char **value)
{
    return comp->gw->store ? ferry__store_kv_get(comp->gw->store, comp->name, ns, key, value) : -1;
}

int ferry_setting_put(ferry_component_t *comp, const char *ns, const char *key, const char *value)
{
    return comp->gw->store ? ferry__store_kv_put(comp->gw->store, comp->name, ns, key, value) : -1;
}

int ferry_setting_del(ferry_component_t *comp, const char *ns, const char *key)
{
    return comp->gw->store ? ferry__store_kv_del(comp->gw->store, comp->name, ns, key) : -1;
}

int ferry_setting_list(ferry_component_t *comp, const char *ns, ferry_setting_cb cb, void *arg)
{
    return comp->gw->store ? ferry__store_kv_list(comp->gw->store, comp->name, ns, cb, arg) : -1;
}

void ferry_setting_flush(ferry_component_t *comp)
{
    if (comp->gw->store)
        ferry__store_flush(comp->gw->store);
}

/* ferry/settings.h: per-user registrations and settings of an adapter,
 * kept in the component's store (the same one as the outboxes): what
 * users should find again after a restart. */
#ifndef FERRY_SETTINGS_H
#define FERRY_SETTINGS_H

#include "ferry/component.h"

/* 0 found (*value malloc'd, free it), 1 absent, -1 error. */
int ferry_setting_get(ferry_component_t *comp, const char *ns, const char *key, char **value);
int ferry_setting_put(ferry_component_t *comp, const char *ns, const char *key, const char *value);
int ferry_setting_del(ferry_component_t *comp, const char *ns, const char *key);
/* Every setting of NS, in key order (what an adapter must find again after
 * a restart): the number passed to CB, or -1. CB may read settings, not
 * write them. */
typedef void (*ferry_setting_cb)(void *arg, const char *key, const char *value);
int ferry_setting_list(ferry_component_t *comp, const char *ns, ferry_setting_cb cb, void *arg);
/* Commits everything written so far, now, instead of with the next batch a
 * few milliseconds later: for a setting the network is about to see the
 * effect of (a room joined), which a crash must not take back. One commit
 * each: for rare writes, not per message. */
void ferry_setting_flush(ferry_component_t *comp);

#endif

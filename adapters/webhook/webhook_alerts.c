/* webhook_alerts.c: Prometheus Alertmanager (webhook_config, payload
 * version 4) and Grafana (unified alerting webhook contact point) payloads
 * as one chat message: Alertmanager's own title first ("[FIRING:2] names",
 * "[RESOLVED] names", bold), then one line per alert with what it says, the
 * labels that tell it apart, and its link. Both send the same shape; Grafana
 * adds values and dashboard/panel links. */
#include <stdlib.h>
#include <string.h>

#include "ferry/alloc.h"
#include "webhook_source.h"

#define MAX_ALERT_LINES 20
#define MAX_TEXT 300      /* bytes of a summary shown */
#define MAX_LABELS 6

/* Alertmanager's identifying labels; Grafana alerts carry whatever labels
 * their rule has, so all but the name are shown there. */
static const char *const am_labels[] = {"instance", "job", "severity", NULL};

typedef struct dialect {
    int grafana;             /* values, dashboard links, all labels */
} dialect_t;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The values of OBJ's string members, sorted by key, joined by SEP. */
static void add_sorted_values(webhook_buf_t *out, const json_t *obj, const char *sep)
{
    size_t n = json_object_size(obj), k = 0;
    const char **keys = ferry_calloc(n ? n : 1, sizeof *keys);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
        if (json_is_string(v) && json_string_length(v) > 0)
            keys[k++] = key;
    qsort(keys, k, sizeof *keys, cmp_str);
    for (size_t i = 0; i < k; i++) {
        if (i)
            webhook_buf_add(out, sep);
        webhook_buf_add_line(out, json_string_value(json_object_get(obj, keys[i])), MAX_TEXT);
    }
    free(keys);
}

/* What the notification is about: the group labels' values as Alertmanager
 * titles it, else the common alert name, else the alerts' names. */
static void add_names(webhook_buf_t *out, const json_t *doc, const json_t *alerts)
{
    size_t before = out->len;
    add_sorted_values(out, json_object_get(doc, "groupLabels"), " ");
    if (out->len > before)
        return;
    const char *common = webhook_str(doc, "commonLabels.alertname");
    if (webhook_has(common)) {
        webhook_buf_add_line(out, common, MAX_TEXT);
        return;
    }
    size_t i, shown = 0;
    json_t *a;
    json_array_foreach(alerts, i, a) {
        const char *name = webhook_str(a, "labels.alertname");
        if (!webhook_has(name) || shown == 3)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const char *other = webhook_str(json_array_get(alerts, j), "labels.alertname");
            seen = other && strcmp(other, name) == 0;
        }
        if (!seen) {
            webhook_buf_add(out, shown++ ? ", " : "");
            webhook_buf_add_line(out, name, MAX_TEXT);
        }
    }
}

static void add_labels(webhook_buf_t *out, const dialect_t *d, const json_t *labels)
{
    int n = 0;
    const char *key;
    json_t *v;
    if (d->grafana) {
        json_object_foreach((json_t *)labels, key, v) {
            if (!json_is_string(v) || strcmp(key, "alertname") == 0 || strncmp(key, "__", 2) == 0 ||
                strcmp(key, "grafana_folder") == 0 || n == MAX_LABELS)
                continue;
            webhook_buf_addf(out, "%s%s=", n++ ? ", " : " (", key);
            webhook_buf_add_line(out, json_string_value(v), MAX_TEXT);
        }
    } else {
        for (const char *const *k = am_labels; *k; k++) {
            const char *value = json_string_value(json_object_get(labels, *k));
            if (!webhook_has(value))
                continue;
            webhook_buf_addf(out, "%s%s=", n++ ? ", " : " (", *k);
            webhook_buf_add_line(out, value, MAX_TEXT);
        }
    }
    if (n)
        webhook_buf_add(out, ")");
}

/* Grafana's values that triggered the alert: {"B": 44.2, "C": 1}. */
static void add_values(webhook_buf_t *out, const json_t *alert)
{
    const json_t *values = json_object_get(alert, "values");
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach((json_t *)values, key, v) {
        if (!json_is_number(v) || n == MAX_LABELS)
            continue;
        webhook_buf_addf(out, "%s%s=", n++ ? ", " : " [", key);
        if (json_is_integer(v))
            webhook_buf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
            webhook_buf_addf(out, "%g", json_real_value(v));
    }
    if (n) {
        webhook_buf_add(out, "]");
        return;
    }
    const char *vs = webhook_str(alert, "valueString"); /* before Grafana 10 */
    if (webhook_has(vs)) {
        webhook_buf_add(out, " ");
        webhook_buf_add_line(out, vs, MAX_TEXT);
    }
}

static const char *alert_url(const dialect_t *d, const json_t *doc, const json_t *alert)
{
    static const char *const am[] = {"generatorURL", NULL};
    static const char *const gf[] = {"dashboardURL", "panelURL", "generatorURL", NULL};
    for (const char *const *k = d->grafana ? gf : am; *k; k++) {
        const char *url = webhook_str(alert, *k);
        if (webhook_has(url))
            return url;
    }
    return webhook_str(doc, "externalURL");
}

static void add_alert(webhook_buf_t *out, const dialect_t *d, const json_t *doc, const json_t *alert,
                      const char *group_status)
{
    webhook_buf_add(out, "\n\xe2\x80\xa2 "); /* • */
    const char *status = webhook_str(alert, "status");
    if (webhook_has(status) && group_status && strcmp(status, group_status) != 0)
        webhook_buf_add(out, strcmp(status, "resolved") == 0 ? "[RESOLVED] " : "[FIRING] ");
    const char *name = webhook_str(alert, "labels.alertname");
    const char *common = webhook_str(doc, "commonLabels.alertname");
    const char *text = webhook_str(alert, "annotations.summary");
    if (!webhook_has(text))
        text = webhook_str(alert, "annotations.description");
    int named = webhook_has(name) && !(common && strcmp(common, name) == 0);
    if (named)
        webhook_buf_add_line(out, name, MAX_TEXT);
    if (webhook_has(text)) {
        webhook_buf_add(out, named ? ": " : "");
        webhook_buf_add_line(out, text, MAX_TEXT);
    } else if (!named) {
        webhook_buf_add_line(out, webhook_has(name) ? name : "(no summary)", MAX_TEXT);
    }
    add_labels(out, d, json_object_get(alert, "labels"));
    if (d->grafana)
        add_values(out, alert);
    const char *url = alert_url(d, doc, alert);
    if (webhook_has(url)) {
        webhook_buf_add(out, " ");
        webhook_buf_add_line(out, url, 2000);
    }
}

static int format_alerts(const dialect_t *d, const json_t *doc, webhook_buf_t *out, char *why,
                         size_t whylen)
{
    const json_t *alerts = json_object_get(doc, "alerts");
    const char *status = webhook_str(doc, "status");
    if (!json_is_array(alerts)) {
        snprintf(why, whylen, "the JSON has no \"alerts\" array");
        return -1;
    }
    if (!webhook_has(status)) {
        snprintf(why, whylen, "the JSON has no \"status\" string");
        return -1;
    }
    size_t firing = 0, i;
    json_t *a;
    json_array_foreach(alerts, i, a) {
        const char *s = webhook_str(a, "status");
        firing += s && strcmp(s, "firing") == 0;
    }
    if (strcmp(status, "firing") == 0)
        webhook_buf_addf(out, "*[FIRING:%zu] ", firing);
    else if (strcmp(status, "resolved") == 0)
        webhook_buf_add(out, "*[RESOLVED] ");
    else {
        webhook_buf_add(out, "*[");
        webhook_buf_add_line(out, status, 40);
        webhook_buf_add(out, "] ");
    }
    add_names(out, doc, alerts);
    while (out->len > 0 && out->buf[out->len - 1] == ' ')
        out->buf[--out->len] = 0; /* no names: "*[RESOLVED]*" */
    webhook_buf_add(out, "*");
    json_array_foreach(alerts, i, a) {
        if (i == MAX_ALERT_LINES)
            break;
        if (json_is_object(a))
            add_alert(out, d, doc, a, status);
    }
    size_t shown = json_array_size(alerts) < MAX_ALERT_LINES ? json_array_size(alerts) : MAX_ALERT_LINES;
    json_int_t more = (json_int_t)(json_array_size(alerts) - shown) +
                      json_integer_value(json_object_get(doc, "truncatedAlerts"));
    if (more > 0)
        webhook_buf_addf(out, "\n\xe2\x80\xa6 and %" JSON_INTEGER_FORMAT " more", more);
    return 0;
}

int webhook_format_alertmanager(const json_t *doc, webhook_buf_t *out, char *why, size_t whylen)
{
    static const dialect_t am = {0};
    return format_alerts(&am, doc, out, why, whylen);
}

int webhook_format_grafana(const json_t *doc, webhook_buf_t *out, char *why, size_t whylen)
{
    static const dialect_t gf = {1};
    return format_alerts(&gf, doc, out, why, whylen);
}

/* core_config.c: reads the core's tables of gateway.toml ([xmpp], [http], [log],
 * and the common keys of each [components.NAME]) with defaults. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ferry/alloc.h"
#include "config.h"
#include "ferry/jid.h"
#include "core_config.h"
#include "http_server.h"
#include "log.h"

static char *dup_or(const char *value, const char *fallback)
{
    return ferry_strdup(value ? value : fallback);
}

static void read_positive(const toml_node_t *t, const char *key, double *out)
{
    if (ferry_conf_number(t, key, FERRY_CONF_OPTIONAL, out) == 0 && !(*out > 0))
        ferry_conf_error(t, key, "must be greater than 0");
}

static void read_size(const toml_node_t *t, const char *key, size_t *out, int64_t min)
{
    int64_t v;
    if (ferry_conf_int(t, key, FERRY_CONF_OPTIONAL, &v) != 0)
        return;
    if (v < min)
        ferry_conf_error(t, key, "must be at least %lld", (long long)min);
    else
        *out = (size_t)v;
}

static void read_xmpp(config_t *c, const toml_node_t *t)
{
    const char *host = NULL;
    int64_t port = 5347;
    ferry_conf_string(t, "host", FERRY_CONF_OPTIONAL, &host);
    if (ferry_conf_int(t, "port", FERRY_CONF_OPTIONAL, &port) == 0 && (port < 1 || port > 65535))
        ferry_conf_error(t, "port", "must be between 1 and 65535");
    c->xmpp_host = dup_or(host, "127.0.0.1");
    c->xmpp_port = (int)port;
    read_size(t, "queue_size", &c->queue_size, 1);
    read_positive(t, "ping_interval", &c->ping_interval);
    read_positive(t, "ping_timeout", &c->ping_timeout);
    read_positive(t, "keepalive_interval", &c->keepalive_interval);
    read_size(t, "max_stanza_size", &c->max_stanza_size, 4096);
}

static void read_http(config_t *c, const toml_node_t *t)
{
    const char *listen = NULL, *public_url = NULL;
    ferry_conf_string(t, "listen", FERRY_CONF_OPTIONAL, &listen);
    ferry_conf_string(t, "public_url", FERRY_CONF_OPTIONAL, &public_url);
    c->http_listen = dup_or(listen, "127.0.0.1:8480");
    if (public_url) {
        c->public_url = ferry_strdup(public_url);
    } else {
        c->public_url = ferry_malloc(strlen(c->http_listen) + 8);
        sprintf(c->public_url, "http://%s", c->http_listen);
    }
    size_t n = strlen(c->public_url);
    while (n > 0 && c->public_url[n - 1] == '/')
        c->public_url[--n] = 0;
    if (strncmp(c->public_url, "http://", 7) != 0 && strncmp(c->public_url, "https://", 8) != 0)
        ferry_conf_error(t, "public_url", "must start with http:// or https://");
    read_size(t, "max_connections", &c->http_max_connections, 1);
    read_size(t, "max_connections_per_ip", &c->http_max_connections_per_ip, 1);
    if (c->http_max_connections > 1000000)
        ferry_conf_error(t, "max_connections", "must be at most 1000000");
    read_positive(t, "request_timeout", &c->http_request_timeout);
}

static void read_log(config_t *c, const toml_node_t *t)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    static const char *const formats[] = {"text", "json", NULL};
    const char *level = "info", *format = "text";
    ferry_conf_enum(t, "level", FERRY_CONF_OPTIONAL, levels, &level);
    ferry_conf_enum(t, "format", FERRY_CONF_OPTIONAL, formats, &format);
    c->log_level = ferry__log_level_parse(level);
    c->log_json = strcmp(format, "json") == 0;
}

static int valid_domain(const char *d)
{
    if (!*d || strlen(d) > 1023)
        return 0;
    for (const char *p = d; *p; p++)
        if (*p == '@' || *p == '/' || *p == ' ' || (unsigned char)*p < 0x21)
            return 0;
    return 1;
}

static void read_policy(const toml_node_t *t, outbox_policy_t *p)
{
    p->max_attempts = 10;
    p->max_age = 86400;
    p->retry_delay = 1.0;
    p->retry_delay_max = 300;
    if (ferry_conf_int(t, "max_attempts", FERRY_CONF_OPTIONAL, &p->max_attempts) == 0 &&
        p->max_attempts < 1)
        ferry_conf_error(t, "max_attempts", "must be at least 1");
    read_positive(t, "max_age", &p->max_age);
    read_positive(t, "retry_delay", &p->retry_delay);
    read_positive(t, "retry_delay_max", &p->retry_delay_max);
}

/* storage.url (or url_file): a libpq URI or conninfo string, checked here
 * so that a typo is reported with its line rather than at connect time. */
static void read_store_url(config_t *c, const toml_node_t *t)
{
    const char *inline_url = NULL;
    ferry_conf_string(t, "url", FERRY_CONF_OPTIONAL, &inline_url);
    const char *key = inline_url ? "url" : "url_file";
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(c->store_url, &msg);
    if (!opts) {
        char *nl = msg ? strchr(msg, '\n') : NULL;
        if (nl)
            *nl = 0;
        ferry_conf_error(t, key, "not a PostgreSQL URL or conninfo string: %s",
                         msg ? msg : "out of memory");
    }
    PQfreemem(msg);
    PQconninfoFree(opts);
}

/* Exactly one of path (SQLite, the default) and url (PostgreSQL). */
static void read_storage(config_t *c, const toml_node_t *t)
{
    const char *path = NULL;
    ferry_conf_string(t, "path", FERRY_CONF_OPTIONAL, &path);
    if (ferry_conf_secret(t, "url", FERRY_CONF_OPTIONAL, &c->store_url) == 0) {
        if (path)
            ferry_conf_error(t, "path", "give either path (SQLite) or url (PostgreSQL), not both");
        read_store_url(c, t);
    } else {
        c->store_path = dup_or(path, "ferry.db");
        if (!*c->store_path)
            ferry_conf_error(t, "path", "must not be empty");
    }
    c->keep_done = 7 * 86400;
    read_positive(t, "keep_done", &c->keep_done);
    c->store_lease = 30;
    read_positive(t, "lease", &c->store_lease);
    read_size(t, "hold_messages", &c->hold_messages, 0);
    read_size(t, "hold_bytes", &c->hold_bytes, 0);
}

/* An instance name goes into log lines, metric labels and the store's
 * heartbeat rows: one word of letters, digits and ".-_". */
static const char instance_chars[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";

static int valid_instance(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= 64 && strspn(name, instance_chars) == n;
}

/* The host name, cut to what valid_instance() takes. */
static char *default_instance(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        strcpy(host, "ferry");
    host[64] = 0;
    for (char *p = host; *p; p++)
        if (!strchr(instance_chars, *p))
            *p = '-';
    return ferry_strdup(host);
}

static void read_slots(const toml_node_t *t, int *out)
{
    int64_t v;
    if (ferry_conf_int(t, "slots", FERRY_CONF_OPTIONAL, &v) != 0)
        return;
    if (v < 1 || v > 1000) /* ejabberd's component_number: 2..1000 */
        ferry_conf_error(t, "slots", "must be between 1 and 1000");
    else
        *out = (int)v;
}

/* [cluster]: the instance name, and how many instances may link each
 * component at once (the others are standbys). */
static void read_cluster(config_t *c, const toml_node_t *t)
{
    const char *name = NULL;
    if (ferry_conf_string(t, "instance", FERRY_CONF_OPTIONAL, &name) == 0 && !valid_instance(name))
        ferry_conf_error(t, "instance", "\"%s\" is not a valid instance name (1 to 64 letters, "
                         "digits, '.', '-' or '_')", name);
    c->instance = name ? ferry_strdup(name) : default_instance();
    c->slots = 1;
    read_slots(t, &c->slots);
}

static void read_admin(config_t *c, const toml_node_t *t)
{
    if (ferry_conf_strings(t, "jids", FERRY_CONF_OPTIONAL, &c->admins) != 0)
        return;
    ferry_jid_t j;
    for (char **a = c->admins; *a; a++)
        if (ferry_jid_parse(*a, &j) != 0 || j.resource[0])
            ferry_conf_error(t, "jids", "\"%s\" is not a bare JID or domain", *a);
}

static void read_component(config_t *c, const char *name, const toml_node_t *t)
{
    component_config_t *cc = &c->components[c->ncomponents++];
    const char *adapter = NULL, *domain = NULL;
    cc->name = ferry_strdup(name);
    cc->table = t;
    ferry_conf_string(t, "adapter", FERRY_CONF_REQUIRED, &adapter);
    if (ferry_conf_string(t, "domain", FERRY_CONF_REQUIRED, &domain) == 0 && !valid_domain(domain))
        ferry_conf_error(t, "domain", "not a valid domain: \"%s\"", domain);
    ferry_conf_secret(t, "secret", FERRY_CONF_REQUIRED, &cc->secret);
    read_policy(t, &cc->policy);
    cc->slots = c->slots;
    read_slots(t, &cc->slots);
    cc->adapter = dup_or(adapter, "");
    cc->domain = dup_or(domain, "");
    for (char *p = cc->domain; *p; p++)
        *p = (char)tolower((unsigned char)*p); /* JIDs compare domains folded */
    for (size_t i = 0; i + 1 < c->ncomponents; i++)
        if (strcasecmp(c->components[i].domain, cc->domain) == 0 && *cc->domain)
            ferry_conf_error(t, "domain", "\"%s\" is already the domain of component '%s'",
                             cc->domain, c->components[i].name);
}

static void read_components(config_t *c, const toml_node_t *t)
{
    size_t n = ferry_conf_count(t);
    c->components = ferry_calloc(n ? n : 1, sizeof *c->components);
    for (size_t i = 0; i < n; i++) {
        const char *name = ferry_conf_key_at(t, i);
        const toml_node_t *sub = ferry_conf_value_at(t, i);
        if (!ferry_conf_is_table(sub)) {
            ferry_conf_error(t, name, "expected a table [components.%s]", name);
            continue;
        }
        read_component(c, name, sub);
    }
    if (n == 0)
        ferry_conf_error(t, NULL, "no components configured");
}

/* The optional top-level tables and their readers. An absent one reads as
 * an empty table named after it, so that the keys looked up in it are still
 * "NAME.key" (for --list-keys and in messages). */
static void read_sections(config_t *c, const toml_node_t *root)
{
    static const struct {
        const char *name;
        void (*read)(config_t *c, const toml_node_t *t);
    } sections[] = {
        {"xmpp", read_xmpp}, {"http", read_http}, {"log", read_log},
        {"admin", read_admin}, {"storage", read_storage}, {"cluster", read_cluster},
    };
    static toml_node_t empty[sizeof sections / sizeof *sections];
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        const toml_node_t *t;
        if (ferry_conf_table(root, sections[i].name, FERRY_CONF_OPTIONAL, &t) != 0) {
            empty[i].type = TOML_TABLE;
            ferry__conf_name_table(&empty[i], sections[i].name);
            t = &empty[i];
        }
        sections[i].read(c, t);
    }
}

config_t *ferry__config_load(const char *path)
{
    ferry__conf_begin(path);
    char err[1024];
    toml_node_t *root = ferry__toml_parse_file(path, err, sizeof err);
    if (!root) {
        ferry__conf_say(err);
        return NULL;
    }
    config_t *c = ferry_calloc(1, sizeof *c);
    c->path = ferry_strdup(path);
    c->root = root;
    c->queue_size = 10000;
    c->hold_messages = 10000;
    c->hold_bytes = 16 * 1024 * 1024;
    c->ping_interval = 60;
    c->ping_timeout = 30;
    c->keepalive_interval = 30;
    c->max_stanza_size = 256 * 1024;
    c->http_max_connections = ferry__http_server_default_limits.max_connections;
    c->http_max_connections_per_ip = ferry__http_server_default_limits.max_connections_per_ip;
    c->http_request_timeout = ferry__http_server_default_limits.request_timeout;
    ferry__conf_name_table(root, "");

    read_sections(c, root);
    const toml_node_t *t;
    if (ferry_conf_table(root, "components", FERRY_CONF_REQUIRED, &t) == 0)
        read_components(c, t);
    else
        c->components = ferry_calloc(1, sizeof *c->components);
    return c;
}

int ferry__config_finish(config_t *c)
{
    ferry__conf_report_unused(c->root);
    return ferry__conf_errors();
}

void ferry__config_free(config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->ncomponents; i++) {
        free(c->components[i].name);
        free(c->components[i].adapter);
        free(c->components[i].domain);
        free(c->components[i].secret);
    }
    free(c->components);
    free(c->xmpp_host);
    free(c->http_listen);
    free(c->public_url);
    free(c->store_path);
    free(c->store_url);
    free(c->instance);
    ferry_conf_strings_free(c->admins);
    ferry__conf_end();
    ferry__toml_free(c->root);
    free(c->path);
    free(c);
}

/* fuzz_config.c: gateway.toml on any bytes, read as ferry reads it at start
 * and on SIGHUP: src/core_config.c (the core's tables), then every component's
 * adapter reading its own table (irc, sms, webhook create()), then the
 * unknown-key report. Checks: no sanitizer report or leak, and a refused
 * file always says why (an error counted). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "component.h"
#include "core_config.h"
#include "oracle.h"

static char path[64];

static void remove_file(void) { unlink(path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/ferry-fuzz-config-%d.toml", (int)getpid());
        atexit(remove_file);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        fuzz_fail("config", "cannot write %s", path);
    config_t *config = ferry__config_load(path);
    if (!config)
        return 0;
    gateway_t gw = {.ctx = fuzz_xmpp_ctx(), .config = config};
    size_t built = 0;
    for (size_t i = 0; i < config->ncomponents; i++) {
        ferry_component_t *comp = ferry__component_new(&gw, &config->components[i]);
        if (comp) {
            built++;
            ferry__component_free(comp);
        }
    }
    int errors = ferry__config_finish(config);
    if (built < config->ncomponents && errors == 0)
        fuzz_fail("config", "a component refused without an error reported");
    ferry__config_free(config);
    return 0;
}

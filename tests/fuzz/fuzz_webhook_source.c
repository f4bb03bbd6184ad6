/* fuzz_webhook_source.c: adapters/webhook/webhook_source.c and its
 * formatters (Alertmanager, Grafana, GitHub, GitLab, Gitea) on any body. The
 * first line of the input is "SOURCE EVENT" (SOURCE a digit, the index of
 * webhook_source_names, "a" for auto; EVENT the value of the source's event
 * header, absent when the line has no space), the rest is the JSON body;
 * auto also gets EVENT in all three event headers in turn. Checks: either a
 * text comes back that XML 1.0 can carry (the chat message's body), or a
 * 400/415 with a reason; never both, never neither. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../adapters/webhook/webhook_source.h"
#include "oracle.h"

static void run(webhook_inbound_t *in, webhook_source_t source)
{
    unsigned status = 0;
    char why[400] = "";
    char *text = webhook_inbound_text(in, source, NULL, &status, why, sizeof why);
    if (text) {
        if (!*text && source != SOURCE_TEXT && source != SOURCE_AUTO)
            fuzz_fail("webhook source", "empty text");
        if (!fuzz_xml_chars_ok(text, strlen(text)))
            fuzz_fail("webhook source", "text XML cannot carry: '%.200s'", text);
        free(text);
        return;
    }
    if ((status != 400 && status != 415) || !*why)
        fuzz_fail("webhook source", "refused with %u '%s'", status, why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t head_len = (size_t)(nl - (const char *)data);
    char head[128];
    if (head_len == 0 || head_len >= sizeof head)
        return 0;
    memcpy(head, data, head_len);
    head[head_len] = 0;
    char *event = strchr(head, ' ');
    if (event)
        *event++ = 0;
    webhook_inbound_t in = {
        .body = nl + 1,
        .len = size - head_len - 1,
        .content_type = "application/json",
    };
    if (head[0] == 'a') {
        run(&in, SOURCE_AUTO);
        in.github_event = event;
        run(&in, SOURCE_AUTO);
        in.github_event = NULL;
        in.gitlab_event = event;
        run(&in, SOURCE_AUTO);
        in.gitlab_event = NULL;
        in.gitea_event = event;
        run(&in, SOURCE_AUTO);
        return 0;
    }
    int src = head[0] - '0';
    if (src < 0 || src > SOURCE_GITEA)
        return 0;
    in.github_event = in.gitlab_event = in.gitea_event = event;
    run(&in, (webhook_source_t)src);
    in.content_type = "text/plain";
    run(&in, (webhook_source_t)src);
    return 0;
}

/* main.c: ferry's entry point: the command line (run, --check-config,
 * --list-keys, the `queue` subcommand), the signals (stop, reload), and the
 * libuv loop everything runs on. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "core_config.h"
#include "ferry/ferry.h"
#include "gateway.h"
#include "log.h"
#include "queue_cmd.h"
#include "sd_notify.h"

static const char usage[] =
    "Usage: ferry -c FILE [-v]\n"
    "       ferry --check-config [--list-keys] -c FILE\n"
    "       ferry queue -c FILE list | retry ID | drop ID\n"
    "       ferry --version | --help\n"
    "\n"
    "ferry attaches to an XMPP server as an XEP-0114 component and carries\n"
    "messages both ways between XMPP and other networks: webhooks, SMS\n"
    "(Twilio, Telnyx) and IRC.\n"
    "\n"
    "  -c, --config FILE   the gateway.toml to use\n"
    "      --check-config  validate the config; print FILE:LINE: errors and exit\n"
    "      --list-keys     with --check-config: also list every key ferry reads\n"
    "                      for FILE (path, type, set or default), one a line\n"
    "  -v, --verbose       log at debug level (overrides [log] level)\n"
    "  -V, --version       print the version\n"
    "  -h, --help          print this help\n"
    "\n"
    "  queue               list pending and dead messages, retry or drop one\n"
    "\n"
    "Signals: SIGTERM/SIGINT stop within 5 s for a restart (IRC users stay in their rooms\n"
    "and are put back when ferry starts again); SIGUSR1 stops for good (IRC users are\n"
    "told the service is gone and forgotten); SIGHUP reloads the config.\n";

typedef struct options {
    const char *config;
    int queue;         /* `ferry queue ...`: index of its first argument */
    int check;
    int list_keys;     /* --list-keys: print what config.c recorded */
    int verbose;
} options_t;

static uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
static gateway_t *running;
static int exit_code;

static int parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"list-keys", no_argument, NULL, 'K'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:vVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'k': o->check = 1; break;
        case 'K': o->list_keys = o->check = 1; break;
        case 'v': o->verbose = 1; break;
        case 'V': printf("ferry %s\n", FERRY_VERSION); exit(0);
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); return -1;
        }
    }
    if (optind < argc && strcmp(argv[optind], "queue") == 0) {
        o->queue = optind + 1;
    } else if (optind < argc) {
        fprintf(stderr, "ferry: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    if (!o->config) {
        fprintf(stderr, "ferry: a config file is required (-c FILE)\n%s", usage);
        return -1;
    }
    return 0;
}

static void close_signals(void)
{
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&sig_usr1, NULL);
}

static void on_stopped(gateway_t *gw)
{
    (void)gw;
    close_signals();
    ferry_log_info("core", "stopped");
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        ferry__sd_notify_send("RELOADING=1");
        ferry__gateway_reload(running);
        ferry__sd_notify_send("READY=1");
        return;
    }
    if (running->stopping) {
        ferry_log_warn("core", "second signal: exiting now");
        exit(1);
    }
    ferry_log_info("core", "%s received", signum == SIGTERM   ? "SIGTERM"
                                          : signum == SIGUSR1 ? "SIGUSR1: stopping for good"
                                                              : "SIGINT");
    running->for_good = signum == SIGUSR1;
    ferry__sd_notify_send("STOPPING=1");
    ferry__gateway_stop(running, on_stopped);
}

static void start_signals(uv_loop_t *loop)
{
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_hup);
    uv_signal_init(loop, &sig_usr1);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
}

static void drain_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}

int main(int argc, char **argv)
{
    options_t o = {0};
    json_set_alloc_funcs(ferry_malloc, free); /* out of memory: abort (ferry/alloc.h) */
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    if (o.queue)
        return ferry__queue_cmd(o.config, argc - o.queue, argv + o.queue);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    xmpp_initialize();

    ferry__conf_record_keys(o.list_keys);
    config_t *config = ferry__config_load(o.config);
    if (!config)
        return 1;
    ferry__log_set_level(o.verbose ? FERRY_LOG_DEBUG : (ferry_log_level_t)config->log_level);
    ferry__log_set_json(config->log_json);
    ferry__log_set_instance(config->instance);

    uv_loop_t loop;
    uv_loop_init(&loop);
    gateway_t *gw = ferry__gateway_new(&loop, config);
    if (!gw) {
        drain_loop(&loop);
        return 1;
    }
    if (o.check) {
        if (o.list_keys)
            ferry__conf_print_keys(stdout);
        else
            printf("%s: ok\n", o.config);
        ferry__gateway_free(gw);
        drain_loop(&loop);
        return 0;
    }
    running = gw;
    start_signals(&loop);
    ferry_log_info("core", "ferry %s starting with %zu component(s)", FERRY_VERSION,
                   gw->ncomponents);
    if (ferry__gateway_start(gw) != 0) {
        exit_code = 1;
        ferry__gateway_stop(gw, on_stopped);
    } else {
        ferry__sd_notify_send("READY=1");
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ferry__gateway_free(gw);
    drain_loop(&loop);
    xmpp_shutdown();
    curl_global_cleanup();
    return exit_code;
}

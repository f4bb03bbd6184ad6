/* ferry/metrics.h: what an adapter adds to GET /metrics. The core labels
 * each value with the component and the adapter; adapters add no labels of
 * their own (and never a user's address: the series count must not grow
 * with the number of users). */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

typedef struct ferry_metrics ferry_metrics_t;

/* TYPE is "counter" or "gauge"; NAME should start with "ferry_". */
void ferry_metric(ferry_metrics_t *m, const char *name, const char *type, const char *help,
                  double value);

#endif

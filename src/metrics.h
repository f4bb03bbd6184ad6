/* metrics.h: GET /metrics. */
#ifndef FERRY_SRC_METRICS_H
#define FERRY_SRC_METRICS_H

#include "gateway.h"

void ferry__metrics_register(gateway_t *gw);

#endif

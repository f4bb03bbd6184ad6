/* health.h: GET /healthz. */
#ifndef FERRY_HEALTH_H
#define FERRY_HEALTH_H

#include "gateway.h"

void ferry__health_register(gateway_t *gw);

#endif

/* sd_notify.h: readiness and stopping notices for systemd Type=notify. */
#ifndef FERRY_SD_NOTIFY_H
#define FERRY_SD_NOTIFY_H

/* Sends STATE ("READY=1", "STOPPING=1", "RELOADING=1") to $NOTIFY_SOCKET;
 * does nothing when ferry was not started by systemd. */
void ferry__sd_notify_send(const char *state);

#endif

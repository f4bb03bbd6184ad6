ferry_adapter(webhook
  SOURCES webhook.c webhook_rooms.c webhook_source.c webhook_alerts.c webhook_forge.c
  DEPS PkgConfig::OPENSSL)

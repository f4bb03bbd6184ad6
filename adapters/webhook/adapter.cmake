list(APPEND FERRY_ADAPTERS webhook)
list(APPEND FERRY_ADAPTER_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/webhook.c
  ${CMAKE_CURRENT_LIST_DIR}/webhook_rooms.c
  ${CMAKE_CURRENT_LIST_DIR}/webhook_source.c
  ${CMAKE_CURRENT_LIST_DIR}/webhook_alerts.c
  ${CMAKE_CURRENT_LIST_DIR}/webhook_forge.c)

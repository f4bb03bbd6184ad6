list(APPEND FERRY_ADAPTERS irc)
list(APPEND FERRY_ADAPTER_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/irc.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_jid.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_history.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_ids.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_state.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_options.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_adhoc.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_charset.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_register.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_chan.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_conn.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_proto.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_contact.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_ctcp.c
  ${CMAKE_CURRENT_LIST_DIR}/irc_disco.c
  ${CMAKE_CURRENT_LIST_DIR}/bridge.c)

# The IRC adapter is being built piece by piece: its protocol layer is
# compiled and tested; it is not registered as an adapter yet.
list(APPEND FERRY_ADAPTER_SOURCES ${CMAKE_CURRENT_LIST_DIR}/irc_proto.c)

ferry_adapter(irc
  SOURCES irc.c irc_jid.c irc_history.c irc_ids.c irc_state.c irc_options.c irc_adhoc.c
          irc_charset.c irc_register.c irc_chan.c irc_conn.c irc_proto.c irc_contact.c
          irc_ctcp.c irc_disco.c bridge.c
  DEPS PkgConfig::OPENSSL)

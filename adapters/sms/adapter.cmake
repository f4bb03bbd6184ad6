ferry_adapter(sms
  SOURCES sms.c sms_inbound.c sms_register.c phone.c form.c provider_twilio.c provider_telnyx.c
  DEPS PkgConfig::OPENSSL)

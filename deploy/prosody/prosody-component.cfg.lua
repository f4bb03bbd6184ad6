-- deploy/prosody/prosody-component.cfg.lua: attach ferry to Prosody (0.12) as the external
-- component hooks.example.org (XEP-0114). Matches deploy/prosody/gateway.toml.
--
-- 1. Save this file as /etc/prosody/conf.d/ferry.cfg.lua (Debian's prosody.cfg.lua includes
--    conf.d/*.cfg.lua at its end), or paste the Component block at the end of prosody.cfg.lua.
-- 2. Replace the secret, here and in gateway.toml, e.g. with: openssl rand -hex 24
-- 3. Restart Prosody (or `prosodyctl reload`), then start ferry: ferry -c gateway.toml
--    Prosody's log then says: "External component successfully authenticated".
--
-- Where Prosody listens for components: by default port 5347 on loopback (127.0.0.1, ::1),
-- which is what gateway.toml uses. Only to change that, set these two in the GLOBAL section
-- of prosody.cfg.lua (before the first VirtualHost line; they are ignored in this file):
--     component_ports = { 5347 }
--     component_interfaces = { "127.0.0.1" }
-- Users on other servers (federation) reach hooks.example.org only if it resolves in DNS to
-- this server; `prosodyctl check dns` warns about that, and it does not matter otherwise.

Component "hooks.example.org"
    component_secret = "change-me-prosody-hooks-secret"

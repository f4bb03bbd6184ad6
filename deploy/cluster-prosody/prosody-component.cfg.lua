-- deploy/cluster-prosody/prosody-component.cfg.lua: Prosody (0.12) side of an active ferry and
-- a standby for hooks.example.org (README.md, "Several instances"). Matches gateway-a.toml and
-- gateway-b.toml here.
--
-- Prosody takes ONE connection per component: a second one is refused (stream error
-- `conflict`) while the first lives. So one ferry instance links (slots = 1) and the other
-- stands by, waiting in PostgreSQL; it links the moment the active one dies. In that window
-- Prosody bounces messages for the component back to their senders with an error
-- (remote-server-timeout, "Component unavailable"): nothing is dropped silently.
--
-- The component block is the same as for one ferry (deploy/prosody/); the instances run on
-- other hosts, so Prosody listens for components on the private network. These two go in the
-- GLOBAL section of prosody.cfg.lua (before the first VirtualHost line; ignored in this file):
--     component_ports = { 5347 }
--     component_interfaces = { "10.0.0.10" }   -- XEP-0114 is not encrypted: private network only

Component "hooks.example.org"
    component_secret = "change-me-prosody-hooks-secret"

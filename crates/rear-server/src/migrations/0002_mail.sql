-- rear-server schema, version 2: reports by mail. Portable SQL as in 0001.

-- The key that checks the HMAC of a host's mailed reports: HMAC-SHA256 of the host's token
-- over "rear-mail-key-v1" (src/mail.rs), hex. Made with the token (`token add`, enrollment),
-- since the server keeps only the token's SHA-256 and cannot derive it later; a token made
-- before this migration has no row here and must be renewed for mail.
CREATE TABLE host_mail_keys (
    host     TEXT PRIMARY KEY REFERENCES hosts (name),
    mail_key TEXT NOT NULL
);

-- Nonces of accepted mailed reports, so a replayed message is refused. `sent` is the signed
-- send time; a nonce older than the accepted age (mail_max_age) can go, because a message
-- that old is refused by its time anyway.
CREATE TABLE mail_nonces (
    nonce    TEXT PRIMARY KEY,
    host     TEXT NOT NULL,
    sent     BIGINT NOT NULL,
    received BIGINT NOT NULL
);
CREATE INDEX mail_nonces_sent ON mail_nonces (sent);

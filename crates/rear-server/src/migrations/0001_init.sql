-- rear-server schema, version 1.
-- Portable SQL: runs unchanged on SQLite (3.24+) and PostgreSQL (11+). Times are seconds since
-- 1970 (BIGINT), flags are INTEGER 0/1, keys are TEXT chosen by the server (host names,
-- SHA-256 hex), so no auto-increment syntax is needed.

-- One row per protected host; the columns after `enrolled` are a summary of its reports,
-- recomputed on every ingest so the overview needs no join.
CREATE TABLE hosts (
    name          TEXT PRIMARY KEY,
    token_sha256  TEXT UNIQUE,
    enrolled      BIGINT NOT NULL,
    domain        TEXT NOT NULL DEFAULT '',
    os            TEXT NOT NULL DEFAULT '',
    kernel        TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '',
    layout        TEXT NOT NULL DEFAULT '',
    last_report   TEXT,
    last_created  BIGINT,
    build_created BIGINT,
    build_ok      INTEGER,
    ok_report     TEXT,
    ok_created    BIGINT,
    ok_layout     TEXT
);

-- Every report as received; `id` is the SHA-256 of the body, so a report sent twice (store and
-- forward after a lost answer) is stored once.
CREATE TABLE reports (
    id        TEXT PRIMARY KEY,
    host      TEXT NOT NULL REFERENCES hosts (name),
    received  BIGINT NOT NULL,
    created   BIGINT NOT NULL,
    build_ok  INTEGER,
    error     TEXT,
    layout    TEXT NOT NULL DEFAULT '',
    body      TEXT NOT NULL
);
CREATE INDEX reports_host_created ON reports (host, created);
CREATE INDEX reports_received ON reports (received);

CREATE TABLE host_tags (
    host TEXT NOT NULL REFERENCES hosts (name),
    tag  TEXT NOT NULL,
    PRIMARY KEY (host, tag)
);
CREATE INDEX host_tags_tag ON host_tags (tag);

-- Search keys of a host's latest report: kind is 'mac', 'ip' or 'serial'; values lower case.
CREATE TABLE host_keys (
    host  TEXT NOT NULL REFERENCES hosts (name),
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (host, kind, value)
);
CREATE INDEX host_keys_value ON host_keys (value);

-- Stored media, by SHA-256 of the content (the file is media_dir/<first two hex>/<sha256>).
CREATE TABLE media (
    sha256 TEXT PRIMARY KEY,
    size   BIGINT NOT NULL,
    stored BIGINT NOT NULL,
    host   TEXT
);

-- Login sessions of the web GUI; only the SHA-256 of the cookie value is kept.
CREATE TABLE sessions (
    id_sha256 TEXT PRIMARY KEY,
    username  TEXT NOT NULL,
    csrf      TEXT NOT NULL,
    expires   BIGINT NOT NULL
);

-- Whether the server stopped cleanly last time (1) or is running or crashed (0). After a
-- crash, messages delivered in the last moments may not have been stored; rooms then number
-- new messages past a gap, so those ids are never given to other messages.
CREATE TABLE server_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO server_state (key, value) VALUES ('clean_shutdown', 1);

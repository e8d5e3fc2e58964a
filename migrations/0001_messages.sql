-- Chat messages, kept per room for late joiners, reconnecting clients and restarts.
CREATE TABLE messages (
    room TEXT NOT NULL,
    id INTEGER NOT NULL,
    sender INTEGER NOT NULL,
    name TEXT NOT NULL,
    at INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (room, id)
) WITHOUT ROWID;

CREATE INDEX messages_by_age ON messages (at);

-- The last id each room handed out, so numbering continues even after retention removed
-- every stored message of a room.
CREATE TABLE rooms (
    room TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
) WITHOUT ROWID;

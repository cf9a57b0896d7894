-- A new message takes its room's next seq in one statement: the INSERT computes
-- `rooms.last_seq + 1` and this trigger advances the counter to it (group commit stores
-- many messages per transaction, each with a single `INSERT … RETURNING`).
CREATE TRIGGER messages_take_seq AFTER INSERT ON messages
BEGIN
    UPDATE rooms SET last_seq = NEW.seq WHERE id = NEW.room_id;
END;

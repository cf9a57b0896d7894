-- Every change to a message (created, edited, deleted, reacted to) takes the room's next
-- seq; updated_seq is the seq of the message's latest change, so a client that saw seq N
-- resumes with the messages whose updated_seq > N, in that order.
ALTER TABLE messages ADD COLUMN updated_seq INTEGER;
UPDATE messages SET updated_seq = seq;
CREATE INDEX messages_changes ON messages(room_id, updated_seq);

-- Revocable invitations and message reports (issue 13, items 6 and 14).

-- Invitations gain the status 'revoked': withdrawn by the inviter or a room admin, or
-- invalidated when the inviter left, was kicked or banned (or their account went away).
-- SQLite cannot change a CHECK in place, and cannot drop an indexed column: the two
-- indexes on status are dropped, the column is rebuilt under a new name and renamed back
-- (as in 0007), and the indexes are created again.
DROP INDEX invitations_pending;
DROP INDEX invitations_invitee;
ALTER TABLE invitations ADD COLUMN invitation_status TEXT NOT NULL DEFAULT 'pending'
    CHECK (invitation_status IN ('pending', 'accepted', 'declined', 'revoked'));
UPDATE invitations SET invitation_status = status;
ALTER TABLE invitations DROP COLUMN status;
ALTER TABLE invitations RENAME COLUMN invitation_status TO status;
CREATE UNIQUE INDEX invitations_pending ON invitations(room_id, invitee_id)
    WHERE status = 'pending';
CREATE INDEX invitations_invitee ON invitations(invitee_id, status);
CREATE INDEX invitations_inviter ON invitations(room_id, inviter_id) WHERE status = 'pending';

-- A member's report of a message, for the server's moderators and admins. One per
-- reporter and message. `content` is the message as it was when reported (the author
-- may edit or delete it afterwards).
CREATE TABLE message_reports (
    id          TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    reporter_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason      TEXT NOT NULL,
    content     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at  TEXT NOT NULL,
    resolved_by TEXT REFERENCES users(id),
    resolved_at TEXT,
    UNIQUE (message_id, reporter_id)
) STRICT;
CREATE INDEX message_reports_status ON message_reports(status, id);

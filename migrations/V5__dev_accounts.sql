-- Dev login (`POST /api/v1/auth/dev`) signs in only accounts it created: an account that signs
-- in with Google, or the built-in `ai` account, is never reachable by typing its handle.

-- A constant default: no table rewrite; the previous version's inserts (Google sign-ins, and
-- dev sign-ins of a node not yet upgraded) get false.
ALTER TABLE users ADD COLUMN dev_account BOOLEAN NOT NULL DEFAULT false;

-- The accounts that exist without a Google identity were made by dev login (the only other way
-- an account is made without one is V3's `ai`): they keep working. A production database that
-- never enabled dev login has none, and this touches no row.
UPDATE users SET dev_account = true WHERE google_sub IS NULL AND handle <> 'ai';

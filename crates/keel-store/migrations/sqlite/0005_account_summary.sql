-- What the account list filters and sorts on, kept beside each account's
-- evaluated state (the state itself stays one JSON document).
ALTER TABLE account_state ADD COLUMN segment TEXT;
ALTER TABLE account_state ADD COLUMN band TEXT;
ALTER TABLE account_state ADD COLUMN score REAL;
-- "|line:stage|line:stage|", so that a stage (of any line) or a line:stage
-- pair is found with instr().
ALTER TABLE account_state ADD COLUMN stages TEXT NOT NULL DEFAULT '|';
ALTER TABLE account_state ADD COLUMN mrr REAL;
ALTER TABLE account_state ADD COLUMN renewal_date TEXT;

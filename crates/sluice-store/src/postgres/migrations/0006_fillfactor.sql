-- Free room on each page for the new versions of its rows, so that updates
-- that change no indexed column stay on their page (HOT: no new index
-- entries, less WAL and vacuum work). A relay claim leases a run of outbox
-- rows, often every row of a page, in one transaction: each page must hold
-- a second, leased version of all its rows (40 leaves that room for the
-- shortest rows). A job's start of an attempt changes no indexed column
-- either. Applies to pages written from now on.
ALTER TABLE outbox SET (fillfactor = 40);
ALTER TABLE jobs SET (fillfactor = 50);

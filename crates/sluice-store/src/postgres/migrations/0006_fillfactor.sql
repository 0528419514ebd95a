-- Free room on each outbox page for the new versions of its rows, so that a
-- relay's claim (which changes no indexed column) updates them in place
-- (HOT: no new index entries, less WAL and vacuum work). A claim leases a
-- run of rows, often every row of a page, in one transaction: each page
-- must hold a second, leased version of all its rows, and 40 leaves that
-- room for the shortest rows. Applies to pages written from now on. The
-- jobs table keeps its default: a lower fillfactor there made attempt
-- starts HOT but saved no measurable work, and that table keeps every job.
ALTER TABLE outbox SET (fillfactor = 40);

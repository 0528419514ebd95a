-- Cheap read-only check before taking the write lock: is anything visible
-- (?3 = now) or not yet handed to the group?
SELECT EXISTS (SELECT 1 FROM deliveries WHERE topic = ?1 AND grp = ?2 AND visible_at <= ?3)
    OR EXISTS (
        SELECT 1 FROM messages
        WHERE topic = ?1
          AND seq > (SELECT cursor FROM consumer_groups WHERE topic = ?1 AND grp = ?2)
    )

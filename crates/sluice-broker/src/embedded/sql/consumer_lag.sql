-- ?1 topic, ?2 group. Messages the group has not acknowledged: those past
-- its cursor (all stored ones for a group that never joined) plus its
-- deliveries in flight or released.
SELECT (SELECT COUNT(*) FROM messages
        WHERE topic = ?1
          AND seq > COALESCE((SELECT cursor FROM consumer_groups
                              WHERE topic = ?1 AND grp = ?2), 0))
     + (SELECT COUNT(*) FROM deliveries WHERE topic = ?1 AND grp = ?2) AS lag

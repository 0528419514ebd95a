UPDATE consumer_groups SET cursor = ?3 WHERE topic = ?1 AND grp = ?2 AND cursor < ?3

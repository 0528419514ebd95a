SELECT cursor FROM consumer_groups WHERE topic = ?1 AND grp = ?2

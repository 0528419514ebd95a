SELECT name FROM topics ORDER BY name

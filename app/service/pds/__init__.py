"""Personal Demographics Service: Patient read, search and update (routes, rules, ranking, seed)."""

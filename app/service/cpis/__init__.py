"""Child Protection Information Sharing: plans, access events and notifications to local authorities."""

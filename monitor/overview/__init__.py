"""What the home page summarises: deadlines coming up, breaches by month, timeliness by pool."""

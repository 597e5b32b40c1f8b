"""Training tables: reward models, policies, runs (see issues 3-5)."""

"""Application services: what routes and the CLI ask for, in domain terms."""

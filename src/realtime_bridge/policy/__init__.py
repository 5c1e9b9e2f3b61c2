"""Who may do what: client secrets, the operator's policy file, locked fields, limits."""

"""Course profiles: the typed model, parsing, validation, policy and the profile set."""

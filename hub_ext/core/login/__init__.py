"""Login: directory identities and the login throttle."""

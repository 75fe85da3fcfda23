"""Login: directory identities, the login throttle and the client address behind trusted
proxies."""

"""LDAP adapters: directory client, entries, servers and the reference lab's slapd."""

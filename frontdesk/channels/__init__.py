"""Channel adapters (one subpackage each) and inboxes."""

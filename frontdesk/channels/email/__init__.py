"""Email: inbound (SMTP receiver, IMAP polling), MIME parsing, threading, outbound SMTP."""

"""Server-rendered pages, static files and the /ws endpoint."""

"""API routes, one module per provider; a function imports only its own."""

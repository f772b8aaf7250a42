"""Tasks and corpora the book trains on."""

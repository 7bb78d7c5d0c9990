"""Looking at traces: the self-contained HTML trace view and notebook displays."""

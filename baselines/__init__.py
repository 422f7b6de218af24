"""Non-learned colorizers: floors every learned method must beat."""

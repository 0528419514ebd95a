"""Offline checks of deploy/ (run by scripts/check-deploy)."""

"""Helpers for the reliability scripts in tests/reliability: the daemon as a process, the
content and journal of the durability checker, and its verification rule."""

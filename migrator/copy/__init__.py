"""The copy of the frozen snapshot into the target, chunk by chunk (moving here from migrator.tools.dump_pipe)."""

"""The index build: parse input batches, roll them up within memory bounds, write segments."""

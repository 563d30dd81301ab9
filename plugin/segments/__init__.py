"""Segments: identifiers, shard specs, the Druid payload, the timeline and the Parquet file format."""

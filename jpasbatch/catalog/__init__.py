"""The catalogue layer: schemas, readers, quality cuts, partitioned ingestion."""

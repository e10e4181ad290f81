"""The benchmarked stages, one module each (registered in :data:`jpasbatch.bench.stage.STAGES`)."""
